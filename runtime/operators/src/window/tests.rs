//! The window operator against a brute-force reference computed from the same rows.

mod checkpoint;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMillisecondArray, UInt16Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use spate_api::{
    MAX_WATERMARK, MIN_WATERMARK, Operator, Output, StateBackendKind, StreamElement, Timestamp,
};

use super::*;
use crate::test_cluster::Lcg;

#[derive(Debug, Clone)]
struct Row {
    k: String,
    g: Option<i32>,
    ts: i64,
    v: Option<i32>,
    f: Option<f64>,
    t: Option<i64>,
    u: u16,
    s: Option<String>,
}

type Key = (String, Option<i32>);

fn input_schema() -> SchemaRef {
    let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("g", DataType::Int32, true),
        Field::new("ts", ms.clone(), false),
        Field::new("v", DataType::Int32, true),
        Field::new("f", DataType::Float64, true),
        Field::new("t", ms, true),
        Field::new("u", DataType::UInt16, false),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn to_batch(rows: &[Row]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.k))),
        Arc::new(rows.iter().map(|r| r.g).collect::<Int32Array>()),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.ts),
        )),
        Arc::new(rows.iter().map(|r| r.v).collect::<Int32Array>()),
        Arc::new(rows.iter().map(|r| r.f).collect::<Float64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.t)
                .collect::<TimestampMillisecondArray>(),
        ),
        Arc::new(rows.iter().map(|r| r.u).collect::<UInt16Array>()),
        Arc::new(rows.iter().map(|r| r.s.as_deref()).collect::<StringArray>()),
    ];
    RecordBatch::try_new(input_schema(), columns).unwrap()
}

/// Batches of rows, each followed by the watermark a bounded-out-of-orderness source would send.
/// Times grow with jitter of up to `bound` and occasional jumps; no row is late.
fn generate(seed: u64, rows: usize, bound: i64) -> Vec<(Vec<Row>, Timestamp)> {
    let mut rng = Lcg(seed);
    let mut base = -100i64;
    let mut max_seen = i64::MIN;
    let mut batches = Vec::new();
    let mut made = 0;
    while made < rows {
        let size = 1 + rng.below(150) as usize;
        let mut batch = Vec::with_capacity(size);
        for _ in 0..size {
            base += rng.below(3) as i64;
            if rng.below(40) == 0 {
                base += 25;
            }
            let ts = base - rng.below(bound as u64 + 1) as i64;
            max_seen = max_seen.max(ts);
            batch.push(Row {
                k: format!("k{}", rng.below(4)),
                g: (rng.below(5) != 0).then(|| rng.below(2) as i32),
                ts,
                v: (rng.below(5) != 0).then(|| rng.below(101) as i32 - 50),
                f: (rng.below(4) != 0).then(|| (rng.below(400) as f64 - 200.0) * 0.25),
                t: (rng.below(3) != 0).then(|| ts + rng.below(1000) as i64),
                u: rng.below(60000) as u16,
                s: (rng.below(5) != 0).then(|| format!("s{}", rng.below(6))),
            });
        }
        made += size;
        batches.push((batch, max_seen - bound - 1));
    }
    batches
}

fn aggregates() -> Vec<AggregateSpec> {
    use AggregateFunction::*;
    let spec = |function, column: Option<&str>, output: &str| AggregateSpec {
        function,
        column: column.map(str::to_string),
        output: output.to_string(),
    };
    vec![
        spec(Count, None, "n"),
        spec(Count, Some("v"), "count_v"),
        spec(Sum, Some("v"), "sum_v"),
        spec(Min, Some("v"), "min_v"),
        spec(Max, Some("v"), "max_v"),
        spec(Avg, Some("v"), "avg_v"),
        spec(Count, Some("f"), "count_f"),
        spec(Sum, Some("f"), "sum_f"),
        spec(Min, Some("f"), "min_f"),
        spec(Max, Some("f"), "max_f"),
        spec(Avg, Some("f"), "avg_f"),
        spec(Min, Some("t"), "min_t"),
        spec(Max, Some("t"), "max_t"),
        spec(Sum, Some("u"), "sum_u"),
        spec(Avg, Some("u"), "avg_u"),
        spec(CountDistinct, Some("v"), "distinct_v"),
        spec(CountDistinct, Some("s"), "distinct_s"),
        spec(CountDistinct, Some("f"), "distinct_f"),
        spec(CountDistinct, Some("t"), "distinct_t"),
    ]
}

