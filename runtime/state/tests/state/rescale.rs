//! Rescaling: the snapshots of p=2 restored into p=3 and p=1, for every pair of backends.

use std::collections::{BTreeMap, BTreeSet};

use spate_api::{KeyGroupRange, KeyedSnapshot, StateBackendKind};
use spate_state::{Key, KeyedStateBackend, ManualClock, TimeDomain};

use crate::common::{KINDS, MAX_PARALLELISM, key_bytes, open_range};

const KEYS: u32 = 2_000;

/// What every key should end up with.
#[derive(Debug, Default, PartialEq, Eq)]
struct Reference {
    values: BTreeMap<Vec<u8>, u64>,
    maps: BTreeMap<Vec<u8>, Vec<(u32, u32)>>,
    lists: BTreeMap<Vec<u8>, Vec<u32>>,
    timers: BTreeSet<(i64, Vec<u8>)>,
}

fn range(subtask: u32, parallelism: u32) -> KeyGroupRange {
    KeyGroupRange::of_subtask(subtask, parallelism, MAX_PARALLELISM)
}

/// Writes every key into the instance that owns its key group, and into the reference.
fn write_p2(
    kind: StateBackendKind,
    dirs: &[tempfile::TempDir],
    clock: &ManualClock,
) -> (Vec<KeyedSnapshot>, Reference) {
    let mut reference = Reference::default();
    let mut instances: Vec<Box<dyn KeyedStateBackend>> = (0..2)
        .map(|s| open_range(dirs[s as usize].path(), kind, range(s, 2), &[], clock))
        .collect();
    for i in 0..KEYS {
        let bytes = key_bytes(i);
        let key = Key::new(&bytes, MAX_PARALLELISM);
        let owner = spate_api::subtask_for_key_group(key.group(), 2, MAX_PARALLELISM);
        let backend = instances[owner as usize].as_mut();
        let value = backend.value_state::<u64>("value").unwrap();
        let map = backend.map_state::<u32, u32>("map").unwrap();
        let list = backend.list_state::<u32>("list").unwrap();
        value.set(backend, key, &u64::from(i)).unwrap();
        reference.values.insert(bytes.clone(), u64::from(i));
        if i % 2 == 0 {
            let entries: Vec<(u32, u32)> = (0..3).map(|j| (j, i + j)).collect();
            for (k, v) in &entries {
                map.put(backend, key, k, v).unwrap();
            }
            reference.maps.insert(bytes.clone(), entries);
        }
        if i % 5 == 0 {
            list.add(backend, key, &i).unwrap();
            list.add(backend, key, &(i + 1)).unwrap();
            reference.lists.insert(bytes.clone(), vec![i, i + 1]);
        }
        if i % 7 == 0 {
            backend
                .timers()
                .register(TimeDomain::EventTime, key, i64::from(i))
                .unwrap();
            reference.timers.insert((i64::from(i), bytes.clone()));
        }
    }
    let snapshots = instances
        .iter_mut()
        .map(|b| b.snapshot(1).unwrap())
        .collect();
    (snapshots, reference)
}

/// Reads everything back from the new instances; each key must be in exactly one.
fn read_all(instances: &mut [Box<dyn KeyedStateBackend>]) -> Reference {
    let mut found = Reference::default();
    let mut owners: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (index, backend) in instances.iter_mut().enumerate() {
        let backend = backend.as_mut();
        let value = backend.value_state::<u64>("value").unwrap();
        let map = backend.map_state::<u32, u32>("map").unwrap();
        let list = backend.list_state::<u32>("list").unwrap();
        for key in value.keys(backend).unwrap() {
            assert!(backend.key_groups().contains(key.group));
            let previous = owners.insert(key.bytes.clone(), index);
            assert_eq!(previous, None, "key in two instances");
            let v = value.get(backend, key.as_key()).unwrap().unwrap();
            found.values.insert(key.bytes.clone(), v);
        }
        for key in map.keys(backend).unwrap() {
            assert_eq!(owners.get(&key.bytes), Some(&index));
            found.maps.insert(
                key.bytes.clone(),
                map.entries(backend, key.as_key()).unwrap(),
            );
        }
        for key in list.keys(backend).unwrap() {
            assert_eq!(owners.get(&key.bytes), Some(&index));
            found
                .lists
                .insert(key.bytes.clone(), list.get(backend, key.as_key()).unwrap());
        }
        let range = backend.key_groups();
        let timers = backend.timers();
        while let Some(timer) = timers.pop_due(TimeDomain::EventTime, i64::MAX) {
            assert!(range.contains(timer.key.group));
            assert!(found.timers.insert((timer.timestamp, timer.key.bytes)));
        }
    }
    found
}

#[test]
fn rescaled_state_lands_in_exactly_one_instance() {
    let clock = ManualClock::new(0);
    for from in KINDS {
        let old_dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let (snapshots, reference) = write_p2(from, &old_dirs, &clock);
        let listed: Vec<Vec<String>> = snapshots
            .iter()
            .map(|s| s.files.iter().map(|f| f.name.clone()).collect())
            .collect();
        for to in KINDS {
            for parallelism in [3u32, 1, 2] {
                let new_dirs: Vec<_> = (0..parallelism)
                    .map(|_| tempfile::tempdir().unwrap())
                    .collect();
                // Every instance is handed all old snapshots; each keeps what it owns.
                let mut instances: Vec<_> = (0..parallelism)
                    .map(|s| {
                        open_range(
                            new_dirs[s as usize].path(),
                            to,
                            range(s, parallelism),
                            &snapshots,
                            &clock,
                        )
                    })
                    .collect();
                if parallelism != 2 {
                    // Fresh databases: none of the old file names may be taken as theirs.
                    assert!(
                        instances
                            .iter()
                            .all(|b| b.restored_shared_files().is_empty())
                    );
                }
                let found = read_all(&mut instances);
                assert_eq!(found, reference, "{from:?} p=2 -> {to:?} p={parallelism}");
            }
        }
        // Restores read snapshots in place without leaving files in them.
        for (snapshot, names) in snapshots.iter().zip(&listed) {
            let mut now: Vec<String> = std::fs::read_dir(&snapshot.dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            now.sort();
            assert_eq!(&now, names, "{from:?}");
        }
    }
}
