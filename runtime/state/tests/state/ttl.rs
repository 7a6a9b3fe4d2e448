//! Time-to-live with a controlled clock, on both backends.

use std::time::Duration;

use spate_state::{HeapSnapshotReader, ManualClock, StateDescriptor, Ttl};

use crate::common::{KINDS, all_key_groups, key_bytes, open, open_range};

fn ttl_of(millis: u64) -> Ttl {
    Ttl::new(Duration::from_millis(millis))
}

#[test]
fn values_expire_and_writes_refresh() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let mut backend = open(dir.path(), kind, &clock);
        let backend = backend.as_mut();
        let state = backend
            .value_state::<u32>(StateDescriptor::new("v").with_ttl(ttl_of(100)))
            .unwrap();
        let bytes = key_bytes(1);
        let key = backend.key(&bytes);
        state.set(backend, key, &1).unwrap();
        clock.set(1_099);
        assert_eq!(state.get(backend, key).unwrap(), Some(1), "{kind:?}");
        // A read does not refresh by default.
        clock.set(1_100);
        assert_eq!(state.get(backend, key).unwrap(), None, "{kind:?}");
        assert!(state.keys(backend).unwrap().is_empty());

        state.set(backend, key, &2).unwrap();
        clock.set(1_150);
        state.set(backend, key, &3).unwrap();
        clock.set(1_240);
        assert_eq!(state.get(backend, key).unwrap(), Some(3), "{kind:?}");
        clock.set(1_250);
        assert_eq!(state.get(backend, key).unwrap(), None, "{kind:?}");
    }
}

#[test]
fn reads_refresh_when_asked_to() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        let mut backend = open(dir.path(), kind, &clock);
        let backend = backend.as_mut();
        let ttl = ttl_of(100).refresh_on_read();
        let value = backend
            .value_state::<u32>(StateDescriptor::new("v").with_ttl(ttl))
            .unwrap();
        let map = backend
            .map_state::<u32, u32>(StateDescriptor::new("m").with_ttl(ttl))
            .unwrap();
        let list = backend
            .list_state::<u32>(StateDescriptor::new("l").with_ttl(ttl))
            .unwrap();
        let bytes = key_bytes(1);
        let key = backend.key(&bytes);
        value.set(backend, key, &1).unwrap();
        map.put(backend, key, &1, &1).unwrap();
        list.add(backend, key, &1).unwrap();
        for now in [90, 180, 270] {
            clock.set(now);
            assert_eq!(
                value.get(backend, key).unwrap(),
                Some(1),
                "{kind:?} at {now}"
            );
            assert_eq!(
                map.entries(backend, key).unwrap(),
                vec![(1, 1)],
                "{kind:?} at {now}"
            );
            assert_eq!(
                list.get(backend, key).unwrap(),
                vec![1],
                "{kind:?} at {now}"
            );
        }
        clock.set(370);
        assert_eq!(value.get(backend, key).unwrap(), None);
        assert!(map.is_empty(backend, key).unwrap());
        assert!(list.get(backend, key).unwrap().is_empty());
    }
}

#[test]
fn map_entries_and_list_elements_expire_one_by_one() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        let mut backend = open(dir.path(), kind, &clock);
        let backend = backend.as_mut();
        let map = backend
            .map_state::<u32, u32>(StateDescriptor::new("m").with_ttl(ttl_of(100)))
            .unwrap();
        let list = backend
            .list_state::<u32>(StateDescriptor::new("l").with_ttl(ttl_of(100)))
            .unwrap();
        let bytes = key_bytes(1);
        let key = backend.key(&bytes);
        map.put(backend, key, &1, &10).unwrap();
        list.add(backend, key, &1).unwrap();
        clock.set(50);
        map.put(backend, key, &2, &20).unwrap();
        list.add(backend, key, &2).unwrap();
        clock.set(120);
        assert_eq!(map.get(backend, key, &1).unwrap(), None, "{kind:?}");
        assert_eq!(
            map.entries(backend, key).unwrap(),
            vec![(2, 20)],
            "{kind:?}"
        );
        assert_eq!(list.get(backend, key).unwrap(), vec![2], "{kind:?}");
        assert_eq!(map.keys(backend).unwrap().len(), 1);
        clock.set(150);
        assert!(map.keys(backend).unwrap().is_empty(), "{kind:?}");
        assert!(list.keys(backend).unwrap().is_empty(), "{kind:?}");
    }
}

#[test]
fn expired_state_is_left_out_of_heap_snapshots_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let mut backend = open(dir.path(), spate_api::StateBackendKind::Heap, &clock);
    let state = backend
        .value_state::<u32>(StateDescriptor::new("v").with_ttl(ttl_of(100)))
        .unwrap();
    let keys: Vec<Vec<u8>> = (0..10).map(key_bytes).collect();
    for (i, bytes) in keys.iter().enumerate() {
        clock.set(i as i64 * 10);
        let key = backend.key(bytes);
        state.set(backend.as_mut(), key, &(i as u32)).unwrap();
    }
    // Keys 0..=4 were written at 0..=40 and expire by 145; keys 5..=9 live until 150..=190.
    clock.set(145);
    let snapshot = backend.snapshot(1).unwrap();
    let mut reader = HeapSnapshotReader::open(&snapshot.dir.join("state.snap")).unwrap();
    let mut entries = 0;
    while reader.next_entry().unwrap().is_some() {
        entries += 1;
    }
    assert_eq!(entries, 5);

    // RocksDB restored from the heap snapshot, later: only the live ones arrive.
    clock.set(175);
    let rocks_dir = tempfile::tempdir().unwrap();
    let mut restored = open_range(
        rocks_dir.path(),
        spate_api::StateBackendKind::RocksDb,
        all_key_groups(),
        &[snapshot],
        &clock,
    );
    let state = restored
        .value_state::<u32>(StateDescriptor::new("v").with_ttl(ttl_of(100)))
        .unwrap();
    let mut live: Vec<u32> = Vec::new();
    for key in state.keys(restored.as_mut()).unwrap() {
        live.extend(state.get(restored.as_mut(), key.as_key()).unwrap());
    }
    live.sort();
    assert_eq!(live, vec![8, 9]);
}
