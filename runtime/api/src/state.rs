//! The data that crosses the seam between operators and checkpointing: what an operator hands
//! over when it snapshots, and what it gets back when it is restored. Backends (`spate-state`)
//! produce and consume these; the task uploads and downloads the files (`spate-checkpoint`).

use std::path::PathBuf;

/// A contiguous range `[start, end)` of key groups: the unit in which keyed state moves between
/// parallel subtasks when a job is rescaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyGroupRange {
    pub start: u32,
    pub end: u32,
}

impl KeyGroupRange {
    pub fn new(start: u32, end: u32) -> Self {
        KeyGroupRange { start, end }
    }

    /// The key groups `subtask_for_key_group` sends to `subtask`.
    pub fn of_subtask(subtask: u32, parallelism: u32, max_parallelism: u32) -> Self {
        let bound =
            |s: u32| (s as u64 * max_parallelism as u64).div_ceil(parallelism as u64) as u32;
        KeyGroupRange::new(bound(subtask), bound(subtask + 1))
    }

    pub fn contains(&self, key_group: u32) -> bool {
        self.start <= key_group && key_group < self.end
    }

    pub fn intersects(&self, other: &KeyGroupRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StateBackendKind {
    /// State in memory; snapshots are full copies.
    #[default]
    Heap,
    /// State in an embedded RocksDB; snapshots are incremental (native checkpoints).
    RocksDb,
}

impl StateBackendKind {
    pub fn name(self) -> &'static str {
        match self {
            StateBackendKind::Heap => "heap",
            StateBackendKind::RocksDb => "rocksdb",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "heap" => Some(StateBackendKind::Heap),
            "rocksdb" => Some(StateBackendKind::RocksDb),
            _ => None,
        }
    }
}

/// One file of a keyed snapshot, relative to the snapshot's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStateFile {
    pub name: String,
    pub size: u64,
    /// Immutable and named uniquely within its backend instance (RocksDB SST files): a later
    /// checkpoint may reference the copy an earlier one uploaded instead of uploading it again.
    pub shared: bool,
}

/// Keyed state written to local files by the synchronous part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedSnapshot {
    pub backend: StateBackendKind,
    pub key_groups: KeyGroupRange,
    pub dir: PathBuf,
    pub files: Vec<LocalStateFile>,
}

/// A named piece of non-keyed operator state (a split's read position, a pre-committed file).
/// On restore every subtask of the operator sees the entries of all old subtasks (union
/// redistribution) and keeps those it owns.
pub type StateEntry = (String, Vec<u8>);

/// Everything one operator instance contributes to a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorSnapshot {
    pub entries: Vec<StateEntry>,
    pub keyed: Option<KeyedSnapshot>,
}

impl OperatorSnapshot {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.keyed.is_none()
    }
}

/// State an operator instance starts from: the entries of every old subtask, and the keyed
/// snapshots (downloaded to local directories) whose key groups overlap this instance's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoredState {
    pub checkpoint_id: u64,
    pub entries: Vec<StateEntry>,
    pub keyed: Vec<KeyedSnapshot>,
}

/// Where an operator instance keeps and finds its state.
#[derive(Debug, Clone, Default)]
pub struct StateContext {
    /// A directory private to this operator instance (working files, snapshots).
    pub dir: PathBuf,
    pub backend: StateBackendKind,
    pub key_groups: KeyGroupRange,
    pub restored: Option<RestoredState>,
    /// The job takes checkpoints: sinks hold output back until a checkpoint covers it.
    pub checkpointing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subtask_for_key_group;

    #[test]
    fn ranges_match_the_key_group_assignment() {
        for max in [128u32, 130, 1000] {
            for parallelism in 1..=7u32 {
                let mut covered = 0;
                for subtask in 0..parallelism {
                    let range = KeyGroupRange::of_subtask(subtask, parallelism, max);
                    for kg in range.start..range.end {
                        assert_eq!(subtask_for_key_group(kg, parallelism, max), subtask);
                    }
                    covered += range.len();
                }
                assert_eq!(covered, max);
            }
        }
    }
}
