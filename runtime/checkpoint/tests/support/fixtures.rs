//! Local snapshots as a RocksDB backend would hand them over, and checkpoint metadata.

use std::collections::BTreeSet;
use std::path::Path as LocalPath;

use spate_api::{KeyGroupRange, KeyedSnapshot, LocalStateFile, StateBackendKind};
use spate_proto::v1::{
    CheckpointMetadata, KeyedStateHandle, OperatorSubtaskState, SnapshotKind, StateEntry,
};

/// Distinct, reproducible content per SST name.
pub fn sst_content(name: &str) -> Vec<u8> {
    format!("the immutable content of {name}\n")
        .repeat(50)
        .into_bytes()
}

/// A snapshot of subtask 0 of operator `window` at `checkpoint`: the SSTs `ssts` (shared) and
/// a MANIFEST (private) that differs per checkpoint.
pub fn snapshot(root: &LocalPath, checkpoint: u64, ssts: &[&str]) -> KeyedSnapshot {
    let dir = root.join(format!("snapshot-{checkpoint}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for name in ssts {
        let content = sst_content(name);
        std::fs::write(dir.join(name), &content).unwrap();
        files.push(LocalStateFile {
            name: name.to_string(),
            size: content.len() as u64,
            shared: true,
        });
    }
    let manifest = format!("manifest of checkpoint {checkpoint}: {ssts:?}");
    std::fs::write(dir.join("MANIFEST"), &manifest).unwrap();
    files.push(LocalStateFile {
        name: "MANIFEST".into(),
        size: manifest.len() as u64,
        shared: false,
    });
    KeyedSnapshot {
        backend: StateBackendKind::RocksDb,
        key_groups: KeyGroupRange::new(0, 128),
        dir,
        files,
    }
}

pub fn metadata(
    job: &str,
    id: u64,
    kind: SnapshotKind,
    handles: &[KeyedStateHandle],
) -> CheckpointMetadata {
    let mut metadata = CheckpointMetadata {
        job_name: job.into(),
        checkpoint_id: id,
        trigger_ms: 1_000 * id as i64,
        completed_ms: 1_000 * id as i64 + 5,
        max_parallelism: 128,
        states: handles
            .iter()
            .enumerate()
            .map(|(subtask, handle)| OperatorSubtaskState {
                operator_id: "window".into(),
                subtask: subtask as u32,
                keyed: Some(handle.clone()),
                entries: vec![StateEntry {
                    name: "offset".into(),
                    value: id.to_le_bytes().to_vec(),
                }],
            })
            .collect(),
        ..CheckpointMetadata::default()
    };
    metadata.set_kind(kind);
    metadata
}

/// The stored directory of the file `name` of `handle`.
pub fn dir_of(handle: &KeyedStateHandle, name: &str) -> String {
    let file = handle.files.iter().find(|f| f.name == name).unwrap();
    file.path.rsplit_once('/').unwrap().0.to_string()
}

pub fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}
