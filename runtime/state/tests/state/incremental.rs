//! RocksDB snapshots share unchanged SST files: a checkpoint after a small change adds little.

use std::collections::BTreeMap;

use spate_api::{KeyedSnapshot, StateBackendKind};
use spate_state::ManualClock;

use crate::common::{key_bytes, open};

const KEYS: u32 = 50_000;

fn shared_files(snapshot: &KeyedSnapshot) -> BTreeMap<String, u64> {
    snapshot
        .files
        .iter()
        .filter(|f| f.shared)
        .map(|f| (f.name.clone(), f.size))
        .collect()
}

#[test]
fn a_small_change_adds_few_and_small_sst_files() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let mut backend = open(dir.path(), StateBackendKind::RocksDb, &clock);
    let state = backend.value_state::<Vec<u8>>("payload").unwrap();
    let payload = vec![0xabu8; 100];
    for i in 0..KEYS {
        let bytes = key_bytes(i);
        let key = backend.key(&bytes);
        state.set(backend.as_mut(), key, &payload).unwrap();
    }
    let first = shared_files(&backend.snapshot(1).unwrap());

    let changed = vec![0xcdu8; 100];
    for i in (0..KEYS).step_by(100) {
        let bytes = key_bytes(i);
        let key = backend.key(&bytes);
        state.set(backend.as_mut(), key, &changed).unwrap();
    }
    let second = shared_files(&backend.snapshot(2).unwrap());

    let new: BTreeMap<_, _> = second
        .iter()
        .filter(|(name, _)| !first.contains_key(*name))
        .collect();
    let new_bytes: u64 = new.values().copied().sum();
    let total_bytes: u64 = second.values().sum();
    eprintln!(
        "snapshot 1: {} SST files; snapshot 2: {} SST files, {} new ({new_bytes} of {total_bytes} bytes)",
        first.len(),
        second.len(),
        new.len()
    );
    assert!(new.len() <= 2, "new SST files: {new:?}");
    assert!(
        new_bytes * 10 <= total_bytes,
        "{new_bytes} of {total_bytes} bytes are new"
    );
    // Files of the first snapshot that are still live kept their names and contents.
    for (name, size) in &first {
        if let Some(now) = second.get(name) {
            assert_eq!(now, size, "{name}");
        }
    }
    assert!(
        first.keys().all(|name| second.contains_key(name)),
        "{first:?} vs {second:?}"
    );

    // And the second snapshot holds the change.
    let restored_dir = tempfile::tempdir().unwrap();
    let snapshot = backend.snapshot(3).unwrap();
    let mut restored = crate::common::open_range(
        restored_dir.path(),
        StateBackendKind::RocksDb,
        crate::common::all_key_groups(),
        &[snapshot],
        &clock,
    );
    let state = restored.value_state::<Vec<u8>>("payload").unwrap();
    let bytes = key_bytes(100);
    let key = restored.key(&bytes);
    assert_eq!(state.get(restored.as_mut(), key).unwrap(), Some(changed));
}
