use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::checkpoint::CheckpointSettings;
use crate::failover::{FailoverScope, RestartStrategy};
use crate::resources::ResourceSettings;

#[derive(Debug, Clone)]
pub struct JobMasterConfig {
    /// `host:port` for the gRPC service; port 0 picks a free one.
    pub bind: String,
    /// The address workers reach the JobMaster at, when not the bound one (a wildcard bind in
    /// a pod, reached at the pod's IP).
    pub advertise: Option<String>,
    /// Keep serving the job's status after the job ended, or could not be built, until the
    /// process is stopped: an orchestrator reads why instead of restarting the JobMaster.
    pub keep_serving: bool,
    pub job_name: String,
    pub job_args: BTreeMap<String, String>,
    pub job_id: String,
    pub heartbeat_interval: Duration,
    /// A worker silent for this long is lost.
    pub heartbeat_timeout: Duration,
    /// How long to wait for workers to offer the slots the job needs.
    pub slot_timeout: Duration,
    /// Written with the bound address once the service listens.
    pub address_file: Option<PathBuf>,
    /// Written with the final job status (protobuf `JobStatus`) before the JobMaster exits.
    pub status_file: Option<PathBuf>,
    /// `None`: no checkpoints (and no restarts).
    pub checkpointing: Option<CheckpointSettings>,
    /// Restarts need checkpoints to restore from; without them the first failure is final.
    pub restart: RestartStrategy,
    pub failover: FailoverScope,
    /// A checkpoint or savepoint to start from (`spate run --from`).
    pub restore_from: Option<String>,
    /// This JobMaster replaces one that died: adopt the tasks the workers kept running, or
    /// restore the latest completed checkpoint of `job_id`.
    pub recover: bool,
    /// Where workers come from.
    pub resources: ResourceSettings,
}

impl JobMasterConfig {
    pub fn new(job_name: impl Into<String>, job_args: BTreeMap<String, String>) -> Self {
        let job_name = job_name.into();
        JobMasterConfig {
            bind: "127.0.0.1:0".into(),
            advertise: None,
            keep_serving: false,
            job_id: format!("{job_name}-{}", std::process::id()),
            job_name,
            job_args,
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_secs(5),
            slot_timeout: Duration::from_secs(60),
            address_file: None,
            status_file: None,
            checkpointing: None,
            restart: RestartStrategy::None,
            failover: FailoverScope::Region,
            restore_from: None,
            recover: false,
            resources: ResourceSettings::Standalone,
        }
    }
}
