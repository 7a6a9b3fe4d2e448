//! Bounds, sequences, termination, determinism across parallelism, and option errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Float64Type, Int8Type, Int32Type, Int64Type, TimestampMillisecondType,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use spate_api::{OperatorContext, SourceFactory, SourcePoll, now_millis};

use super::Datagen;
use crate::{Connector, ConnectorError, TableContext, TableOptions};

fn source(
    columns: &[(&str, DataType)],
    options: &[(&str, &str)],
) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
    let values: BTreeMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut options = TableOptions::new("t", values);
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, ty)| Field::new(*name, ty.clone(), false))
        .collect();
    Datagen.source(TableContext {
        table: "t",
        schema: Arc::new(Schema::new(fields)),
        options: &mut options,
        primary_key: &[],
    })
}

/// Every subtask's batches, read to the end (the rate limit set high enough not to idle long).
fn read(source: &dyn SourceFactory, parallelism: u32) -> Vec<Vec<RecordBatch>> {
    let splits = source.splits(parallelism);
    splits
        .into_iter()
        .map(|split| {
            let mut reader = source
                .create_reader(vec![split], &OperatorContext::single("datagen"))
                .unwrap();
            let mut batches = Vec::new();
            loop {
                match reader.poll_next().unwrap() {
                    SourcePoll::Batch(b) => batches.push(b),
                    SourcePoll::Idle => std::thread::sleep(std::time::Duration::from_millis(1)),
                    SourcePoll::End => break,
                }
            }
            batches
        })
        .collect()
}

fn column<T: arrow_array::ArrowPrimitiveType>(batches: &[RecordBatch], i: usize) -> Vec<T::Native> {
    batches
        .iter()
        .flat_map(|b| b.column(i).as_primitive::<T>().values().to_vec())
        .collect()
}

const FAST: (&str, &str) = ("rows-per-second", "100000000");

#[test]
fn random_values_respect_their_bounds() {
    let s = source(
        &[
            ("small", DataType::Int8),
            ("x", DataType::Float64),
            ("name", DataType::Utf8),
            ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
            ("d", DataType::Decimal128(6, 2)),
            ("flag", DataType::Boolean),
        ],
        &[
            FAST,
            ("number-of-rows", "5000"),
            ("fields.small.min", "-3"),
            ("fields.small.max", "4"),
            ("fields.x.min", "1.5"),
            ("fields.x.max", "2.5"),
            ("fields.name.length", "7"),
            ("fields.ts.max-past", "60000"),
            ("fields.d.min", "-1.25"),
            ("fields.d.max", "9.99"),
        ],
    )
    .unwrap();
    let before = now_millis();
    let batches = read(&*s, 1).concat();
    let small = column::<Int8Type>(&batches, 0);
    assert_eq!(small.len(), 5000);
    assert!(small.iter().all(|v| (-3..=4).contains(v)));
    assert_eq!(small.iter().min(), Some(&-3));
    assert_eq!(small.iter().max(), Some(&4));
    assert!(
        column::<Float64Type>(&batches, 1)
            .iter()
            .all(|v| (1.5..=2.5).contains(v))
    );
    for b in &batches {
        assert!(
            b.column(2)
                .as_string::<i32>()
                .iter()
                .all(|s| s.unwrap().len() == 7)
        );
    }
    let ts = column::<TimestampMillisecondType>(&batches, 3);
    assert!(
        ts.iter()
            .all(|&t| t >= before - 60_000 && t <= now_millis())
    );
    assert!(
        column::<Decimal128Type>(&batches, 4)
            .iter()
            .all(|v| (-125..=999).contains(v))
    );
    let flags: usize = batches
        .iter()
        .map(|b| b.column(5).as_boolean().true_count())
        .sum();
    assert!((2000..3000).contains(&flags), "{flags}");
}

