//! Open windows in checkpoints. The window operator keeps its state in its own in-memory
//! structures (panes with per-key rings, sessions, columnar accumulators) rather than in a state
//! backend, because per-record backend lookups would cost most of its throughput. A snapshot
//! walks those structures once, at the barrier, and writes one entry per open (key, window) in
//! the heap snapshot format of spate-state, under the key's key group, so that a restore (and a
//! rescale) keeps exactly the windows of the key groups it owns.
//!
//! An entry is: key = the row-format key (empty without key columns), user key = window start
//! and end (i64 LE), value = the accumulators (`Accumulators::encode`). The state name tells
//! aligned windows from sessions.

use std::path::{Path, PathBuf};

use spate_api::{
    KeyGroupRange, KeyedSnapshot, LocalStateFile, OperatorContext, OperatorError, Result,
    StateBackendKind, StateContext, Timestamp, hash_key, key_group,
};
use spate_state::{HeapSnapshotReader, HeapSnapshotWriter, SnapshotEntry};

use super::aggregate::Accumulators;
use super::bytes::{Reader, put_i64};
use super::operator::Windows;
use crate::keyed::table::KeyTable;

/// The snapshot file in a checkpoint's directory.
const FILE: &str = "windows.snap";
const ALIGNED: &str = "aligned";
const SESSION: &str = "session";

/// Where an operator instance writes snapshots, and which key groups it owns.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    dir: PathBuf,
    key_groups: KeyGroupRange,
    max_parallelism: u32,
}

impl Instance {
    pub(super) fn of(ctx: &OperatorContext) -> Self {
        Instance {
            dir: ctx.state.dir.clone(),
            key_groups: ctx.state.key_groups,
            max_parallelism: ctx.max_parallelism,
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the open windows for checkpoint `id` into a fresh directory.
    pub(super) fn snapshot(
        &self,
        id: u64,
        windows: &Windows,
        table: &KeyTable,
        accumulators: &Accumulators,
    ) -> Result<KeyedSnapshot> {
        let dir = spate_state::fresh_checkpoint_dir(&self.dir, id)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| OperatorError::invalid(format!("cannot create {}: {e}", dir.display())))?;
        let size = self.write(&dir.join(FILE), windows, table, accumulators)?;
        Ok(KeyedSnapshot {
            backend: StateBackendKind::Heap,
            key_groups: self.key_groups,
            dir,
            files: vec![LocalStateFile {
                name: FILE.to_string(),
                size,
                shared: false,
            }],
        })
    }

    fn write(
        &self,
        path: &Path,
        windows: &Windows,
        table: &KeyTable,
        accumulators: &Accumulators,
    ) -> Result<u64> {
        let mut writer = HeapSnapshotWriter::create(path, self.max_parallelism)?;
        let (state, open): (_, Box<dyn Iterator<Item = _>>) = match windows {
            Windows::Aligned(_, panes) => (ALIGNED, Box::new(panes.open_windows())),
            Windows::Session(sessions) => (SESSION, Box::new(sessions.open_windows())),
        };
        let mut window = Vec::with_capacity(16);
        let mut value = Vec::new();
        for (key, start, end, slot) in open {
            let key = table.bytes(key);
            window.clear();
            put_i64(&mut window, start);
            put_i64(&mut window, end);
            value.clear();
            accumulators.encode(slot, &mut value);
            writer.write(&SnapshotEntry {
                key_group: key_group(hash_key(key), self.max_parallelism),
                state,
                key,
                user_key: Some(&window),
                value: &value,
            })?;
        }
        Ok(writer.finish()?)
    }

    /// Reopens the windows of this instance's key groups from the restored snapshots. Windows
    /// of a key are added in the order they were written, so restored panes fire in the order
    /// the snapshotted ones would have.
    pub(super) fn restore(
        &self,
        state: &StateContext,
        watermark: Timestamp,
        windows: &mut Windows,
        table: &mut KeyTable,
        accumulators: &mut Accumulators,
    ) -> Result<()> {
        let snapshots = state
            .restored
            .iter()
            .flat_map(|restored| &restored.keyed)
            .filter(|snapshot| snapshot.key_groups.intersects(&self.key_groups));
        for snapshot in snapshots {
            let path = snapshot.dir.join(FILE);
            let mut reader = HeapSnapshotReader::open(&path)?;
            reader.expect_max_parallelism(self.max_parallelism)?;
            let expected = match windows {
                Windows::Aligned(..) => ALIGNED,
                Windows::Session(_) => SESSION,
            };
            while let Some(entry) = reader.next_entry()? {
                if !self.key_groups.contains(entry.key_group) {
                    continue;
                }
                if entry.state != expected {
                    return Err(corrupt(
                        &path,
                        format!(
                            "it holds {} windows, this operator has {expected} windows",
                            entry.state
                        ),
                    ));
                }
                let (start, end) = bounds(entry.user_key).map_err(|r| corrupt(&path, r))?;
                let key = table.intern(entry.key);
                let slot = match windows {
                    Windows::Aligned(_, panes) => {
                        panes.slot(start, end, key, watermark, accumulators, table)
                    }
                    Windows::Session(sessions) => {
                        let slot = accumulators.alloc();
                        table.retain(key);
                        sessions.restore(key, start, end, slot);
                        slot
                    }
                };
                accumulators
                    .decode(slot, entry.value)
                    .map_err(|r| corrupt(&path, r))?;
            }
        }
        if let Windows::Session(sessions) = windows {
            sessions.index_changes();
        }
        Ok(())
    }
}

fn bounds(window: Option<&[u8]>) -> Result<(Timestamp, Timestamp), String> {
    let mut reader = Reader::new(window.ok_or("an entry has no window")?);
    let bounds = (reader.i64("window start")?, reader.i64("window end")?);
    reader.finish("the window bounds")?;
    Ok(bounds)
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> OperatorError {
    OperatorError::invalid(format!(
        "cannot restore windows from {}: {reason}",
        path.display()
    ))
}