fn spec(assigner: WindowAssigner) -> WindowSpec {
    WindowSpec {
        key_columns: vec!["k".into(), "g".into()],
        event_time_column: "ts".into(),
        assigner,
        aggregates: aggregates(),
    }
}

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Val {
    I(Option<i64>),
    F(Option<f64>),
}

type Out = (Key, i64, i64, Vec<Val>);

/// The aggregates of `aggregates()` computed naively.
fn reference_values(rows: &[&Row]) -> Vec<Val> {
    let v: Vec<i64> = rows.iter().filter_map(|r| r.v.map(i64::from)).collect();
    let f: Vec<f64> = rows.iter().filter_map(|r| r.f).collect();
    let t: Vec<i64> = rows.iter().filter_map(|r| r.t).collect();
    let u: Vec<i64> = rows.iter().map(|r| r.u as i64).collect();
    let s: BTreeSet<&str> = rows.iter().filter_map(|r| r.s.as_deref()).collect();
    let distinct = |values: Vec<u64>| Val::I(Some(BTreeSet::from_iter(values).len() as i64));
    let some = |n: usize| (n > 0).then_some(());
    let avg_i = |x: &[i64]| some(x.len()).map(|_| x.iter().sum::<i64>() as f64 / x.len() as f64);
    vec![
        Val::I(Some(rows.len() as i64)),
        Val::I(Some(v.len() as i64)),
        Val::I(some(v.len()).map(|_| v.iter().sum())),
        Val::I(v.iter().copied().min()),
        Val::I(v.iter().copied().max()),
        Val::F(avg_i(&v)),
        Val::I(Some(f.len() as i64)),
        Val::F(some(f.len()).map(|_| f.iter().sum())),
        Val::F(f.iter().copied().reduce(f64::min)),
        Val::F(f.iter().copied().reduce(f64::max)),
        Val::F(some(f.len()).map(|_| f.iter().sum::<f64>() / f.len() as f64)),
        Val::I(t.iter().copied().min()),
        Val::I(t.iter().copied().max()),
        Val::I(Some(u.iter().sum())),
        Val::F(avg_i(&u)),
        distinct(v.iter().map(|&x| x as u64).collect()),
        Val::I(Some(s.len() as i64)),
        distinct(f.iter().map(|x| x.to_bits()).collect()),
        distinct(t.iter().map(|&x| x as u64).collect()),
    ]
}

fn key(row: &Row) -> Key {
    (row.k.clone(), row.g)
}

/// The (start, end) of every tumbling or hopping window containing `ts`.
fn aligned_windows(assigner: WindowAssigner, ts: i64) -> Vec<(i64, i64)> {
    let (size, slide) = match assigner {
        WindowAssigner::Tumbling { size_ms } => (size_ms, size_ms),
        WindowAssigner::Hopping { size_ms, slide_ms } => (size_ms, slide_ms),
        WindowAssigner::Session { .. } => unreachable!("sessions are not aligned"),
    };
    // Every multiple of the slide near ts whose window contains ts.
    let lowest = (ts - size).div_euclid(slide) * slide;
    (lowest..=ts)
        .step_by(slide as usize)
        .filter(|&start| start <= ts && ts < start + size)
        .map(|start| (start, start + size))
        .collect()
}