#[test]
fn sequences_count_up_and_end_the_source() {
    let s = source(
        &[
            ("id", DataType::Int32),
            ("label", DataType::Utf8),
            ("v", DataType::Int64),
        ],
        &[
            FAST,
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "10"),
            ("fields.id.end", "1009"),
            ("fields.label.kind", "sequence"),
            ("fields.label.start", "-5"),
            ("fields.label.end", "100000"),
        ],
    )
    .unwrap();
    let per_subtask = read(&*s, 3);
    let mut ids: Vec<i32> = per_subtask
        .iter()
        .flat_map(|b| column::<Int32Type>(b, 0))
        .collect();
    // Each subtask reads its rows in order; together they read every row once.
    for b in &per_subtask {
        let mine = column::<Int32Type>(b, 0);
        assert!(mine.windows(2).all(|w| w[1] == w[0] + 3));
        for batch in b {
            let labels = batch.column(1).as_string::<i32>();
            let ids = batch.column(0).as_primitive::<Int32Type>();
            for r in 0..batch.num_rows() {
                assert_eq!(labels.value(r), (ids.value(r) as i64 - 15).to_string());
            }
        }
    }
    ids.sort_unstable();
    assert_eq!(ids, (10..=1009).collect::<Vec<_>>());
}

#[test]
fn number_of_rows_bounds_the_source() {
    let s = source(&[("v", DataType::Int64)], &[FAST, ("number-of-rows", "10")]).unwrap();
    let rows: usize = read(&*s, 4).concat().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 10);
}

#[test]
fn same_seed_same_rows_at_any_parallelism() {
    let columns = [("a", DataType::Int64), ("b", DataType::Utf8)];
    let options = [FAST, ("number-of-rows", "9999"), ("seed", "11")];
    let rows = |parallelism: u32| {
        let s = source(&columns, &options).unwrap();
        let mut rows: Vec<(i64, String)> = read(&*s, parallelism)
            .concat()
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_primitive::<Int64Type>().clone();
                let s = b.column(1).as_string::<i32>().clone();
                (0..b.num_rows()).map(move |r| (a.value(r), s.value(r).to_string()))
            })
            .collect();
        rows.sort();
        rows
    };
    let one = rows(1);
    assert_eq!(one.len(), 9999);
    assert_eq!(one, rows(4));
    let other = source(
        &columns,
        &[FAST, ("number-of-rows", "9999"), ("seed", "12")],
    )
    .unwrap();
    let first = read(&*other, 1).concat();
    assert_ne!(
        column::<Int64Type>(&first, 0)[..10],
        one.iter().map(|r| r.0).collect::<Vec<_>>()[..10]
    );
}

#[test]
fn the_rate_limit_idles_a_reader_ahead_of_the_clock() {
    let s = source(&[("v", DataType::Int64)], &[("rows-per-second", "1")]).unwrap();
    let mut reader = s
        .create_reader(s.splits(1), &OperatorContext::single("datagen"))
        .unwrap();
    assert!(matches!(reader.poll_next().unwrap(), SourcePoll::Idle));
}

fn error(columns: &[(&str, DataType)], options: &[(&str, &str)]) -> String {
    source(columns, options).err().unwrap().to_string()
}

#[test]
fn bad_options_name_the_column() {
    let int = [("n", DataType::Int32)];
    let e = error(
        &int,
        &[("fields.n.kind", "sequence"), ("fields.n.start", "1")],
    );
    assert!(e.contains("fields.n.end"), "{e}");
    let e = error(&int, &[("fields.n.min", "5"), ("fields.n.max", "4")]);
    assert!(e.contains("'fields.n.max' = '4'"), "{e}");
    let e = error(&[("n", DataType::Int8)], &[("fields.n.max", "300")]);
    assert!(e.contains("TINYINT"), "{e}");
    let e = error(&int, &[("fields.n.length", "5")]);
    assert!(
        e.contains("'length' does not apply to random INT column 'n'"),
        "{e}"
    );
    let e = error(&int, &[("fields.m.kind", "random")]);
    assert!(e.contains("unknown option(s) fields.m.kind"), "{e}");
    let e = error(&int, &[("fields.n.kind", "shuffle")]);
    assert!(e.contains("random or sequence"), "{e}");
    let ts = [("ts", DataType::Timestamp(TimeUnit::Millisecond, None))];
    let e = error(&ts, &[("fields.ts.kind", "sequence")]);
    assert!(e.contains("'ts'") && e.contains("only be random"), "{e}");
    let e = error(&[("day", DataType::Date32)], &[]);
    assert!(
        e.contains("column 'day'") && e.contains("cannot generate"),
        "{e}"
    );
    let e = error(&int, &[("rows-per-second", "0")]);
    assert!(e.contains("rows-per-second"), "{e}");
}
