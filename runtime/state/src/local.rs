//! Local snapshot directories: `<state dir>/checkpoints/chk-<id>`, one per checkpoint, kept
//! until a later checkpoint completes.

use std::path::{Path, PathBuf};

use spate_api::LocalStateFile;

use crate::error::{Result, StateError};

const CHECKPOINTS: &str = "checkpoints";

/// A fresh path for checkpoint `id`'s snapshot, whose parent exists (the path itself does not:
/// RocksDB creates its checkpoint directory). Leftovers of an earlier
/// attempt at the same checkpoint (a failure between snapshot and restart) are removed.
pub fn fresh_checkpoint_dir(base: &Path, id: u64) -> Result<PathBuf> {
    if base.as_os_str().is_empty() {
        return Err(StateError::Invalid(
            "this operator instance has no state directory to write snapshots to".into(),
        ));
    }
    let parent = base.join(CHECKPOINTS);
    std::fs::create_dir_all(&parent).map_err(StateError::io("create", &parent))?;
    let dir = parent.join(format!("chk-{id}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(StateError::io("remove", &dir))?;
    }
    Ok(dir)
}

/// Deletes the snapshot directories of checkpoints before `completed`. The completed one stays
/// (restoring from it needs no download) and so do later ones (still being uploaded).
pub fn release_older_than(base: &Path, completed: u64) -> Result<()> {
    let parent = base.join(CHECKPOINTS);
    let entries = match std::fs::read_dir(&parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StateError::io("list", &parent)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StateError::io("list", &parent))?;
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|name| name.strip_prefix("chk-"))
            .and_then(|id| id.parse::<u64>().ok());
        if id.is_some_and(|id| id < completed) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(StateError::io("remove", &path))?;
        }
    }
    Ok(())
}

/// The files of a snapshot directory, by name. RocksDB's SST files are immutable and numbered
/// uniquely within the database, so they are the shared ones.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<LocalStateFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(StateError::io("list", dir))? {
        let entry = entry.map_err(StateError::io("list", dir))?;
        let path = entry.path();
        let metadata = entry.metadata().map_err(StateError::io("inspect", &path))?;
        if !metadata.is_file() {
            continue;
        }
        let name = entry.file_name().into_string().map_err(|_| {
            StateError::Invalid(format!(
                "snapshot file {} has a non-UTF-8 name",
                path.display()
            ))
        })?;
        files.push(LocalStateFile {
            shared: name.ends_with(".sst"),
            name,
            size: metadata.len(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_checkpoints_are_released() {
        let base = tempfile::tempdir().unwrap();
        for id in [1, 2, 3] {
            let dir = fresh_checkpoint_dir(base.path(), id).unwrap();
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("000001.sst"), b"x").unwrap();
        }
        release_older_than(base.path(), 2).unwrap();
        let parent = base.path().join(CHECKPOINTS);
        assert!(!parent.join("chk-1").exists());
        assert!(parent.join("chk-2").exists() && parent.join("chk-3").exists());
        let files = list_files(&parent.join("chk-3")).unwrap();
        assert_eq!(files.len(), 1);
        assert!(files[0].shared && files[0].size == 1);
        assert!(fresh_checkpoint_dir(Path::new(""), 1).is_err());
    }
}