fn reference(assigner: WindowAssigner, rows: &[Row]) -> Vec<Out> {
    let mut windows: BTreeMap<(Key, i64, i64), Vec<&Row>> = BTreeMap::new();
    match assigner {
        WindowAssigner::Tumbling { .. } | WindowAssigner::Hopping { .. } => {
            for row in rows {
                for (start, end) in aligned_windows(assigner, row.ts) {
                    windows.entry((key(row), start, end)).or_default().push(row);
                }
            }
        }
        WindowAssigner::Session { gap_ms } => {
            let mut by_key: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
            for row in rows {
                by_key.entry(key(row)).or_default().push(row);
            }
            for (key, mut rows) in by_key {
                rows.sort_by_key(|r| r.ts);
                let mut current: Option<(i64, i64, Vec<&Row>)> = None;
                for row in rows {
                    match &mut current {
                        // Windows touching at a bound merge, as in Flink.
                        Some((_, end, members)) if row.ts <= *end => {
                            *end = (*end).max(row.ts + gap_ms);
                            members.push(row);
                        }
                        _ => {
                            if let Some((start, end, members)) = current.take() {
                                windows.insert((key.clone(), start, end), members);
                            }
                            current = Some((row.ts, row.ts + gap_ms, vec![row]));
                        }
                    }
                }
                let (start, end, members) = current.unwrap();
                windows.insert((key, start, end), members);
            }
        }
    }
    windows
        .into_iter()
        .map(|((key, start, end), rows)| (key, start, end, reference_values(&rows)))
        .collect()
}

fn read_rows(batch: &RecordBatch) -> Vec<Out> {
    let k = batch.column(0).as_string::<i32>();
    let g = batch.column(1).as_primitive::<Int32Type>();
    let start = batch.column(2).as_primitive::<TimestampMillisecondType>();
    let end = batch.column(3).as_primitive::<TimestampMillisecondType>();
    (0..batch.num_rows())
        .map(|i| {
            let values = batch.columns()[4..]
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Float64 => Val::F(
                        c.is_valid(i)
                            .then(|| c.as_primitive::<Float64Type>().value(i)),
                    ),
                    DataType::Int64 => Val::I(
                        c.is_valid(i)
                            .then(|| c.as_primitive::<Int64Type>().value(i)),
                    ),
                    _ => Val::I(
                        c.is_valid(i)
                            .then(|| c.as_primitive::<TimestampMillisecondType>().value(i)),
                    ),
                })
                .collect();
            (
                (k.value(i).to_string(), g.is_valid(i).then(|| g.value(i))),
                start.value(i),
                end.value(i),
                values,
            )
        })
        .collect()
}

/// Runs the operator and checks what holds for any input: windows fire at the first watermark
/// that reaches their end - 1, in order of end, in bounded batches, before the watermark is
/// forwarded; batches alone emit nothing; all state is gone after the final watermark.
fn run(
    assigner: WindowAssigner,
    batches: &[(Vec<Row>, Timestamp)],
    storage: Storage,
) -> (Vec<Out>, u64) {
    let schema = input_schema();
    let dir = tempfile::tempdir().unwrap();
    let mut op = storage.operator(spec(assigner), dir.path());
    assert_eq!(
        op.output_schema(),
        spec(assigner).output_schema(&schema).unwrap()
    );
    let mut out = Output::default();
    let mut emitted = Vec::new();
    let mut previous = MIN_WATERMARK;
    let watermarks = batches
        .iter()
        .map(|(rows, wm)| (rows.as_slice(), *wm))
        .chain([(&[][..], MAX_WATERMARK)]);
    for (rows, watermark) in watermarks {
        op.process_batch(to_batch(rows), &mut out).unwrap();
        assert!(out.is_empty(), "batches alone fire nothing");
        op.process_watermark(watermark, &mut out).unwrap();
        let elements: Vec<_> = out.drain().collect();
        let (last, batches) = elements.split_last().unwrap();
        assert!(matches!(last, StreamElement::Watermark(w) if *w == watermark));
        for element in batches {
            let StreamElement::Batch(batch) = element else {
                panic!("unexpected {element:?}")
            };
            assert!(batch.num_rows() <= output::BATCH_ROWS);
            for row in read_rows(batch) {
                let end = row.2;
                assert!(
                    end - 1 <= watermark && end - 1 > previous,
                    "{row:?} at {watermark}"
                );
                if let Some(last) = emitted.last() {
                    let (_, _, last_end, _): &Out = last;
                    assert!(*last_end <= end, "windows fire in order of end");
                }
                emitted.push(row);
            }
        }
        previous = watermark;
    }
    assert_eq!(
        op.open_state(),
        (0, 0, 0, 0),
        "fired windows leave no state"
    );
    (emitted, op.metrics().late_records_dropped)
}

