//! Windows restored from checkpoints, at the same and at other parallelisms, against an
//! uninterrupted run of the same stream.

use std::path::Path;

use spate_api::{MAX_WATERMARK, OperatorSnapshot, RestoredState, StateBackendKind};

use super::*;
use crate::test_cluster::Instances;

const KEYS: [&str; 2] = ["k", "g"];

fn open(
    assigner: WindowAssigner,
    dir: &Path,
    (label, backend): (&str, StateBackendKind),
    parallelism: u32,
    restored: Option<&RestoredState>,
) -> spate_api::Result<Instances> {
    let make = || -> Box<dyn Operator> {
        Box::new(WindowOperator::new(spec(assigner), input_schema()).unwrap())
    };
    Instances::open(make, dir, label, backend, parallelism, restored, &KEYS)
}

fn feed(instances: &mut Instances, batches: &[(Vec<Row>, Timestamp)]) {
    for (rows, watermark) in batches {
        instances.batch(to_batch(rows));
        instances.watermark(*watermark);
    }
}

/// Every row emitted, and the records dropped as late.
fn results(instances: &[Instances]) -> (Vec<Out>, u64) {
    let rows = instances
        .iter()
        .flat_map(|i| &i.output)
        .flat_map(read_rows)
        .collect();
    let late = instances.iter().map(Instances::late_records_dropped).sum();
    (sorted(rows), late)
}

/// Runs the first `cut` batches on `before` instances, snapshots them, restores `after`
/// instances from the snapshot and runs the rest of the stream on them.
fn interrupted(
    assigner: WindowAssigner,
    batches: &[(Vec<Row>, Timestamp)],
    cut: usize,
    (before, after): (u32, u32),
    (backend_before, backend_after): (StateBackendKind, StateBackendKind),
) -> (Vec<Out>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut first = open(
        assigner,
        dir.path(),
        ("before", backend_before),
        before,
        None,
    )
    .unwrap();
    feed(&mut first, &batches[..cut]);
    let restored = first.snapshot(cut as u64);
    let mut second = open(
        assigner,
        dir.path(),
        ("after", backend_after),
        after,
        Some(&restored),
    )
    .unwrap();
    feed(&mut second, &batches[cut..]);
    second.watermark(MAX_WATERMARK);
    results(&[first, second])
}

fn uninterrupted(assigner: WindowAssigner, batches: &[(Vec<Row>, Timestamp)]) -> (Vec<Out>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut whole = open(
        assigner,
        dir.path(),
        ("whole", StateBackendKind::Heap),
        1,
        None,
    )
    .unwrap();
    feed(&mut whole, batches);
    whole.watermark(MAX_WATERMARK);
    results(&[whole])
}

fn check_restores(assigner: WindowAssigner, seed: u64) {
    use StateBackendKind::{Heap, RocksDb};
    let stream = with_late_rows(generate(seed, 2000, 6), seed);
    let mut rng = Lcg(seed);
    for _ in 0..3 {
        let cut = 1 + rng.below(stream.len() as u64 - 1) as usize;
        // A row far behind the watermark right after the cut: late in the uninterrupted run, so
        // it must be late after the restore too instead of reopening a window that fired.
        let mut batches = stream.clone();
        let late = Row {
            ts: batches[cut - 1].1 - 20,
            ..batches[cut].0[0].clone()
        };
        batches[cut].0.insert(0, late);
        let expected = uninterrupted(assigner, &batches);
        assert!(expected.0.len() > 50 && expected.1 > 0, "{assigner:?}");
        // Snapshots of either backend restore into the other.
        for backends in [
            (Heap, Heap),
            (RocksDb, RocksDb),
            (Heap, RocksDb),
            (RocksDb, Heap),
        ] {
            for scale in [(1, 1), (2, 3), (2, 1)] {
                let got = interrupted(assigner, &batches, cut, scale, backends);
                assert!(
                    got == expected,
                    "{assigner:?}, cut at batch {cut}, {scale:?}, {backends:?}"
                );
            }
        }
    }
}

