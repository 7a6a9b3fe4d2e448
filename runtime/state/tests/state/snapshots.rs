//! Snapshot and restore without rescaling: every backend into every backend.

use spate_api::StateBackendKind;
use spate_state::{Key, KeyedStateBackend, ManualClock, TimeDomain, open_backend};

use crate::common::{KINDS, MAX_PARALLELISM, all_key_groups, context, key_bytes, open, open_range};

const KEYS: u32 = 200;

fn fill(backend: &mut dyn KeyedStateBackend) {
    let value = backend.value_state::<u64>("value").unwrap();
    let map = backend.map_state::<u32, String>("map").unwrap();
    let list = backend.list_state::<i32>("list").unwrap();
    for i in 0..KEYS {
        let bytes = key_bytes(i);
        let key = backend.key(&bytes);
        value.set(backend, key, &(u64::from(i) * 3)).unwrap();
        for j in 0..(i % 4) {
            map.put(backend, key, &j, &format!("{i}/{j}")).unwrap();
        }
        for j in 0..(i % 3) {
            list.add(backend, key, &(j as i32 - 1)).unwrap();
        }
        backend
            .timers()
            .register(TimeDomain::EventTime, key, i64::from(i))
            .unwrap();
    }
    backend
        .timers()
        .register(TimeDomain::ProcessingTime, Key::with_group(0, b"p"), 5)
        .unwrap();
}

fn check(backend: &mut dyn KeyedStateBackend) {
    let value = backend.value_state::<u64>("value").unwrap();
    let map = backend.map_state::<u32, String>("map").unwrap();
    let list = backend.list_state::<i32>("list").unwrap();
    for i in 0..KEYS {
        let bytes = key_bytes(i);
        let key = backend.key(&bytes);
        assert_eq!(value.get(backend, key).unwrap(), Some(u64::from(i) * 3));
        let entries: Vec<(u32, String)> = (0..(i % 4)).map(|j| (j, format!("{i}/{j}"))).collect();
        assert_eq!(map.entries(backend, key).unwrap(), entries);
        let elements: Vec<i32> = (0..(i % 3)).map(|j| j as i32 - 1).collect();
        assert_eq!(list.get(backend, key).unwrap(), elements);
    }
    let timers = backend.timers();
    assert_eq!(timers.len(TimeDomain::EventTime), KEYS as usize);
    let fired: Vec<i64> = std::iter::from_fn(|| timers.pop_due(TimeDomain::EventTime, i64::MAX))
        .map(|t| t.timestamp)
        .collect();
    assert_eq!(fired, (0..i64::from(KEYS)).collect::<Vec<_>>());
    assert_eq!(
        timers
            .pop_due(TimeDomain::ProcessingTime, 5)
            .unwrap()
            .key
            .bytes,
        b"p"
    );
}

#[test]
fn snapshots_restore_into_either_backend() {
    let clock = ManualClock::new(0);
    for from in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let mut source = open(dir.path(), from, &clock);
        fill(source.as_mut());
        let snapshot = source.snapshot(7).unwrap();
        assert_eq!(snapshot.backend, from);
        assert_eq!(snapshot.key_groups, all_key_groups());
        assert!(snapshot.files.iter().any(|f| f.name == "timers.snap"));
        for file in &snapshot.files {
            let size = std::fs::metadata(snapshot.dir.join(&file.name))
                .unwrap()
                .len();
            assert_eq!(size, file.size, "{}", file.name);
            assert_eq!(file.shared, file.name.ends_with(".sst"));
        }
        // Writes after the snapshot are not in it.
        let late = source.value_state::<u64>("value").unwrap();
        let bytes = key_bytes(0);
        late.set(source.as_mut(), Key::new(&bytes, MAX_PARALLELISM), &999)
            .unwrap();

        for to in KINDS {
            let target_dir = tempfile::tempdir().unwrap();
            let mut target = open_range(
                target_dir.path(),
                to,
                all_key_groups(),
                std::slice::from_ref(&snapshot),
                &clock,
            );
            check(target.as_mut());
        }
    }
}

