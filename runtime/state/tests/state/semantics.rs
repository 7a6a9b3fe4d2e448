//! Value, map and list semantics, run against both backends.

use std::collections::BTreeSet;

use spate_state::{
    Flow, Key, KeyedStateBackend, ManualClock, StateDescriptor, StateError, StateKind, Ttl,
};

use crate::common::{KINDS, key_bytes, open};

fn each_backend(test: impl Fn(&mut dyn KeyedStateBackend)) {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let mut backend = open(dir.path(), kind, &ManualClock::new(0));
        test(backend.as_mut());
    }
}

#[test]
fn value_state_gets_sets_and_clears_per_key() {
    each_backend(|backend| {
        let count = backend.value_state::<u64>("count").unwrap();
        let (a, b) = (key_bytes(1), key_bytes(2));
        let (a, b) = (backend.key(&a), backend.key(&b));
        assert_eq!(count.get(backend, a).unwrap(), None);
        count.set(backend, a, &1).unwrap();
        count.set(backend, b, &20).unwrap();
        count.set(backend, a, &2).unwrap();
        assert_eq!(count.get(backend, a).unwrap(), Some(2));
        assert_eq!(count.get(backend, b).unwrap(), Some(20));

        let keys: BTreeSet<Vec<u8>> = count
            .keys(backend)
            .unwrap()
            .into_iter()
            .map(|k| k.bytes)
            .collect();
        assert_eq!(keys, BTreeSet::from([key_bytes(1), key_bytes(2)]));

        count.clear(backend, a).unwrap();
        assert_eq!(count.get(backend, a).unwrap(), None);
        assert_eq!(count.keys(backend).unwrap().len(), 1);
    });
}

#[test]
fn states_of_the_same_key_are_independent() {
    each_backend(|backend| {
        let first = backend.value_state::<String>("first").unwrap();
        let second = backend.value_state::<String>("second").unwrap();
        let bytes = key_bytes(7);
        let key = backend.key(&bytes);
        first.set(backend, key, &"one".to_string()).unwrap();
        assert_eq!(second.get(backend, key).unwrap(), None);
        second.set(backend, key, &"two".to_string()).unwrap();
        first.clear(backend, key).unwrap();
        assert_eq!(second.get(backend, key).unwrap().as_deref(), Some("two"));
        assert!(first.keys(backend).unwrap().is_empty());
    });
}

#[test]
fn map_state_keeps_entries_per_key_in_user_key_order() {
    each_backend(|backend| {
        let map = backend.map_state::<String, i64>("seen").unwrap();
        let (a, b) = (key_bytes(1), key_bytes(2));
        let (a, b) = (backend.key(&a), backend.key(&b));
        assert!(map.is_empty(backend, a).unwrap());
        for (user_key, value) in [("c", 3), ("a", 1), ("b", 2)] {
            map.put(backend, a, &user_key.to_string(), &value).unwrap();
        }
        map.put(backend, b, &"a".to_string(), &100).unwrap();
        map.put(backend, a, &"b".to_string(), &22).unwrap();

        assert_eq!(map.get(backend, a, &"b".to_string()).unwrap(), Some(22));
        assert_eq!(map.get(backend, a, &"z".to_string()).unwrap(), None);
        assert!(map.contains(backend, a, &"c".to_string()).unwrap());
        assert_eq!(
            map.entries(backend, a).unwrap(),
            vec![
                ("a".to_string(), 1),
                ("b".to_string(), 22),
                ("c".to_string(), 3)
            ]
        );
        let mut first = None;
        map.for_each(backend, a, |k, _| {
            first = Some(k);
            Ok(Flow::Break(()))
        })
        .unwrap();
        assert_eq!(first.as_deref(), Some("a"));

        map.remove(backend, a, &"a".to_string()).unwrap();
        assert_eq!(map.entries(backend, a).unwrap().len(), 2);
        assert_eq!(map.keys(backend).unwrap().len(), 2);
        map.clear(backend, a).unwrap();
        assert!(map.is_empty(backend, a).unwrap());
        assert_eq!(
            map.entries(backend, b).unwrap(),
            vec![("a".to_string(), 100)]
        );
        assert_eq!(map.keys(backend).unwrap().len(), 1);
    });
}

#[test]
fn map_keys_that_prefix_each_other_stay_apart() {
    each_backend(|backend| {
        let map = backend.map_state::<u8, u8>("m").unwrap();
        // Same key group, one key a prefix of the other: entries must not leak between them.
        let (short, long) = (b"ab".as_slice(), b"abc".as_slice());
        let (short, long) = (Key::with_group(3, short), Key::with_group(3, long));
        map.put(backend, short, &1, &1).unwrap();
        map.put(backend, long, &2, &2).unwrap();
        assert_eq!(map.entries(backend, short).unwrap(), vec![(1, 1)]);
        assert_eq!(map.entries(backend, long).unwrap(), vec![(2, 2)]);
        map.clear(backend, short).unwrap();
        assert_eq!(map.entries(backend, long).unwrap(), vec![(2, 2)]);
    });
}