#[test]
fn tumbling_windows_restore_as_if_never_interrupted() {
    check_restores(WindowAssigner::Tumbling { size_ms: 10 }, 21);
}

#[test]
fn hopping_windows_restore_as_if_never_interrupted() {
    check_restores(
        WindowAssigner::Hopping {
            size_ms: 12,
            slide_ms: 4,
        },
        22,
    );
    // A slide beyond the size leaves rows in no window.
    check_restores(
        WindowAssigner::Hopping {
            size_ms: 3,
            slide_ms: 5,
        },
        23,
    );
}

#[test]
fn session_windows_restore_as_if_never_interrupted() {
    check_restores(WindowAssigner::Session { gap_ms: 5 }, 24);
}

fn snapshot_of(op: &mut WindowOperator, dir: &Path, id: u64) -> OperatorSnapshot {
    let ctx = context(dir, None);
    op.open(&ctx).unwrap();
    op.process_batch(simple(&[("a", 5, 1), ("b", 7, 2)]), &mut Output::default())
        .unwrap();
    op.process_watermark(3, &mut Output::default()).unwrap();
    op.snapshot_state(id).unwrap()
}

fn context(dir: &Path, restored: Option<RestoredState>) -> spate_api::OperatorContext {
    let mut ctx = spate_api::OperatorContext::single("window");
    ctx.state.dir = dir.to_path_buf();
    ctx.state.restored = restored;
    ctx
}

fn restored(snapshot: OperatorSnapshot) -> RestoredState {
    RestoredState {
        checkpoint_id: 1,
        entries: snapshot.entries,
        keyed: snapshot.keyed.into_iter().collect(),
    }
}

#[test]
fn a_record_late_before_the_checkpoint_is_late_after_the_restore() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = simple_operator(WindowAssigner::Tumbling { size_ms: 10 });
    op.open(&context(dir.path(), None)).unwrap();
    op.process_batch(simple(&[("a", 5, 1)]), &mut Output::default())
        .unwrap();
    op.process_watermark(9, &mut Output::default()).unwrap();
    let snapshot = op.snapshot_state(1).unwrap();

    let mut restored_op = simple_operator(WindowAssigner::Tumbling { size_ms: 10 });
    restored_op
        .open(&context(&dir.path().join("next"), Some(restored(snapshot))))
        .unwrap();
    let mut out = Output::default();
    restored_op
        .process_batch(simple(&[("a", 3, 10)]), &mut out)
        .unwrap();
    restored_op
        .process_watermark(MAX_WATERMARK, &mut out)
        .unwrap();
    assert_eq!(emitted(&mut out), vec![]);
    assert_eq!(restored_op.metrics().late_records_dropped, 1);
}

#[test]
fn a_corrupt_snapshot_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = simple_operator(WindowAssigner::Tumbling { size_ms: 10 });
    let snapshot = snapshot_of(&mut op, dir.path(), 1);
    let keyed = snapshot.keyed.clone().unwrap();
    let path = keyed.dir.join(&keyed.files[0].name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let mut fresh = simple_operator(WindowAssigner::Tumbling { size_ms: 10 });
    let err = fresh
        .open(&context(&dir.path().join("next"), Some(restored(snapshot))))
        .unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn sessions_do_not_restore_into_aligned_windows() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = simple_operator(WindowAssigner::Session { gap_ms: 10 });
    let snapshot = snapshot_of(&mut op, dir.path(), 1);
    let mut tumbling = simple_operator(WindowAssigner::Tumbling { size_ms: 10 });
    let err = tumbling
        .open(&context(&dir.path().join("next"), Some(restored(snapshot))))
        .unwrap_err();
    assert!(err.to_string().contains("session"), "{err}");
}

