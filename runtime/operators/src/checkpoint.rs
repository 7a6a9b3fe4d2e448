//! What the stateful operators share about checkpoints: where an operator instance writes its
//! snapshot files, when they may go, and the event time it restores.

use std::path::{Path, PathBuf};

use spate_api::{MIN_WATERMARK, OperatorError, RestoredState, Result, StateEntry, Timestamp};

/// The id of the snapshot a task takes after its input ended. Only its non-keyed entries are
/// kept, so operators write no keyed files for it.
pub(crate) const FINAL_CHECKPOINT: u64 = u64::MAX;

const CHECKPOINTS: &str = "checkpoints";
const WATERMARK: &str = "watermark";

/// A fresh, existing directory for checkpoint `id`'s snapshot under an instance's state
/// directory (the layout spate-state's backends use). Leftovers of an earlier attempt at the same
/// checkpoint (a failure between snapshot and restart) are removed first.
pub(crate) fn fresh_snapshot_dir(base: &Path, id: u64) -> Result<PathBuf> {
    if base.as_os_str().is_empty() {
        return Err(OperatorError::invalid(
            "this operator instance has no state directory to write snapshots to",
        ));
    }
    let dir = base.join(CHECKPOINTS).join(format!("chk-{id}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io_error("remove", &dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
    Ok(dir)
}

/// Deletes the snapshot directories of checkpoints before `completed`. The completed one stays
/// (a local restore needs no download), and so do later ones, which may still be uploading.
pub(crate) fn release_older_than(base: &Path, completed: u64) -> Result<()> {
    let parent = base.join(CHECKPOINTS);
    let entries = match std::fs::read_dir(&parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("list", &parent, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list", &parent, e))?;
        let id = entry
            .file_name()
            .to_str()
            .and_then(|name| name.strip_prefix("chk-"))
            .and_then(|id| id.parse::<u64>().ok());
        if id.is_some_and(|id| id < completed) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| io_error("remove", &path, e))?;
        }
    }
    Ok(())
}

fn io_error(action: &str, path: &Path, error: std::io::Error) -> OperatorError {
    OperatorError::invalid(format!("cannot {action} {}: {error}", path.display()))
}

/// The non-keyed entry that carries an operator's watermark through a checkpoint.
pub(crate) fn watermark_entry(watermark: Timestamp) -> StateEntry {
    (WATERMARK.to_string(), watermark.to_le_bytes().to_vec())
}

/// The watermark to resume from: the least of the restored subtasks' watermarks.
///
/// At an aligned barrier every subtask of an operator has seen the same watermarks from every
/// input channel, so the entries agree. Where they do not (an input that had ended or idled on
/// one subtask only), the least is the only choice that loses nothing: a window or timer that
/// any old subtask still held open is open at the least watermark, while a higher one would drop
/// records that subtask would still have accepted. Without entries (no watermark had arrived),
/// event time starts from the beginning.
pub(crate) fn restored_watermark(restored: Option<&RestoredState>) -> Result<Timestamp> {
    let mut least: Option<Timestamp> = None;
    for (name, value) in restored.iter().flat_map(|r| &r.entries) {
        if name != WATERMARK {
            continue;
        }
        let bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| {
            OperatorError::invalid(format!(
                "restored watermark has {} bytes, expected 8",
                value.len()
            ))
        })?;
        let watermark = Timestamp::from_le_bytes(bytes);
        least = Some(least.map_or(watermark, |l| l.min(watermark)));
    }
    Ok(least.unwrap_or(MIN_WATERMARK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_snapshot_directories_go_and_the_completed_one_stays() {
        let base = tempfile::tempdir().unwrap();
        for id in [1, 2, 3] {
            let dir = fresh_snapshot_dir(base.path(), id).unwrap();
            std::fs::write(dir.join("f"), b"x").unwrap();
        }
        let again = fresh_snapshot_dir(base.path(), 3).unwrap();
        assert!(
            !again.join("f").exists(),
            "a retried checkpoint starts empty"
        );
        release_older_than(base.path(), 2).unwrap();
        let parent = base.path().join(CHECKPOINTS);
        assert!(!parent.join("chk-1").exists());
        assert!(parent.join("chk-2").exists() && parent.join("chk-3").exists());
        assert!(fresh_snapshot_dir(Path::new(""), 1).is_err());
    }

    #[test]
    fn the_least_restored_watermark_wins() {
        let restored = RestoredState {
            checkpoint_id: 7,
            entries: vec![
                watermark_entry(40),
                ("other".into(), vec![1]),
                watermark_entry(-3),
            ],
            keyed: Vec::new(),
        };
        assert_eq!(restored_watermark(Some(&restored)).unwrap(), -3);
        assert_eq!(restored_watermark(None).unwrap(), MIN_WATERMARK);
        let bad = RestoredState {
            entries: vec![(WATERMARK.into(), vec![0; 3])],
            ..restored
        };
        assert!(restored_watermark(Some(&bad)).is_err());
    }
}
