//! Task-local recovery: the latest completed checkpoint of each subtask that ran here, kept as
//! local snapshot directories, so a restarted subtask back on this worker restores without
//! downloading. Storage stays the truth: a copy that is missing or fails its checksum is
//! downloaded instead.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// A subtask of a job: (job id, vertex, subtask).
pub type SubtaskKey = (String, u32, u32);

/// The local snapshot directory of each operator of a subtask, for one checkpoint.
#[derive(Debug, Clone, Default)]
pub struct LocalCopy {
    pub checkpoint_id: u64,
    /// Operator id → directory holding the snapshot's files under their names.
    pub operators: HashMap<String, PathBuf>,
}

#[derive(Default)]
pub struct LocalRecovery {
    latest: Mutex<HashMap<SubtaskKey, LocalCopy>>,
}

impl LocalRecovery {
    /// `copy` belongs to a completed checkpoint: it replaces an older one of the subtask.
    pub fn completed(&self, subtask: SubtaskKey, copy: LocalCopy) {
        let mut latest = self.latest.lock().expect("local recovery lock");
        if latest
            .get(&subtask)
            .is_none_or(|old| old.checkpoint_id <= copy.checkpoint_id)
        {
            latest.insert(subtask, copy);
        }
    }

    /// The local directory of `operator`'s snapshot in checkpoint `checkpoint_id`, if kept.
    pub fn find(
        &self,
        subtask: &SubtaskKey,
        checkpoint_id: u64,
        operator: &str,
    ) -> Option<PathBuf> {
        let latest = self.latest.lock().expect("local recovery lock");
        let copy = latest.get(subtask)?;
        (copy.checkpoint_id == checkpoint_id)
            .then(|| copy.operators.get(operator).cloned())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_completed_copy_per_subtask() {
        let recovery = LocalRecovery::default();
        let key: SubtaskKey = ("job".into(), 1, 0);
        let copy = |id: u64| LocalCopy {
            checkpoint_id: id,
            operators: [("op".to_string(), PathBuf::from(format!("/chk-{id}")))].into(),
        };
        recovery.completed(key.clone(), copy(5));
        recovery.completed(key.clone(), copy(4));
        assert_eq!(recovery.find(&key, 5, "op"), Some(PathBuf::from("/chk-5")));
        assert_eq!(recovery.find(&key, 4, "op"), None, "an older copy is gone");
        assert_eq!(recovery.find(&key, 5, "other"), None);
        assert_eq!(recovery.find(&("job".into(), 1, 1), 5, "op"), None);
    }
}
