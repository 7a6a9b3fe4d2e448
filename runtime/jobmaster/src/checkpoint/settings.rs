use std::collections::BTreeMap;
use std::time::Duration;

/// How a job takes checkpoints (Flink's `execution.checkpointing.*`).
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// Root of checkpoint storage: `file:///dir`, `s3://bucket/prefix`, `gs://...`, `az://...`.
    pub storage_url: String,
    /// Endpoint, region, credentials file, ... (see spate-checkpoint's `StorageOptions`).
    pub storage_options: BTreeMap<String, String>,
    pub interval: Duration,
    /// A checkpoint not complete after this long is aborted.
    pub timeout: Duration,
    /// Least time between the end of one checkpoint and the trigger of the next.
    pub min_pause: Duration,
    /// Checkpoints in flight at once. Barriers of a newer checkpoint overtaking an older one at
    /// a task abandon the older one there, so more than one mostly helps slow uploads.
    pub max_concurrent: usize,
    /// Consecutive failed checkpoints the job tolerates before it fails (and restarts).
    pub tolerable_failures: u32,
    /// Completed checkpoints kept; older ones are deleted with the files only they referenced.
    pub retained: usize,
    /// "heap" or "rocksdb".
    pub state_backend: String,
}

impl CheckpointSettings {
    pub fn new(storage_url: impl Into<String>, interval: Duration) -> Self {
        CheckpointSettings {
            storage_url: storage_url.into(),
            storage_options: BTreeMap::new(),
            interval,
            timeout: Duration::from_secs(60),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failures: 3,
            retained: 3,
            state_backend: "heap".into(),
        }
    }
}