#[test]
fn list_state_appends_replaces_and_clears() {
    each_backend(|backend| {
        let list = backend.list_state::<(u32, String)>("events").unwrap();
        let bytes = key_bytes(3);
        let key = backend.key(&bytes);
        assert!(list.get(backend, key).unwrap().is_empty());
        for i in 0..5 {
            list.add(backend, key, &(i, format!("e{i}"))).unwrap();
        }
        let got = list.get(backend, key).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[4], (4, "e4".to_string()));
        list.update(backend, key, &[(9, "x".to_string()), (8, "y".to_string())])
            .unwrap();
        list.add(backend, key, &(7, "z".to_string())).unwrap();
        let order: Vec<u32> = list
            .get(backend, key)
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(order, vec![9, 8, 7]);
        assert_eq!(list.keys(backend).unwrap().len(), 1);
        list.update(backend, key, &[]).unwrap();
        assert!(list.get(backend, key).unwrap().is_empty());
        list.add(backend, key, &(1, String::new())).unwrap();
        list.clear(backend, key).unwrap();
        assert!(list.get(backend, key).unwrap().is_empty());
        assert!(list.keys(backend).unwrap().is_empty());
    });
}

#[test]
fn registration_is_idempotent_and_checked() {
    each_backend(|backend| {
        let first = backend.register(&"s".into(), StateKind::Value).unwrap();
        let again = backend.register(&"s".into(), StateKind::Value).unwrap();
        assert_eq!(first, again);
        let err = backend.register(&"s".into(), StateKind::Map).unwrap_err();
        assert!(matches!(err, StateError::WrongKind { .. }), "{err}");
        let with_ttl =
            StateDescriptor::new("s").with_ttl(Ttl::new(std::time::Duration::from_secs(1)));
        let err = backend.register(&with_ttl, StateKind::Value).unwrap_err();
        assert!(err.to_string().contains("'s'"), "{err}");
        assert!(backend.register(&"".into(), StateKind::Value).is_err());

        let bytes = key_bytes(1);
        let key = backend.key(&bytes);
        let err = backend.map_get(first, key, b"x").unwrap_err();
        assert!(err.to_string().contains("value state"), "{err}");
    });
}

#[test]
fn keys_of_foreign_key_groups_are_refused() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        let range = spate_api::KeyGroupRange::new(0, 64);
        let mut backend = crate::common::open_range(dir.path(), kind, range, &[], &clock);
        let state = backend.value_state::<u8>("v").unwrap();
        let err = state
            .set(backend.as_mut(), Key::with_group(64, b"k"), &1)
            .unwrap_err();
        assert!(
            matches!(err, StateError::ForeignKeyGroup { key_group: 64, .. }),
            "{err}"
        );
    }
}

#[test]
fn visiting_keys_sees_each_key_once_and_can_stop() {
    each_backend(|backend| {
        let map = backend.map_state::<u32, u32>("m").unwrap();
        let keys: Vec<Vec<u8>> = (0..50).map(key_bytes).collect();
        for bytes in &keys {
            let key = backend.key(bytes);
            for user_key in 0..3 {
                map.put(backend, key, &user_key, &user_key).unwrap();
            }
        }
        let mut seen = Vec::new();
        backend
            .visit_keys(map.id(), &mut |key| {
                seen.push(key.into_owned());
                Ok(Flow::Continue(()))
            })
            .unwrap();
        assert_eq!(seen.len(), 50);
        assert!(seen.windows(2).all(|w| w[0].group <= w[1].group));
        let distinct: BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), 50);

        let mut visited = 0;
        backend
            .visit_keys(map.id(), &mut |_| {
                visited += 1;
                Ok(if visited == 3 {
                    Flow::Break(())
                } else {
                    Flow::Continue(())
                })
            })
            .unwrap();
        assert_eq!(visited, 3);
    });
}

#[test]
fn byte_level_values_are_returned_as_written() {
    each_backend(|backend| {
        let state = backend.register(&"raw".into(), StateKind::Value).unwrap();
        let key = Key::with_group(5, b"\x00\xff");
        backend.put(state, key, b"").unwrap();
        assert_eq!(backend.get(state, key).unwrap(), Some(&b""[..]));
        let big = vec![7u8; 100_000];
        backend.put(state, key, &big).unwrap();
        assert_eq!(backend.get(state, key).unwrap(), Some(big.as_slice()));
    });
}