/// Where the operator under test keeps its windows: the backend, and for RocksDB how many
/// windows its in-memory bundle holds before a batch makes it flush (1: after every batch, so
/// that windows are folded into stored ones again and again).
#[derive(Debug, Clone, Copy)]
struct Storage {
    backend: StateBackendKind,
    bundle_windows: Option<usize>,
}

const STORAGES: [Storage; 3] = [
    Storage {
        backend: StateBackendKind::Heap,
        bundle_windows: None,
    },
    Storage {
        backend: StateBackendKind::RocksDb,
        bundle_windows: None,
    },
    Storage {
        backend: StateBackendKind::RocksDb,
        bundle_windows: Some(1),
    },
];

impl Storage {
    fn operator(self, spec: WindowSpec, dir: &std::path::Path) -> WindowOperator {
        let mut op = WindowOperator::new(spec, input_schema()).unwrap();
        let mut ctx = spate_api::OperatorContext::single("window");
        ctx.state.dir = dir.to_path_buf();
        ctx.state.backend = self.backend;
        op.open(&ctx).unwrap();
        if let Some(windows) = self.bundle_windows {
            op.bundle_windows = windows;
        }
        op
    }
}

fn sorted(mut rows: Vec<Out>) -> Vec<Out> {
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

fn check_against_reference(assigner: WindowAssigner, seed: u64) {
    let batches = generate(seed, 3000, 6);
    let all: Vec<Row> = batches.iter().flat_map(|(rows, _)| rows.clone()).collect();
    let expected = reference(assigner, &all);
    assert!(expected.len() > 50, "{assigner:?} makes enough windows");

    let mut in_order = all;
    in_order.sort_by_key(|r| r.ts);
    for storage in STORAGES {
        let (got, late) = run(assigner, &batches, storage);
        assert_eq!(late, 0);
        assert_eq!(
            sorted(got),
            sorted(expected.clone()),
            "{assigner:?}, {storage:?}"
        );

        let (got, _) = run(assigner, &[(in_order.clone(), MIN_WATERMARK)], storage);
        assert_eq!(
            sorted(got),
            sorted(expected.clone()),
            "{assigner:?} on sorted rows, {storage:?}"
        );
    }
}

/// The reference for a stream with late rows, fed batch by batch as the operator is: a row goes
/// to the windows that had not fired when its batch came, and is late if none took it though
/// the watermark had passed it. Sessions are replayed, since whether a late row may join one
/// depends on which are still open. Also gives the number of late rows.
fn reference_with_watermarks(
    assigner: WindowAssigner,
    batches: &[(Vec<Row>, Timestamp)],
) -> (Vec<Out>, u64) {
    type Session<'a> = (i64, i64, Vec<&'a Row>);
    let mut windows: BTreeMap<(Key, i64, i64), Vec<&Row>> = BTreeMap::new();
    let mut open: BTreeMap<Key, Vec<Session>> = BTreeMap::new();
    let mut late = 0;
    let mut watermark = MIN_WATERMARK;
    for (rows, next) in batches {
        for row in rows {
            let WindowAssigner::Session { gap_ms } = assigner else {
                let mut accepted = false;
                for (start, end) in aligned_windows(assigner, row.ts) {
                    if end - 1 > watermark {
                        windows.entry((key(row), start, end)).or_default().push(row);
                        accepted = true;
                    }
                }
                late += u64::from(!accepted && row.ts <= watermark);
                continue;
            };
            let end = row.ts + gap_ms;
            let sessions = open.entry(key(row)).or_default();
            let (touching, apart): (Vec<Session>, Vec<Session>) = std::mem::take(sessions)
                .into_iter()
                .partition(|&(s, e, _)| s <= end && e >= row.ts);
            *sessions = apart;
            if touching.is_empty() && end - 1 <= watermark {
                late += 1;
                continue;
            }
            let mut merged = (row.ts, end, vec![row]);
            for (s, e, members) in touching {
                merged = (
                    merged.0.min(s),
                    merged.1.max(e),
                    [merged.2, members].concat(),
                );
            }
            sessions.push(merged);
        }
        watermark = *next;
        for (key, sessions) in &mut open {
            for (start, end, members) in sessions.extract_if(.., |(_, e, _)| *e - 1 <= watermark) {
                windows.insert((key.clone(), start, end), members);
            }
        }
    }
    for (key, sessions) in open {
        for (start, end, members) in sessions {
            windows.insert((key.clone(), start, end), members);
        }
    }
    let windows = windows
        .into_iter()
        .map(|((key, start, end), rows)| (key, start, end, reference_values(&rows)))
        .collect();
    (windows, late)
}

