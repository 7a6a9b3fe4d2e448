//! Keyed state of operator instances: a byte-level [`KeyedStateBackend`] with two
//! implementations ([`HeapBackend`], [`RocksDbBackend`]), typed handles on top ([`ValueState`],
//! [`ListState`], [`MapState`]) with an optional time-to-live, and a [`TimerService`] per
//! backend.
//!
//! # Addressing
//!
//! State is addressed by (state name, key group, key, user key for maps). Keys are the Arrow
//! row-format bytes of the key columns and their key group is
//! `key_group(hash_key(key), max_parallelism)`, as for routing ([`Key::new`]). An instance owns
//! the contiguous key groups of its [`StateContext`] and refuses others.
//!
//! # Layout
//!
//! RocksDB keys are `[key group u16 BE][name length][name][key length varint][key][slot][user
//! key]` (`key.rs`): the key group comes first, so any range of key groups is one contiguous key
//! range, which is what rescaling moves. The heap backend keeps one
//! hash table per state and key group. Both store values in one form: a tag byte (plain,
//! expiring with an 8-byte expiry time, or a list of such values), so snapshots of either
//! backend restore into the other by copying entries.
//!
//! # Time-to-live
//!
//! A [`StateDescriptor`] may carry a [`Ttl`]: each write stores `now + ttl` with the value
//! (optionally each read too). Reads hide expired values; iteration removes them; heap snapshots
//! and restores skip them; RocksDB drops them in compaction (a compaction filter). Time comes
//! from a [`Clock`] given at open ([`ManualClock`] in tests).
//!
//! # Snapshots
//!
//! [`KeyedStateBackend::snapshot`] writes `<state dir>/checkpoints/chk-<id>/` and lists its
//! files:
//!
//! * heap: `state.snap`, a full copy in the heap snapshot format ([`HeapSnapshotWriter`]:
//!   magic and version, then entries with their key group and state name, and an xxh3 checksum
//!   the reader verifies before returning anything);
//! * RocksDB: a native checkpoint. Memtables are flushed and live SST files hard-linked, so an
//!   SST file keeps its name as long as it lives, and a checkpoint after a small change adds
//!   about one small SST file (the flushed memtable). Compactions add their outputs to the next
//!   checkpoint: leveled compaction with dynamic level sizes keeps most data in the last level,
//!   whose files are rewritten only when compaction reaches their key range. Keys hash over all
//!   key groups, so each flushed file spans the whole key range: once four L0 files gather
//!   (four checkpoints with changes), compacting them rewrites the overlapped files of the next
//!   level, which for a small state (below one level's target size) is all of it. SST files are
//!   `shared` (upload once, reference later); MANIFEST, CURRENT, OPTIONS are not;
//! * both: `timers.snap`, the timers in the heap snapshot format.
//!
//! The directory stays until a later checkpoint completes
//! ([`KeyedStateBackend::notify_checkpoint_complete`]).
//!
//! Shared file names are unique within one database's history: a RocksDB instance restored by
//! linking a snapshot continues that snapshot's file numbering, so a name it shares with the
//! snapshot it was restored from means the same file. Nothing more: a fresh database (first
//! start, rescale, restore from a heap snapshot) numbers from the start again, and a restore
//! from checkpoint N may reuse the names of files that a later, never completed checkpoint
//! wrote. An uploader that skips files "already uploaded" must therefore start from the shared
//! files of the one snapshot the instance linked, if any ([`KeyedStateBackend::restored_shared_files`]).
//!
//! # Restore and rescale
//!
//! [`open_backend`] restores from `ctx.restored.keyed`: one or several snapshots, each of some
//! key-group range, of either backend, keeping only the key groups of `ctx.key_groups`. The heap
//! backend reads the entries in range. RocksDB with exactly one RocksDB snapshot of the same
//! range links its files as the working database; otherwise it copies the entries in range of
//! each snapshot into a fresh database (reading RocksDB snapshots in place, read-only, over just
//! that key range). A snapshot of another max parallelism is refused: its key groups mean other
//! keys.
//!
//! # Durability
//!
//! RocksDB runs without a WAL: checkpoints are the only durability the runtime relies on, and a
//! working database is never reopened after a failure (the instance restores from its last
//! checkpoint), so a WAL would double every write for nothing.

mod backend;
mod codec;
mod error;
mod export;
mod heap;
mod key;
mod local;
mod restore;
mod rocks;
mod timers;
mod ttl;
mod typed;
mod value;
mod varint;

use std::sync::Arc;

use spate_api::{StateBackendKind, StateContext};

pub use backend::{
    Flow, KeyVisitor, KeyedStateBackend, ListView, MapVisitor, StateDescriptor, StateId, StateKind,
};
pub use error::{Result, StateError};
pub use export::{HeapSnapshotBuilder, MapEntryVisitor, for_each_restored_map_entry};
pub use heap::HeapBackend;
pub use heap::snapshot::{HeapSnapshotReader, HeapSnapshotWriter, SnapshotEntry};
pub use key::{Key, MAX_KEY_GROUPS, OwnedKey};
pub use local::{fresh_checkpoint_dir, release_older_than};
pub use rocks::RocksDbBackend;
pub use timers::{TimeDomain, Timer, TimerService};
pub use ttl::{Clock, ManualClock, SystemClock, Ttl};
pub use typed::{ListState, MapState, ValueState};

/// Opens the keyed state of an operator instance with the backend `ctx.backend`, restored from
/// `ctx.restored`, with time-to-live measured by the wall clock.
pub fn open_backend(
    ctx: &StateContext,
    max_parallelism: u32,
) -> Result<Box<dyn KeyedStateBackend>> {
    open_backend_with_clock(ctx, max_parallelism, Arc::new(SystemClock))
}

/// [`open_backend`] with a given clock for time-to-live.
pub fn open_backend_with_clock(
    ctx: &StateContext,
    max_parallelism: u32,
    clock: Arc<dyn Clock>,
) -> Result<Box<dyn KeyedStateBackend>> {
    Ok(match ctx.backend {
        StateBackendKind::Heap => Box::new(HeapBackend::open(ctx, max_parallelism, clock)?),
        StateBackendKind::RocksDb => Box::new(RocksDbBackend::open(ctx, max_parallelism, clock)?),
    })
}
