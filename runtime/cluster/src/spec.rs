use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `spate` binary the children run.
    pub binary: PathBuf,
    pub workers: u32,
    pub slots_per_worker: u32,
    pub job_name: String,
    pub job_args: BTreeMap<String, String>,
    /// Logs, the JobMaster's address file and its final status go here.
    pub work_dir: PathBuf,
    pub heartbeat_timeout_ms: u64,
    /// Elements per subpartition queue and credits per remote channel.
    pub queue_capacity: usize,
    pub credits_per_channel: u32,
    /// `RUST_LOG` of the children.
    pub log_filter: String,
    /// Workers' standard output (print sinks) goes to this process's standard output instead of
    /// their log files.
    pub forward_stdout: bool,
}

impl ClusterSpec {
    pub fn new(binary: impl Into<PathBuf>, job_name: &str, work_dir: impl Into<PathBuf>) -> Self {
        ClusterSpec {
            binary: binary.into(),
            workers: 1,
            slots_per_worker: 1,
            job_name: job_name.to_string(),
            job_args: BTreeMap::new(),
            work_dir: work_dir.into(),
            heartbeat_timeout_ms: 5_000,
            queue_capacity: 4,
            credits_per_channel: 2,
            log_filter: "info".into(),
            forward_stdout: false,
        }
    }

    pub fn arg(mut self, key: &str, value: impl ToString) -> Self {
        self.job_args.insert(key.to_string(), value.to_string());
        self
    }
}