/// `batches` with rows added at or behind the watermark the operator has when it reads them:
/// late for all their windows, for some only, or joining sessions still open.
fn with_late_rows(
    mut batches: Vec<(Vec<Row>, Timestamp)>,
    seed: u64,
) -> Vec<(Vec<Row>, Timestamp)> {
    let mut rng = Lcg(seed);
    for i in 1..batches.len() {
        let watermark = batches[i - 1].1;
        let batch = &mut batches[i].0;
        for _ in 0..rng.below(4) {
            let mut row = batch[rng.below(batch.len() as u64) as usize].clone();
            row.ts = watermark - rng.below(12) as i64;
            batch.insert(rng.below(batch.len() as u64 + 1) as usize, row);
        }
    }
    batches
}

#[test]
fn late_rows_count_in_no_fired_window() {
    let assigners = [
        WindowAssigner::Tumbling { size_ms: 10 },
        WindowAssigner::Hopping {
            size_ms: 12,
            slide_ms: 4,
        },
        WindowAssigner::Session { gap_ms: 5 },
    ];
    for (seed, assigner) in (10..).zip(assigners) {
        let batches = with_late_rows(generate(seed, 3000, 6), seed);
        let (expected, expected_late) = reference_with_watermarks(assigner, &batches);
        assert!(expected_late > 10, "{assigner:?} drops enough rows");
        for storage in STORAGES {
            let (got, late) = run(assigner, &batches, storage);
            assert_eq!(late, expected_late, "{assigner:?}, {storage:?}");
            assert_eq!(
                sorted(got),
                sorted(expected.clone()),
                "{assigner:?}, {storage:?}"
            );
        }
    }
}

#[test]
fn tumbling_windows_match_the_reference() {
    check_against_reference(WindowAssigner::Tumbling { size_ms: 10 }, 1);
    check_against_reference(WindowAssigner::Tumbling { size_ms: 1 }, 2);
}

#[test]
fn hopping_windows_match_the_reference() {
    for (seed, (size_ms, slide_ms)) in [(12, 4), (10, 3), (3, 5)].into_iter().enumerate() {
        check_against_reference(WindowAssigner::Hopping { size_ms, slide_ms }, seed as u64);
    }
}

#[test]
fn session_windows_match_the_reference() {
    check_against_reference(WindowAssigner::Session { gap_ms: 5 }, 3);
    check_against_reference(WindowAssigner::Session { gap_ms: 1 }, 4);
}