#[test]
fn the_final_snapshot_has_no_keyed_state_and_old_snapshots_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = simple_operator(WindowAssigner::Tumbling { size_ms: 10 });
    let first = snapshot_of(&mut op, dir.path(), 1);
    let second = op.snapshot_state(2).unwrap();
    let third = op.snapshot_state(3).unwrap();
    op.notify_checkpoint_complete(2).unwrap();
    let dir_of = |s: &OperatorSnapshot| s.keyed.as_ref().unwrap().dir.clone();
    assert!(!dir_of(&first).exists());
    assert!(dir_of(&second).exists() && dir_of(&third).exists());

    let last = op.snapshot_state(u64::MAX).unwrap();
    assert_eq!(last.keyed, None);
    assert_eq!(
        last.entries,
        vec![
            ("watermark".to_string(), 3i64.to_le_bytes().to_vec()),
            (
                "window-assigner".to_string(),
                b"tumbling windows of 10 ms".to_vec()
            )
        ]
    );
}

#[test]
fn windows_without_keys_go_to_the_owner_of_the_empty_key() {
    let spec = WindowSpec {
        key_columns: vec![],
        event_time_column: "ts".into(),
        assigner: WindowAssigner::Tumbling { size_ms: 10 },
        aggregates: vec![AggregateSpec {
            function: AggregateFunction::Sum,
            column: Some("v".into()),
            output: "sum".into(),
        }],
    };
    let make = || -> Box<dyn Operator> {
        Box::new(WindowOperator::new(spec.clone(), simple(&[]).schema()).unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let open = |label, parallelism, restored| {
        Instances::open(
            make,
            dir.path(),
            label,
            StateBackendKind::Heap,
            parallelism,
            restored,
            &[],
        )
        .unwrap()
    };
    let mut first = open("before", 1, None);
    first.batch(simple(&[("a", 1, 10), ("b", 2, 20)]));
    let restored = first.snapshot(1);
    let mut second = open("after", 3, Some(&restored));
    second.batch(simple(&[("c", 3, 30)]));
    second.watermark(MAX_WATERMARK);
    let sums: Vec<i64> = second
        .output
        .iter()
        .map(|b| b.column(2).as_primitive::<Int64Type>().value(0))
        .collect();
    // The restored window and the new row met in one instance.
    assert_eq!(sums, vec![60]);
}

#[test]
fn on_rocksdb_a_checkpoint_after_a_small_change_adds_only_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = simple_operator(WindowAssigner::Tumbling { size_ms: 1 << 40 });
    let mut ctx = context(dir.path(), None);
    ctx.state.backend = StateBackendKind::RocksDb;
    op.open(&ctx).unwrap();
    let keys: Vec<String> = (0..20_000).map(|i| format!("key-{i:05}")).collect();
    let rows = |step: usize| -> Vec<(&str, i64, i64)> {
        keys.iter()
            .step_by(step)
            .map(|k| (k.as_str(), 1, 1))
            .collect()
    };
    op.process_batch(simple(&rows(1)), &mut Output::default())
        .unwrap();
    let first = op.snapshot_state(1).unwrap().keyed.unwrap();
    // One key in a hundred gets a record.
    op.process_batch(simple(&rows(100)), &mut Output::default())
        .unwrap();
    let second = op.snapshot_state(2).unwrap().keyed.unwrap();

    let shared = |s: &spate_api::KeyedSnapshot| -> Vec<(String, u64)> {
        s.files
            .iter()
            .filter(|f| f.shared)
            .map(|f| (f.name.clone(), f.size))
            .collect()
    };
    let before = shared(&first);
    let after = shared(&second);
    let state: u64 = after.iter().map(|(_, size)| size).sum();
    let added: u64 = after
        .iter()
        .filter(|file| !before.contains(file))
        .map(|(_, size)| size)
        .sum();
    assert!(
        !before.is_empty() && before.iter().all(|file| after.contains(file)),
        "the second checkpoint keeps the first one's files: {before:?} {after:?}"
    );
    assert!(
        added > 0 && added * 20 < state,
        "a 1% change added {added} of {state} bytes"
    );
}
