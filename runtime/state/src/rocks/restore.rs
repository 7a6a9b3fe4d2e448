//! Restoring a RocksDB instance. With one snapshot of exactly this instance's key groups (no
//! rescale), the snapshot's files become the working database: SST files are hard-linked (they
//! are immutable), the small metadata files copied. Otherwise (rescale, or a heap snapshot) a
//! fresh database gets the owned key groups of each snapshot copied in, in write batches; each
//! source is read through its key-group range only, so the cost is proportional to the state
//! kept, not to the state of the old instances.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{DB, ReadOptions, WriteBatch, WriteOptions};
use spate_api::{KeyGroupRange, KeyedSnapshot, StateBackendKind};

use crate::error::{Result, StateError};
use crate::heap::snapshot::SnapshotEntry;
use crate::key::{self, group_bytes};
use crate::restore;
use crate::timers::TIMERS_FILE;
use crate::ttl::Clock;

use super::options::db_options;

const BATCH_BYTES: usize = 4 << 20;

/// The snapshot that can become the working database as it is, if there is one.
pub(super) fn linkable<'a>(
    snapshots: &[&'a KeyedSnapshot],
    range: KeyGroupRange,
) -> Option<&'a KeyedSnapshot> {
    match snapshots {
        [only] if only.backend == StateBackendKind::RocksDb && only.key_groups == range => {
            Some(only)
        }
        _ => None,
    }
}

/// Fills the (new, empty) directory `db_path` with the database files of `snapshot`.
pub(super) fn link_files(snapshot: &KeyedSnapshot, db_path: &Path) -> Result<()> {
    std::fs::create_dir_all(db_path).map_err(StateError::io("create", db_path))?;
    for file in &snapshot.files {
        if file.name == TIMERS_FILE {
            continue;
        }
        let from = snapshot.dir.join(&file.name);
        let to = db_path.join(&file.name);
        // A hard link fails across file systems (a download directory elsewhere): copy then.
        let linked = file.shared && std::fs::hard_link(&from, &to).is_ok();
        if !linked {
            std::fs::copy(&from, &to).map_err(StateError::io("copy", &from))?;
        }
    }
    Ok(())
}

/// Copies the entries of `snapshot` in `range` into `db`.
pub(super) fn copy_into(
    db: &DB,
    db_path: &Path,
    write: &WriteOptions,
    snapshot: &KeyedSnapshot,
    range: KeyGroupRange,
    max_parallelism: u32,
    clock: &Arc<dyn Clock>,
) -> Result<()> {
    let mut batch = WriteBatch::default();
    let mut stored_key = Vec::new();
    let mut state = (String::new(), Vec::new());
    let flush = |batch: &mut WriteBatch| -> Result<()> {
        let full = std::mem::take(batch);
        db.write_opt(full, write)
            .map_err(StateError::rocksdb("write restored state into", db_path))
    };
    restore::for_each_entry(snapshot, range, max_parallelism, clock, &mut |entry| {
        if state.0 != entry.state {
            state = (entry.state.to_string(), key::state_part(entry.state)?);
        }
        match entry.user_key {
            None => key::write_value_key(&mut stored_key, entry.key_group, &state.1, entry.key),
            Some(user_key) => key::write_map_key(
                &mut stored_key,
                entry.key_group,
                &state.1,
                entry.key,
                user_key,
            ),
        }
        batch.put(&stored_key, entry.value);
        if batch.size_in_bytes() >= BATCH_BYTES {
            flush(&mut batch)?;
        }
        Ok(())
    })?;
    flush(&mut batch)
}

/// Calls `apply` with every entry of the RocksDB snapshot in `dir` whose key group is in
/// `range`, reading the snapshot in place (read-only).
pub(crate) fn for_each_stored_entry(
    dir: &Path,
    range: KeyGroupRange,
    clock: &Arc<dyn Clock>,
    apply: &mut dyn FnMut(SnapshotEntry<'_>) -> Result<()>,
) -> Result<()> {
    let mut options = db_options(clock);
    options.create_if_missing(false);
    let db = DB::open_for_read_only(&options, dir, false)
        .map_err(StateError::rocksdb("open snapshot", dir))?;
    let mut read = ReadOptions::default();
    // A one-off scan would only evict the cache's useful blocks.
    read.fill_cache(false);
    read.set_iterate_upper_bound(group_bytes(range.end).to_vec());
    let mut iter = db.raw_iterator_opt(read);
    iter.seek(group_bytes(range.start));
    while let Some((stored_key, value)) = iter.item() {
        let parts = key::decode(stored_key)
            .ok_or_else(|| StateError::corrupt(dir, "a stored key that does not decode"))?;
        let state = std::str::from_utf8(parts.state)
            .map_err(|_| StateError::corrupt(dir, "a state name that is not UTF-8"))?;
        apply(SnapshotEntry {
            key_group: parts.group,
            state,
            key: parts.key,
            user_key: parts.user_key,
            value,
        })?;
        iter.next();
    }
    iter.status()
        .map_err(StateError::rocksdb("read snapshot", dir))
}
