//! Keyed state an operator keeps in its own in-memory structures (the window operator on the
//! heap backend), written as and read from the snapshots the backends use, so that such an
//! operator's checkpoints restore into either backend and either backend's into it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spate_api::{KeyGroupRange, KeyedSnapshot, StateBackendKind, StateContext, Timestamp};

use crate::backend::check_group;
use crate::error::{Result, StateError};
use crate::heap::STATE_FILE;
use crate::heap::snapshot::{HeapSnapshotWriter, SnapshotEntry};
use crate::key::Key;
use crate::timers::{EVENT_TIME, TIMERS_FILE};
use crate::ttl::{Clock, SystemClock};
use crate::{restore, value};

/// Writes one checkpoint's snapshot in the heap backend's format: what `HeapBackend::snapshot`
/// would write for the same map entries and event-time timers.
#[derive(Debug)]
pub struct HeapSnapshotBuilder {
    dir: PathBuf,
    key_groups: KeyGroupRange,
    state: HeapSnapshotWriter,
    timers: HeapSnapshotWriter,
    value: Vec<u8>,
}

impl HeapSnapshotBuilder {
    /// Starts checkpoint `checkpoint_id`'s snapshot under the instance's state directory `base`.
    pub fn create(
        base: &Path,
        checkpoint_id: u64,
        key_groups: KeyGroupRange,
        max_parallelism: u32,
    ) -> Result<Self> {
        let dir = crate::local::fresh_checkpoint_dir(base, checkpoint_id)?;
        std::fs::create_dir(&dir).map_err(StateError::io("create", &dir))?;
        Ok(HeapSnapshotBuilder {
            state: HeapSnapshotWriter::create(&dir.join(STATE_FILE), max_parallelism)?,
            timers: HeapSnapshotWriter::create(&dir.join(TIMERS_FILE), max_parallelism)?,
            dir,
            key_groups,
            value: Vec::new(),
        })
    }

    /// Adds `user_key → payload` to `key`'s entries of map state `state` (no time-to-live).
    pub fn map_entry(
        &mut self,
        state: &str,
        key: Key<'_>,
        user_key: &[u8],
        payload: &[u8],
    ) -> Result<()> {
        check_group(self.key_groups, key)?;
        self.value.clear();
        value::write_value(&mut self.value, None, payload);
        self.state.write(&SnapshotEntry {
            key_group: key.group(),
            state,
            key: key.bytes(),
            user_key: Some(user_key),
            value: &self.value,
        })
    }

    pub fn event_time_timer(&mut self, key: Key<'_>, timestamp: Timestamp) -> Result<()> {
        check_group(self.key_groups, key)?;
        self.timers.write(&SnapshotEntry {
            key_group: key.group(),
            state: EVENT_TIME,
            key: key.bytes(),
            user_key: Some(&timestamp.to_be_bytes()),
            value: &[],
        })
    }

    pub fn finish(self) -> Result<KeyedSnapshot> {
        self.state.finish()?;
        self.timers.finish()?;
        Ok(KeyedSnapshot {
            backend: StateBackendKind::Heap,
            key_groups: self.key_groups,
            files: crate::local::list_files(&self.dir)?,
            dir: self.dir,
        })
    }
}

/// Sees a restored map entry: (key, user key, payload).
pub type MapEntryVisitor<'a> = dyn FnMut(Key<'_>, &[u8], &[u8]) -> Result<()> + 'a;