/// A batch of (key, time, value) rows with BIGINT milliseconds as event time.
fn simple(rows: &[(&str, i64, i64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap()
}

fn simple_operator(assigner: WindowAssigner) -> WindowOperator {
    let spec = WindowSpec {
        key_columns: vec!["k".into()],
        event_time_column: "ts".into(),
        assigner,
        aggregates: vec![
            AggregateSpec {
                function: AggregateFunction::Count,
                column: None,
                output: "n".into(),
            },
            AggregateSpec {
                function: AggregateFunction::Sum,
                column: Some("v".into()),
                output: "sum".into(),
            },
        ],
    };
    WindowOperator::new(spec, simple(&[]).schema()).unwrap()
}

/// (key, start, end, count, sum) rows emitted.
fn emitted(out: &mut Output) -> Vec<(String, i64, i64, i64, i64)> {
    let mut rows = Vec::new();
    for element in out.drain() {
        if let StreamElement::Batch(b) = element {
            for i in 0..b.num_rows() {
                rows.push((
                    b.column(0).as_string::<i32>().value(i).to_string(),
                    b.column(1)
                        .as_primitive::<TimestampMillisecondType>()
                        .value(i),
                    b.column(2)
                        .as_primitive::<TimestampMillisecondType>()
                        .value(i),
                    b.column(3).as_primitive::<Int64Type>().value(i),
                    b.column(4).as_primitive::<Int64Type>().value(i),
                ));
            }
        }
    }
    rows
}

fn row(k: &str, start: i64, end: i64, n: i64, sum: i64) -> (String, i64, i64, i64, i64) {
    (k.to_string(), start, end, n, sum)
}

#[test]
fn records_for_fired_tumbling_windows_are_dropped_and_counted() {
    let mut op = simple_operator(WindowAssigner::Tumbling { size_ms: 10 });
    let mut out = Output::default();
    op.process_batch(simple(&[("a", 5, 1)]), &mut out).unwrap();
    op.process_watermark(9, &mut out).unwrap();
    assert_eq!(emitted(&mut out), vec![row("a", 0, 10, 1, 1)]);

    // [0, 10) has fired: 9 and 3 are late, 10 opens [10, 20).
    op.process_batch(
        simple(&[("a", 9, 10), ("a", 10, 100), ("b", 3, 1000)]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.metrics().late_records_dropped, 2);
    op.process_watermark(MAX_WATERMARK, &mut out).unwrap();
    assert_eq!(emitted(&mut out), vec![row("a", 10, 20, 1, 100)]);
}

#[test]
fn a_record_late_for_some_hopping_windows_only_is_not_counted() {
    let mut op = simple_operator(WindowAssigner::Hopping {
        size_ms: 10,
        slide_ms: 5,
    });
    let mut out = Output::default();
    op.process_batch(simple(&[("a", 14, 1)]), &mut out).unwrap();
    op.process_watermark(14, &mut out).unwrap();
    assert_eq!(emitted(&mut out), vec![row("a", 5, 15, 1, 1)]);

    // 12 still reaches [10, 20) though [5, 15) has fired; 9 reaches no open window.
    op.process_batch(simple(&[("a", 12, 10), ("a", 9, 100)]), &mut out)
        .unwrap();
    assert_eq!(op.metrics().late_records_dropped, 1);
    op.process_watermark(MAX_WATERMARK, &mut out).unwrap();
    assert_eq!(emitted(&mut out), vec![row("a", 10, 20, 2, 11)]);
}

#[test]
fn records_between_hopping_windows_are_late_only_behind_the_watermark() {
    // With a slide over the size, times 3 and 4 (mod 5) are in no window. Like Flink, such a
    // record counts as dropped once the watermark has passed it.
    let mut op = simple_operator(WindowAssigner::Hopping {
        size_ms: 3,
        slide_ms: 5,
    });
    let mut out = Output::default();
    op.process_batch(simple(&[("a", 4, 1)]), &mut out).unwrap();
    assert_eq!(op.metrics().late_records_dropped, 0);
    op.process_watermark(10, &mut out).unwrap();
    op.process_batch(simple(&[("a", 13, 1), ("a", 9, 1)]), &mut out)
        .unwrap();
    assert_eq!(op.metrics().late_records_dropped, 1);
}

#[test]
fn late_session_records_are_dropped_unless_they_merge_into_an_open_session() {
    let mut op = simple_operator(WindowAssigner::Session { gap_ms: 10 });
    let mut out = Output::default();
    op.process_batch(simple(&[("a", 100, 1)]), &mut out)
        .unwrap();
    op.process_watermark(105, &mut out).unwrap();
    assert!(emitted(&mut out).is_empty());

    op.process_batch(
        simple(&[
            // [95, 105) is behind the watermark, but merges into the open [100, 110).
            ("a", 95, 10),
            // [80, 90) touches no open session.
            ("a", 80, 100),
            // No session of b is open, and [96, 106) is behind the watermark.
            ("b", 96, 1000),
            ("b", 97, 10000),
            // [110, 120) touches [95, 110) at its end, so they merge.
            ("a", 110, 100000),
        ]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.metrics().late_records_dropped, 2);
    op.process_watermark(106, &mut out).unwrap();
    assert_eq!(emitted(&mut out), vec![row("b", 97, 107, 1, 10000)]);
    op.process_watermark(MAX_WATERMARK, &mut out).unwrap();
    assert_eq!(emitted(&mut out), vec![row("a", 95, 120, 3, 100011)]);
}

#[test]
fn a_record_bridging_two_sessions_merges_them_within_one_batch() {
    let mut op = simple_operator(WindowAssigner::Session { gap_ms: 10 });
    let mut out = Output::default();
    op.process_batch(
        simple(&[
            ("c", 0, 1),
            ("c", 20, 10),
            ("c", 35, 100),
            ("c", 10, 1000),
            ("c", 1, 10000),
        ]),
        &mut out,
    )
    .unwrap();
    op.process_watermark(MAX_WATERMARK, &mut out).unwrap();
    // 10 joins [0, 10) and [20, 30); [35, 45) stays apart.
    assert_eq!(
        emitted(&mut out),
        vec![row("c", 0, 30, 4, 11011), row("c", 35, 45, 1, 100)]
    );
    assert_eq!(op.open_state(), (0, 0, 0, 0));
}

#[test]
fn large_windows_are_emitted_in_bounded_batches() {
    let keys: Vec<String> = (0..20000).map(|i| format!("key{i}")).collect();
    let rows: Vec<(&str, i64, i64)> = keys.iter().map(|k| (k.as_str(), 7, 1)).collect();
    let mut op = simple_operator(WindowAssigner::Tumbling { size_ms: 10 });
    let mut out = Output::default();
    op.process_batch(simple(&rows), &mut out).unwrap();
    op.process_watermark(9, &mut out).unwrap();
    let sizes: Vec<usize> = out
        .drain()
        .filter_map(|e| match e {
            StreamElement::Batch(b) => Some(b.num_rows()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![8192, 8192, 3616]);
}

#[test]
fn dictionary_keys_and_no_keys() {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "k",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        ),
        Field::new("ts", DataType::Int64, false),
    ]));
    let keys: DictionaryArray<Int32Type> = ["x", "y", "x"].into_iter().collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(keys), Arc::new(Int64Array::from(vec![1, 2, 3]))],
    )
    .unwrap();
    let count = AggregateSpec {
        function: AggregateFunction::Count,
        column: None,
        output: "n".into(),
    };
    for key_columns in [vec!["k".to_string()], vec![]] {
        let spec = WindowSpec {
            key_columns: key_columns.clone(),
            event_time_column: "ts".into(),
            assigner: WindowAssigner::Tumbling { size_ms: 10 },
            aggregates: vec![count.clone()],
        };
        let mut op = WindowOperator::new(spec.clone(), schema.clone()).unwrap();
        let mut out = Output::default();
        op.process_batch(batch.clone(), &mut out).unwrap();
        op.process_watermark(MAX_WATERMARK, &mut out).unwrap();
        let StreamElement::Batch(result) = out.drain().next().unwrap() else {
            panic!("a batch first")
        };
        assert_eq!(result.schema(), spec.output_schema(&schema).unwrap());
        let counts = result
            .column_by_name("n")
            .unwrap()
            .as_primitive::<Int64Type>();
        if key_columns.is_empty() {
            assert_eq!(counts.values().to_vec(), vec![3]);
        } else {
            assert_eq!(
                result.schema().field(0).data_type(),
                schema.field(0).data_type()
            );
            // Windows ending together come out in the order of their keys' key groups.
            let mut counts = counts.values().to_vec();
            counts.sort();
            assert_eq!(counts, vec![1, 2]);
        }
    }
}

