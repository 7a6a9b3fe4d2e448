use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `spate` binary the children run.
    pub binary: PathBuf,
    /// Workers the JobMaster keeps running, even when the job needs fewer slots.
    pub workers: u32,
    pub slots_per_worker: u32,
    pub job_name: String,
    pub job_args: BTreeMap<String, String>,
    /// Logs (`logs/`), the record of worker processes (`processes/`), the JobMaster's address
    /// file and its final status go here.
    pub work_dir: PathBuf,
    /// The workers' local state (RocksDB, local recovery copies), one directory per worker;
    /// `None` keeps it under `<work_dir>/state`.
    pub state_dir: Option<PathBuf>,
    pub heartbeat_timeout_ms: u64,
    /// Elements per subpartition queue and credits per remote channel.
    pub queue_capacity: usize,
    pub credits_per_channel: u32,
    /// `RUST_LOG` of the children.
    pub log_filter: String,
    /// Workers' standard output (print sinks; `logs/<worker>.out`) is copied to this process's
    /// standard output.
    pub forward_stdout: bool,
    /// Checkpoints and recovery; `None` runs without them.
    pub checkpoints: Option<CheckpointSpec>,
    /// Passed to every worker as `--inject-failure` (VERTEX/SUBTASK/RECORDS).
    pub inject_failure: Option<String>,
}

/// How the embedded cluster's job checkpoints and recovers. With it, the JobMaster replaces a
/// worker process that dies and restarts the job from its latest checkpoint, and the cluster
/// replaces a JobMaster that dies.
#[derive(Debug, Clone)]
pub struct CheckpointSpec {
    /// Storage root URL; `None` stores under `<work_dir>/checkpoints`.
    pub storage_url: Option<String>,
    pub storage_options: BTreeMap<String, String>,
    pub interval_ms: u64,
    /// "heap" or "rocksdb".
    pub state_backend: String,
    /// `spate jobmaster` flags of the restart strategy and failover scope (`--max-restarts 3`,
    /// `--failover full`, ...); the JobMaster's defaults apply to what is left out.
    pub restart: Vec<String>,
    /// Checkpoint or savepoint to start from.
    pub restore_from: Option<String>,
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        CheckpointSpec {
            storage_url: None,
            storage_options: BTreeMap::new(),
            interval_ms: 1_000,
            state_backend: "heap".into(),
            restart: Vec::new(),
            restore_from: None,
        }
    }
}

impl CheckpointSpec {
    /// `spate jobmaster` arguments.
    pub fn jobmaster_args(&self, work_dir: &std::path::Path) -> Vec<String> {
        let url = self
            .storage_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", work_dir.join("checkpoints").display()));
        let mut args = vec![
            "--checkpoint-dir".to_string(),
            url,
            "--checkpoint-interval-ms".to_string(),
            self.interval_ms.to_string(),
            "--state-backend".to_string(),
            self.state_backend.clone(),
        ];
        args.extend(self.restart.iter().cloned());
        for (key, value) in &self.storage_options {
            args.push("--storage-option".to_string());
            args.push(format!("{key}={value}"));
        }
        if let Some(from) = &self.restore_from {
            args.push("--from".to_string());
            args.push(from.clone());
        }
        args
    }
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
            state_dir: None,
            heartbeat_timeout_ms: 5_000,
            queue_capacity: 4,
            credits_per_channel: 2,
            log_filter: "info".into(),
            forward_stdout: false,
            checkpoints: None,
            inject_failure: None,
        }
    }

    pub fn arg(mut self, key: &str, value: impl ToString) -> Self {
        self.job_args.insert(key.to_string(), value.to_string());
        self
    }
}
