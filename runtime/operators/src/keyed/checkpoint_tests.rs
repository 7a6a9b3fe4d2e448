//! Keyed process functions restored from checkpoints of either backend, at the same and at
//! other parallelisms, against an uninterrupted run of the same stream.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{BinaryArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use spate_api::{
    MAX_WATERMARK, Operator, OperatorContext, Output, RestoredState, Result, StateBackendKind,
    Timestamp,
};

use super::{KeyedContext, KeyedProcessFunction, KeyedProcessOperator, TimeDomain};
use crate::test_cluster::{Instances, Lcg};

const BUCKET: i64 = 10;

/// Counts rows per key (value state) and per bucket of event time (map state); the timer at a
/// bucket's end emits (key, bucket end, rows in the bucket, rows of the key so far). Rows at or
/// behind the watermark are dropped as late, so the restored watermark matters.
#[derive(Clone)]
struct BucketCounts {
    schema: SchemaRef,
}

impl BucketCounts {
    fn new() -> Self {
        BucketCounts {
            schema: Arc::new(Schema::new(vec![
                Field::new("key", DataType::Binary, false),
                Field::new("bucket_end", DataType::Int64, false),
                Field::new("in_bucket", DataType::Int64, false),
                Field::new("total", DataType::Int64, false),
            ])),
        }
    }
}

impl KeyedProcessFunction for BucketCounts {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        let times = rows.column(1).as_primitive::<Int64Type>();
        for &ts in times.values() {
            if ts <= ctx.current_watermark() {
                continue;
            }
            let mut total = ctx.value_state::<i64>("total")?;
            let n = total.get()?.unwrap_or(0);
            total.set(&(n + 1))?;
            let end = ts.div_euclid(BUCKET) * BUCKET + BUCKET;
            let mut buckets = ctx.map_state::<i64, i64>("buckets")?;
            let n = buckets.get(&end)?.unwrap_or(0);
            buckets.put(&end, &(n + 1))?;
            ctx.register_event_time_timer(end - 1)?;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        key: &[u8],
        timestamp: Timestamp,
        _: TimeDomain,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        let end = timestamp + 1;
        let mut buckets = ctx.map_state::<i64, i64>("buckets")?;
        let in_bucket = buckets.get(&end)?.unwrap_or(0);
        buckets.remove(&end)?;
        let total = ctx.value_state::<i64>("total")?.get()?.unwrap_or(0);
        ctx.emit(RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(BinaryArray::from(vec![key])),
                Arc::new(Int64Array::from(vec![end])),
                Arc::new(Int64Array::from(vec![in_bucket])),
                Arc::new(Int64Array::from(vec![total])),
            ],
        )?)
    }
}

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
    ]))
}

