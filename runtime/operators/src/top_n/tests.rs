use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, SortOptions};
use spate_api::{Operator, RowKind, StateBackendKind, split_row_kinds};

use super::{SortColumn, TopN};
use crate::keyed::KeyedProcessOperator;
use crate::test_cluster::{Instances, Lcg};

const LIMIT: usize = 3;

/// (key, id, price): ids tell rows with equal prices apart.
fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Int64, true),
    ]))
}

fn output_schema() -> Schema {
    Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Int64, true),
        Field::new("rank", DataType::Int64, false),
    ])
}

fn make() -> Box<dyn Operator> {
    // ORDER BY price DESC NULLS LAST, as a highest-bid Top-N.
    let order = [SortColumn {
        column: 2,
        options: SortOptions {
            descending: true,
            nulls_first: false,
        },
    }];
    let function = TopN::new(&input_schema(), &order, LIMIT, &output_schema()).unwrap();
    Box::new(KeyedProcessOperator::new(function, vec!["k".into()], input_schema()).unwrap())
}

/// The tables the changes leave: (key, rank) -> (id, price). Each `-U` must name the row its
/// rank holds, and an insert must find its rank empty.
fn apply(output: &[RecordBatch], table: &mut BTreeMap<(String, i64), (i64, Option<i64>)>) {
    for batch in output {
        let (data, kinds) = split_row_kinds(batch).unwrap();
        let keys = data.column(0).as_string::<i32>();
        let ids = data.column(1).as_primitive::<Int64Type>();
        let prices = data.column(2).as_primitive::<Int64Type>();
        let ranks = data.column(3).as_primitive::<Int64Type>();
        for (row, kind) in kinds.expect("a changelog").into_iter().enumerate() {
            let at = (keys.value(row).to_string(), ranks.value(row));
            let value = (
                ids.value(row),
                prices.is_valid(row).then(|| prices.value(row)),
            );
            match kind {
                RowKind::Insert | RowKind::UpdateAfter => {
                    assert_eq!(table.insert(at.clone(), value), None, "{at:?} is taken")
                }
                RowKind::UpdateBefore => {
                    assert_eq!(table.remove(&at), Some(value), "{at:?} holds another row")
                }
                RowKind::Delete => panic!("a Top-N of inserts deletes nothing"),
            }
        }
    }
}

/// Rows with many equal prices and some nulls, on either backend, restored halfway at another
/// parallelism: each key's ranks hold its first rows in the order of price, highest first
/// (nulls last), ties in the order they came, as a stable sort of everything sent finds them.
#[test]
fn each_key_ranks_its_highest_rows_first_come_first_ranked() {
    for backend in [StateBackendKind::Heap, StateBackendKind::RocksDb] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Lcg(23);
        let mut sent: BTreeMap<String, Vec<(i64, Option<i64>)>> = BTreeMap::new();
        let mut table = BTreeMap::new();
        let mut restored = None;
        let mut id = 0;
        for (phase, parallelism) in [(0, 2), (1, 3)] {
            let mut instances = Instances::open(
                make,
                dir.path(),
                &format!("top-{phase}"),
                backend,
                parallelism,
                restored.as_ref(),
                &["k"],
            )
            .unwrap();
            for _ in 0..30 {
                let rows = 1 + rng.below(20) as usize;
                let (mut keys, mut ids, mut prices) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..rows {
                    let key = format!("k{}", rng.below(4));
                    let price = (rng.below(8) > 0).then(|| rng.below(6) as i64);
                    id += 1;
                    sent.entry(key.clone()).or_default().push((id, price));
                    keys.push(key);
                    ids.push(id);
                    prices.push(price);
                }
                instances.batch(
                    RecordBatch::try_new(
                        input_schema(),
                        vec![
                            Arc::new(StringArray::from(keys)),
                            Arc::new(Int64Array::from(ids)),
                            Arc::new(Int64Array::from(prices)),
                        ],
                    )
                    .unwrap(),
                );
            }
            restored = Some(instances.snapshot(phase + 1));
            apply(&instances.output, &mut table);
        }
        let mut want = BTreeMap::new();
        for (key, rows) in &sent {
            let mut sorted = rows.clone();
            // Highest first, nulls last; `sort_by` is stable, so ties keep their order.
            sorted.sort_by(|a, b| match (a.1, b.1) {
                (Some(x), Some(y)) => y.cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            });
            for (rank, row) in sorted.into_iter().take(LIMIT).enumerate() {
                want.insert((key.clone(), rank as i64 + 1), row);
            }
        }
        assert_eq!(table, want, "{backend:?}");
    }
}

/// A row that does not make the top N emits nothing; one that does moves the rows after it
/// down one rank each, and the last one out.
#[test]
fn a_new_best_row_moves_the_others_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Instances::open(
        make,
        dir.path(),
        "top",
        StateBackendKind::Heap,
        1,
        None,
        &["k"],
    )
    .unwrap();
    for (id, price) in [(1, 5), (2, 3), (3, 1), (4, 0), (5, 4)] {
        instances.batch(
            RecordBatch::try_new(
                input_schema(),
                vec![
                    Arc::new(StringArray::from(vec!["k"])),
                    Arc::new(Int64Array::from(vec![id])),
                    Arc::new(Int64Array::from(vec![price])),
                ],
            )
            .unwrap(),
        );
    }
    let mut changes = Vec::new();
    for batch in &instances.output {
        let (data, kinds) = split_row_kinds(batch).unwrap();
        let ids = data.column(1).as_primitive::<Int64Type>();
        let ranks = data.column(3).as_primitive::<Int64Type>();
        for (row, kind) in kinds.unwrap().into_iter().enumerate() {
            changes.push((kind.short_string(), ids.value(row), ranks.value(row)));
        }
    }
    assert_eq!(
        changes,
        [
            ("+I", 1, 1),
            ("+I", 2, 2),
            ("+I", 3, 3),
            // id 4 (price 0) is fourth: nothing. id 5 (price 4) takes rank 2.
            ("-U", 2, 2),
            ("+U", 5, 2),
            ("-U", 3, 3),
            ("+U", 2, 3),
        ]
    );
}