/// Calls `apply(key, user key, payload)` with every live entry of map state `state` that the
/// snapshots `ctx` is restored from hold for its key groups, whichever backend wrote them.
/// Timers are not read: an operator keeping its own state knows which timers its entries imply.
pub fn for_each_restored_map_entry(
    ctx: &StateContext,
    max_parallelism: u32,
    state: &str,
    apply: &mut MapEntryVisitor<'_>,
) -> Result<()> {
    restore::check_context(ctx, max_parallelism)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    for snapshot in restore::overlapping(ctx) {
        restore::for_each_entry(
            snapshot,
            ctx.key_groups,
            max_parallelism,
            &clock,
            &mut |entry| {
                if entry.state != state {
                    return Ok(());
                }
                let corrupt = |reason| StateError::CorruptValue {
                    state: state.to_string(),
                    reason,
                };
                let user_key = entry
                    .user_key
                    .ok_or_else(|| corrupt("a map entry without a user key"))?;
                let header = value::value_header(entry.value).map_err(corrupt)?;
                let key = Key::new(entry.key, max_parallelism);
                apply(key, user_key, &entry.value[header.payload_start..])
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use spate_api::RestoredState;

    use super::*;
    use crate::{HeapBackend, RocksDbBackend, StateDescriptor, StateKind};

    const MAX: u32 = 128;

    fn context(dir: &Path, backend: StateBackendKind, keyed: Vec<KeyedSnapshot>) -> StateContext {
        StateContext {
            dir: dir.to_path_buf(),
            backend,
            key_groups: KeyGroupRange::new(0, MAX),
            restored: Some(RestoredState {
                checkpoint_id: 1,
                entries: Vec::new(),
                keyed,
            }),
            checkpointing: true,
        }
    }

    #[test]
    fn built_snapshots_restore_into_both_backends_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let key = |bytes| Key::new(bytes, MAX);
        let mut builder =
            HeapSnapshotBuilder::create(dir.path(), 7, KeyGroupRange::new(0, MAX), MAX).unwrap();
        builder.map_entry("m", key(b"a"), b"1", b"one").unwrap();
        builder.map_entry("m", key(b"a"), b"2", b"two").unwrap();
        builder.map_entry("other", key(b"b"), b"1", b"x").unwrap();
        builder.event_time_timer(key(b"a"), 41).unwrap();
        let snapshot = builder.finish().unwrap();
        assert_eq!(snapshot.dir, dir.path().join("checkpoints/chk-7"));

        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        for kind in [StateBackendKind::Heap, StateBackendKind::RocksDb] {
            let ctx = context(
                &dir.path().join(format!("{kind:?}")),
                kind,
                vec![snapshot.clone()],
            );
            let mut backend: Box<dyn crate::KeyedStateBackend> = match kind {
                StateBackendKind::Heap => {
                    Box::new(HeapBackend::open(&ctx, MAX, clock.clone()).unwrap())
                }
                StateBackendKind::RocksDb => {
                    Box::new(RocksDbBackend::open(&ctx, MAX, clock.clone()).unwrap())
                }
            };
            let m = backend
                .register(&StateDescriptor::new("m"), StateKind::Map)
                .unwrap();
            assert_eq!(
                backend.map_get(m, key(b"a"), b"2").unwrap(),
                Some(&b"two"[..])
            );
            let timers = backend.timers();
            assert_eq!(
                timers.next_timestamp(crate::TimeDomain::EventTime),
                Some(41)
            );

            // The entries read back from this backend's own snapshot are those written.
            let own = backend.snapshot(2).unwrap();
            let ctx = context(&dir.path().join("reader"), kind, vec![own]);
            let mut seen = Vec::new();
            for_each_restored_map_entry(&ctx, MAX, "m", &mut |key, user_key, payload| {
                seen.push((key.bytes().to_vec(), user_key.to_vec(), payload.to_vec()));
                Ok(())
            })
            .unwrap();
            seen.sort();
            assert_eq!(
                seen,
                vec![
                    (b"a".to_vec(), b"1".to_vec(), b"one".to_vec()),
                    (b"a".to_vec(), b"2".to_vec(), b"two".to_vec()),
                ]
            );
        }
    }

    #[test]
    fn entries_of_foreign_key_groups_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder =
            HeapSnapshotBuilder::create(dir.path(), 1, KeyGroupRange::new(0, 0), MAX).unwrap();
        assert!(
            builder
                .map_entry("m", Key::new(b"a", MAX), b"1", b"1")
                .is_err()
        );
        assert!(builder.event_time_timer(Key::new(b"a", MAX), 1).is_err());
    }
}