#[test]
fn a_restored_rocksdb_instance_keeps_checkpointing() {
    let clock = ManualClock::new(0);
    let dir = tempfile::tempdir().unwrap();
    let mut first = open(dir.path(), StateBackendKind::RocksDb, &clock);
    fill(first.as_mut());
    let snapshot = first.snapshot(1).unwrap();
    drop(first);
    // Same directory: the working database is replaced by the snapshot's files.
    let mut second = open_range(
        dir.path(),
        StateBackendKind::RocksDb,
        all_key_groups(),
        std::slice::from_ref(&snapshot),
        &clock,
    );
    let linked: Vec<_> = snapshot
        .files
        .iter()
        .filter(|f| f.shared)
        .map(|f| f.name.clone())
        .collect();
    assert!(!linked.is_empty());
    assert_eq!(second.restored_shared_files(), linked.as_slice());
    let value = second.value_state::<u64>("value").unwrap();
    let bytes = key_bytes(KEYS + 1);
    let key = second.key(&bytes);
    value.set(second.as_mut(), key, &1).unwrap();
    let next = second.snapshot(2).unwrap();
    let old: Vec<_> = snapshot
        .files
        .iter()
        .filter(|f| f.shared)
        .map(|f| &f.name)
        .collect();
    let new: Vec<_> = next
        .files
        .iter()
        .filter(|f| f.shared)
        .map(|f| &f.name)
        .collect();
    assert!(
        old.iter().all(|name| new.contains(name)),
        "{old:?} vs {new:?}"
    );
    assert_eq!(new.len(), old.len() + 1);

    let third_dir = tempfile::tempdir().unwrap();
    let mut third = open_range(
        third_dir.path(),
        StateBackendKind::RocksDb,
        all_key_groups(),
        &[next],
        &clock,
    );
    let value = third.value_state::<u64>("value").unwrap();
    assert_eq!(value.get(third.as_mut(), key).unwrap(), Some(1));
}

#[test]
fn completed_checkpoints_release_older_snapshot_directories() {
    let clock = ManualClock::new(0);
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let mut backend = open(dir.path(), kind, &clock);
        fill(backend.as_mut());
        let dirs: Vec<_> = (1..=3)
            .map(|id| backend.snapshot(id).unwrap().dir)
            .collect();
        backend.notify_checkpoint_complete(2).unwrap();
        assert!(!dirs[0].exists(), "{kind:?}");
        assert!(dirs[1].exists() && dirs[2].exists(), "{kind:?}");
        // A retried checkpoint id starts from a clean directory.
        let again = backend.snapshot(3).unwrap();
        assert_eq!(again.dir, dirs[2]);
    }
}

#[test]
fn a_corrupt_heap_snapshot_is_refused_naming_the_file() {
    let clock = ManualClock::new(0);
    let dir = tempfile::tempdir().unwrap();
    let mut backend = open(dir.path(), StateBackendKind::Heap, &clock);
    fill(backend.as_mut());
    let snapshot = backend.snapshot(1).unwrap();
    let path = snapshot.dir.join("state.snap");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    for kind in KINDS {
        let target = tempfile::tempdir().unwrap();
        let ctx = context(
            target.path(),
            kind,
            all_key_groups(),
            std::slice::from_ref(&snapshot),
        );
        let err = open_backend(&ctx, MAX_PARALLELISM)
            .err()
            .expect("corrupt snapshot accepted");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("checksum"), "{message}");
    }
}

#[test]
fn a_snapshot_of_another_max_parallelism_is_refused() {
    let clock = ManualClock::new(0);
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let mut backend = open(dir.path(), kind, &clock);
        fill(backend.as_mut());
        let snapshot = backend.snapshot(1).unwrap();
        let target = tempfile::tempdir().unwrap();
        let ctx = context(
            target.path(),
            kind,
            spate_api::KeyGroupRange::new(0, 256),
            std::slice::from_ref(&snapshot),
        );
        let err = open_backend(&ctx, 256).err().expect("accepted");
        assert!(err.to_string().contains("max parallelism"), "{err}");
    }
}
