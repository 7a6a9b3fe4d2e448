use std::path::PathBuf;
use std::time::Duration;

use spate_network::ExchangeConfig;

use crate::faults::InjectedFailure;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub worker_id: String,
    /// The JobMaster's gRPC address, `host:port`.
    pub jobmaster: String,
    pub slots: u32,
    /// Host the worker's control and data ports bind to; other workers reach it there.
    pub bind_host: String,
    /// Port of the worker's gRPC service; 0 picks a free one. A fixed port lets a replacement
    /// JobMaster that knows only the worker's host (a pod IP) reach it.
    pub control_port: u16,
    pub exchange: ExchangeConfig,
    /// How long the worker keeps running without an answer from its JobMaster before it gives up
    /// (so that no worker outlives its job).
    pub jobmaster_timeout: Duration,
    /// Where tasks keep local state (RocksDB instances, snapshots, downloaded checkpoints).
    pub state_dir: PathBuf,
    /// Fails one task on purpose (recovery tests and benchmarks).
    pub inject_failure: Option<InjectedFailure>,
}

impl WorkerConfig {
    pub fn new(jobmaster: impl Into<String>, slots: u32) -> Self {
        WorkerConfig {
            worker_id: format!("worker-{}", std::process::id()),
            jobmaster: jobmaster.into(),
            slots,
            bind_host: "127.0.0.1".into(),
            control_port: 0,
            exchange: ExchangeConfig::default(),
            jobmaster_timeout: Duration::from_secs(15),
            state_dir: std::env::temp_dir().join(format!("spate-worker-{}", std::process::id())),
            inject_failure: None,
        }
    }
}
