use std::path::Path;
use std::sync::Arc;

use spate_api::{KeyGroupRange, KeyedSnapshot, RestoredState, StateBackendKind, StateContext};
use spate_state::{KeyedStateBackend, ManualClock, open_backend_with_clock};

pub const MAX_PARALLELISM: u32 = 128;
pub const KINDS: [StateBackendKind; 2] = [StateBackendKind::Heap, StateBackendKind::RocksDb];

pub fn context(
    dir: &Path,
    backend: StateBackendKind,
    key_groups: KeyGroupRange,
    restored: &[KeyedSnapshot],
) -> StateContext {
    StateContext {
        dir: dir.to_path_buf(),
        backend,
        key_groups,
        restored: (!restored.is_empty()).then(|| RestoredState {
            checkpoint_id: 1,
            entries: Vec::new(),
            keyed: restored.to_vec(),
        }),
        ..StateContext::default()
    }
}

pub fn all_key_groups() -> KeyGroupRange {
    KeyGroupRange::new(0, MAX_PARALLELISM)
}

/// A fresh instance owning every key group.
pub fn open(
    dir: &Path,
    backend: StateBackendKind,
    clock: &ManualClock,
) -> Box<dyn KeyedStateBackend> {
    open_range(dir, backend, all_key_groups(), &[], clock)
}

pub fn open_range(
    dir: &Path,
    backend: StateBackendKind,
    key_groups: KeyGroupRange,
    restored: &[KeyedSnapshot],
    clock: &ManualClock,
) -> Box<dyn KeyedStateBackend> {
    let ctx = context(dir, backend, key_groups, restored);
    open_backend_with_clock(&ctx, MAX_PARALLELISM, Arc::new(clock.clone()))
        .unwrap_or_else(|e| panic!("open {} backend: {e}", backend.name()))
}

/// The key bytes of test key `i` (stand-ins for Arrow row-format keys).
pub fn key_bytes(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}