/// A batch of (key, time, string, integer) rows with nullable values.
fn distinct_batch(rows: &[(&str, i64, Option<&str>, Option<i64>)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("s", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(rows.iter().map(|r| r.2).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| r.3).collect::<Int64Array>()),
        ],
    )
    .unwrap()
}

/// COUNT(DISTINCT s) and COUNT(DISTINCT v) per key, read back by `emitted`.
fn distinct_operator(assigner: WindowAssigner) -> WindowOperator {
    let distinct = |column: &str| AggregateSpec {
        function: AggregateFunction::CountDistinct,
        column: Some(column.into()),
        output: format!("distinct_{column}"),
    };
    let spec = WindowSpec {
        key_columns: vec!["k".into()],
        event_time_column: "ts".into(),
        assigner,
        aggregates: vec![distinct("s"), distinct("v")],
    };
    WindowOperator::new(spec, distinct_batch(&[]).schema()).unwrap()
}

#[test]
fn count_distinct_unites_the_sets_of_merging_sessions() {
    let mut op = distinct_operator(WindowAssigner::Session { gap_ms: 10 });
    let mut out = Output::default();
    op.process_batch(
        distinct_batch(&[
            ("a", 0, Some("x"), Some(1)),
            ("a", 20, Some("y"), Some(1)),
            ("a", 21, None, Some(2)),
            ("a", 40, Some("z"), None),
            // 10 joins [0, 10) and [20, 30) in the batch that opened them.
            ("b", 0, Some("p"), Some(5)),
            ("b", 20, Some("q"), Some(5)),
            ("b", 10, Some("p"), None),
        ]),
        &mut out,
    )
    .unwrap();
    op.process_watermark(5, &mut out).unwrap();
    op.process_batch(
        distinct_batch(&[
            // Joins [0, 10) and [20, 31), opened by the batch before.
            ("a", 10, Some("y"), Some(3)),
            // Late: [-20, -10) has passed the watermark and touches no open session.
            ("a", -20, Some("late"), Some(99)),
        ]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.metrics().late_records_dropped, 1);
    op.process_watermark(MAX_WATERMARK, &mut out).unwrap();
    assert_eq!(
        emitted(&mut out),
        vec![
            row("b", 0, 30, 2, 1),
            row("a", 0, 31, 2, 3),
            row("a", 40, 50, 1, 0),
        ]
    );
    assert_eq!(op.open_state(), (0, 0, 0, 0));
}

#[test]
fn count_distinct_sets_go_when_their_window_fires() {
    let mut op = distinct_operator(WindowAssigner::Tumbling { size_ms: 10 });
    let mut out = Output::default();
    op.process_batch(
        distinct_batch(&[
            ("a", 1, Some("x"), Some(1)),
            ("a", 2, Some("y"), Some(1)),
            ("a", 3, None, None),
            ("a", 12, Some("x"), Some(7)),
        ]),
        &mut out,
    )
    .unwrap();
    // [0, 10) holds x, y and 1; [10, 20) holds x and 7.
    assert_eq!(op.open_state().3, 5);
    op.process_watermark(9, &mut out).unwrap();
    assert_eq!(emitted(&mut out), vec![row("a", 0, 10, 2, 1)]);
    assert_eq!(op.open_state().3, 2);

    // 5 is late for [0, 10), which has fired.
    op.process_batch(
        distinct_batch(&[
            ("a", 5, Some("new"), Some(8)),
            ("a", 15, Some("y"), Some(7)),
        ]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.metrics().late_records_dropped, 1);
    op.process_watermark(MAX_WATERMARK, &mut out).unwrap();
    assert_eq!(emitted(&mut out), vec![row("a", 10, 20, 2, 1)]);
    assert_eq!(op.open_state(), (0, 0, 0, 0));
}