fn batch(rows: &[(String, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap()
}

type Rows = Vec<(String, i64)>;

/// Batches of (key, time) rows, each followed by a bounded-out-of-orderness watermark; some
/// rows are behind the watermark already sent.
fn generate(seed: u64, rows: usize) -> Vec<(Rows, Timestamp)> {
    let mut rng = Lcg(seed);
    let (mut base, mut watermark) = (0i64, i64::MIN);
    let mut batches = Vec::new();
    let mut made = 0;
    while made < rows {
        let size = 1 + rng.below(60) as usize;
        let mut batch_rows = Vec::with_capacity(size);
        for _ in 0..size {
            base += rng.below(3) as i64;
            let ts = if rng.below(20) == 0 && watermark > i64::MIN {
                watermark - rng.below(15) as i64
            } else {
                base - rng.below(8) as i64
            };
            batch_rows.push((format!("k{}", rng.below(20)), ts));
        }
        made += size;
        watermark = watermark.max(base - 9);
        batches.push((batch_rows, watermark));
    }
    batches
}

fn open(
    backend: StateBackendKind,
    dir: &Path,
    label: &str,
    parallelism: u32,
    restored: Option<&RestoredState>,
) -> Instances {
    let make = || -> Box<dyn Operator> {
        Box::new(
            KeyedProcessOperator::new(BucketCounts::new(), vec!["k".into()], input_schema())
                .unwrap(),
        )
    };
    Instances::open(make, dir, label, backend, parallelism, restored, &["k"]).unwrap()
}

fn feed(instances: &mut Instances, batches: &[(Rows, Timestamp)]) {
    for (rows, watermark) in batches {
        instances.batch(batch(rows));
        instances.watermark(*watermark);
    }
}

type Emitted = (Vec<u8>, i64, i64, i64);

fn results(instances: &[Instances]) -> Vec<Emitted> {
    let mut rows: Vec<Emitted> = Vec::new();
    for batch in instances.iter().flat_map(|i| &i.output) {
        let column = |i: usize| batch.column(i).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            rows.push((
                batch.column(0).as_binary::<i32>().value(row).to_vec(),
                column(1).value(row),
                column(2).value(row),
                column(3).value(row),
            ));
        }
    }
    rows.sort();
    rows
}

fn uninterrupted(backend: StateBackendKind, batches: &[(Rows, Timestamp)]) -> Vec<Emitted> {
    let dir = tempfile::tempdir().unwrap();
    let mut whole = open(backend, dir.path(), "whole", 1, None);
    feed(&mut whole, batches);
    whole.watermark(MAX_WATERMARK);
    results(&[whole])
}

fn check_restores(backend: StateBackendKind, seed: u64) {
    let stream = generate(seed, 1500);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg(seed);
    for attempt in 0..2 {
        let cut = 1 + rng.below(stream.len() as u64 - 1) as usize;
        // A row behind the watermark right after the cut, which the function drops only if it
        // sees the watermark it saw before the checkpoint.
        let mut batches = stream.clone();
        let late = (batches[cut].0[0].0.clone(), batches[cut - 1].1 - 3);
        batches[cut].0.insert(0, late);
        let expected = uninterrupted(backend, &batches);
        assert!(expected.len() > 100);
        for (before, after) in [(1, 1), (2, 3), (2, 1)] {
            let label = format!("{attempt}-{before}-{after}");
            let mut first = open(
                backend,
                dir.path(),
                &format!("{label}-before"),
                before,
                None,
            );
            feed(&mut first, &batches[..cut]);
            let restored = first.snapshot(cut as u64);
            let mut second = open(
                backend,
                dir.path(),
                &format!("{label}-after"),
                after,
                Some(&restored),
            );
            feed(&mut second, &batches[cut..]);
            second.watermark(MAX_WATERMARK);
            assert!(
                results(&[first, second]) == expected,
                "{backend:?}, cut at batch {cut}, {before} -> {after}"
            );
        }
    }
}

#[test]
fn heap_state_and_timers_restore_as_if_never_interrupted() {
    check_restores(StateBackendKind::Heap, 31);
}

#[test]
fn rocksdb_state_and_timers_restore_as_if_never_interrupted() {
    check_restores(StateBackendKind::RocksDb, 32);
}

#[test]
fn a_corrupt_snapshot_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let context = |name: &str, restored| {
        let mut ctx = OperatorContext::single("counts");
        ctx.state.dir = dir.path().join(name);
        ctx.state.restored = restored;
        ctx
    };
    let make = || {
        KeyedProcessOperator::new(BucketCounts::new(), vec!["k".into()], input_schema()).unwrap()
    };
    let mut op = make();
    op.open(&context("first", None)).unwrap();
    op.process_batch(batch(&[("a".into(), 5)]), &mut Output::default())
        .unwrap();
    let snapshot = op.snapshot_state(1).unwrap();
    let keyed = snapshot.keyed.unwrap();
    let file = keyed
        .files
        .iter()
        .find(|f| f.name != "timers.snap")
        .unwrap();
    let path = keyed.dir.join(&file.name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let restored = RestoredState {
        checkpoint_id: 1,
        entries: snapshot.entries,
        keyed: vec![keyed],
    };
    let err = make().open(&context("second", Some(restored))).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}
