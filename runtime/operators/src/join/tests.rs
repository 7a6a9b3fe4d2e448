use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use spate_api::{
    Operator, Output, RowKind, StreamElement, changelog_batch, changelog_schema, split_row_kinds,
};

use super::InnerJoin;
use crate::keyed::KeyedCoProcessOperator;

fn left_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("lk", DataType::Int64, true),
    ]))
}

fn right_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("b", DataType::Utf8, false),
        Field::new("rk", DataType::Int64, true),
    ]))
}

fn left(rows: &[(i64, Option<i64>)]) -> RecordBatch {
    let a = Int64Array::from_iter_values(rows.iter().map(|r| r.0));
    let k = Int64Array::from_iter(rows.iter().map(|r| r.1));
    RecordBatch::try_new(left_schema(), vec![Arc::new(a), Arc::new(k)]).unwrap()
}

fn right(rows: &[(&str, Option<i64>)]) -> RecordBatch {
    let b = StringArray::from_iter_values(rows.iter().map(|r| r.0));
    let k = Int64Array::from_iter(rows.iter().map(|r| r.1));
    RecordBatch::try_new(right_schema(), vec![Arc::new(b), Arc::new(k)]).unwrap()
}

fn join(changelog: bool) -> KeyedCoProcessOperator<InnerJoin> {
    let (l, r) = match changelog {
        true => (
            changelog_schema(&left_schema()),
            changelog_schema(&right_schema()),
        ),
        false => (left_schema(), right_schema()),
    };
    let output = Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Utf8, false),
    ]);
    let function = InnerJoin::new(&left_schema(), &right_schema(), 1, &output, changelog).unwrap();
    KeyedCoProcessOperator::new(function, (vec!["lk".into()], l), (vec!["rk".into()], r)).unwrap()
}

/// Every output row as (kind, a, b), in emission order.
fn emitted(out: &mut Output) -> Vec<(RowKind, i64, String)> {
    let mut rows = Vec::new();
    for element in out.drain() {
        let StreamElement::Batch(batch) = element else {
            continue;
        };
        let (data, kinds) = split_row_kinds(&batch).unwrap();
        assert_eq!(
            data.num_columns(),
            2,
            "a and b only: the keys are not emitted"
        );
        let a = data.column(0).as_primitive::<Int64Type>();
        let b = data.column(1).as_string::<i32>();
        for i in 0..data.num_rows() {
            let kind = kinds.as_ref().map_or(RowKind::Insert, |k| k[i]);
            rows.push((kind, a.value(i), b.value(i).to_string()));
        }
    }
    rows
}

#[test]
fn rows_join_those_of_the_other_side_with_their_key_before_and_after_them() {
    let mut op = join(false);
    let mut out = Output::default();
    op.process_batch_from(0, left(&[(1, Some(1)), (2, Some(1)), (3, None)]), &mut out)
        .unwrap();
    op.process_batch_from(
        1,
        right(&[("x", Some(1)), ("y", Some(2)), ("n", None)]),
        &mut out,
    )
    .unwrap();
    op.process_batch_from(0, left(&[(4, Some(2)), (1, Some(1))]), &mut out)
        .unwrap();
    op.process_watermark(0, &mut out).unwrap();
    let mut rows = emitted(&mut out);
    rows.sort();
    let want =
        [(1, "x"), (1, "x"), (2, "x"), (4, "y")].map(|(a, b)| (RowKind::Insert, a, b.to_string()));
    assert_eq!(
        rows, want,
        "a NULL key joins nothing; a duplicate joins again"
    );
}

#[test]
fn a_retraction_takes_back_what_its_row_joined() {
    let mut op = join(true);
    let mut out = Output::default();
    let l = |rows: &[(i64, Option<i64>)], kinds: &[RowKind]| {
        changelog_batch(changelog_schema(&left_schema()), &left(rows), kinds).unwrap()
    };
    let r = |rows: &[(&str, Option<i64>)], kinds: &[RowKind]| {
        changelog_batch(changelog_schema(&right_schema()), &right(rows), kinds).unwrap()
    };
    op.process_batch_from(
        0,
        l(&[(1, Some(7)), (1, Some(7))], &[RowKind::Insert; 2]),
        &mut out,
    )
    .unwrap();
    op.process_batch_from(1, r(&[("x", Some(7))], &[RowKind::Insert]), &mut out)
        .unwrap();
    // One copy of (1, 7) goes: one of its two joined rows is taken back.
    op.process_batch_from(0, l(&[(1, Some(7))], &[RowKind::UpdateBefore]), &mut out)
        .unwrap();
    op.process_batch_from(0, l(&[(2, Some(7))], &[RowKind::UpdateAfter]), &mut out)
        .unwrap();
    // The right row goes: it takes back what it joins now, the remaining (1) and (2).
    op.process_batch_from(1, r(&[("x", Some(7))], &[RowKind::Delete]), &mut out)
        .unwrap();
    op.process_batch_from(0, l(&[(3, Some(7))], &[RowKind::Insert]), &mut out)
        .unwrap();
    op.process_watermark(0, &mut out).unwrap();
    let x = |kind, a| (kind, a, "x".to_string());
    assert_eq!(
        emitted(&mut out),
        vec![
            x(RowKind::Insert, 1),
            x(RowKind::Insert, 1),
            x(RowKind::UpdateBefore, 1),
            x(RowKind::UpdateAfter, 2),
            x(RowKind::Delete, 1),
            x(RowKind::Delete, 2),
        ],
        "a row joined after the right side left joins nothing"
    );
}

mod outer {
    use std::collections::BTreeMap;

    use arrow_array::Array;

    use super::*;
    use crate::join::{OuterJoin, OuterSides};
    use crate::test_cluster::Lcg;

    type Pair = (Option<i64>, Option<String>);

    fn outer_join(outer: OuterSides) -> KeyedCoProcessOperator<OuterJoin> {
        let output = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let function = OuterJoin::new(&left_schema(), &right_schema(), 1, &output, outer).unwrap();
        KeyedCoProcessOperator::new(
            function,
            (vec!["lk".into()], changelog_schema(&left_schema())),
            (vec!["rk".into()], changelog_schema(&right_schema())),
        )
        .unwrap()
    }

    /// Applies every emitted change to a multiset of (a, b); a retraction must find its row.
    fn apply(out: &mut Output, table: &mut BTreeMap<Pair, usize>) {
        for element in out.drain() {
            let StreamElement::Batch(batch) = element else {
                continue;
            };
            let (data, kinds) = split_row_kinds(&batch).unwrap();
            let a = data.column(0).as_primitive::<Int64Type>();
            let b = data.column(1).as_string::<i32>();
            for (i, kind) in kinds.expect("a changelog").into_iter().enumerate() {
                let pair = (
                    a.is_valid(i).then(|| a.value(i)),
                    b.is_valid(i).then(|| b.value(i).to_string()),
                );
                if kind.is_addition() {
                    *table.entry(pair).or_default() += 1;
                } else {
                    match table.get_mut(&pair) {
                        Some(1) => {
                            table.remove(&pair);
                        }
                        Some(n) => *n -= 1,
                        None => panic!("{kind:?} {pair:?}: not in the table"),
                    }
                }
            }
        }
    }

    /// The outer join of what is left on each side, by brute force.
    fn reference(
        lefts: &[(i64, Option<i64>)],
        rights: &[(String, Option<i64>)],
        outer: OuterSides,
    ) -> BTreeMap<Pair, usize> {
        let mut table = BTreeMap::new();
        let matches = |l: Option<i64>, r: Option<i64>| l.is_some() && l == r;
        for (a, lk) in lefts {
            let mut matched = false;
            for (b, rk) in rights {
                if matches(*lk, *rk) {
                    matched = true;
                    *table.entry((Some(*a), Some(b.clone()))).or_default() += 1;
                }
            }
            if !matched && outer != OuterSides::Right {
                *table.entry((Some(*a), None)).or_default() += 1;
            }
        }
        for (b, rk) in rights {
            let matched = lefts.iter().any(|(_, lk)| matches(*lk, *rk));
            if !matched && outer != OuterSides::Left {
                *table.entry((None, Some(b.clone()))).or_default() += 1;
            }
        }
        table
    }

    /// Rows come and go on both sides (duplicates, NULL keys, retractions of rows added
    /// before); after every batch the changes emitted so far leave exactly the brute-force
    /// outer join of the rows each side holds then.
    #[test]
    fn the_changes_leave_the_outer_join_of_what_each_side_holds() {
        for outer in [OuterSides::Left, OuterSides::Right, OuterSides::Both] {
            let mut op = outer_join(outer);
            let mut rng = Lcg(31);
            let (mut lefts, mut rights) = (Vec::new(), Vec::new());
            let mut table = BTreeMap::new();
            let mut padded = 0;
            for _ in 0..300 {
                let key = (rng.below(6) > 0).then(|| rng.below(4) as i64);
                let retract = rng.below(3) == 0;
                let mut out = Output::default();
                if rng.below(2) == 0 {
                    let (row, kind) = match retract && !lefts.is_empty() {
                        true => (
                            lefts.swap_remove(rng.below(lefts.len() as u64) as usize),
                            RowKind::Delete,
                        ),
                        false => {
                            let row = (rng.below(3) as i64, key);
                            lefts.push(row);
                            (row, RowKind::Insert)
                        }
                    };
                    let batch =
                        changelog_batch(changelog_schema(&left_schema()), &left(&[row]), &[kind])
                            .unwrap();
                    op.process_batch_from(0, batch, &mut out).unwrap();
                } else {
                    let (row, kind) = match retract && !rights.is_empty() {
                        true => (
                            rights.swap_remove(rng.below(rights.len() as u64) as usize),
                            RowKind::UpdateBefore,
                        ),
                        false => {
                            let row = (["x", "y"][rng.below(2) as usize].to_string(), key);
                            rights.push(row.clone());
                            (row, RowKind::UpdateAfter)
                        }
                    };
                    let batch = changelog_batch(
                        changelog_schema(&right_schema()),
                        &right(&[(row.0.as_str(), row.1)]),
                        &[kind],
                    )
                    .unwrap();
                    op.process_batch_from(1, batch, &mut out).unwrap();
                }
                apply(&mut out, &mut table);
                assert_eq!(table, reference(&lefts, &rights, outer), "{outer:?}");
                padded += table
                    .keys()
                    .filter(|(a, b)| a.is_none() || b.is_none())
                    .count();
            }
            assert!(padded > 0, "{outer:?}: rows were padded");
        }
    }
}

/// A window join keyed by the window end: a key's rows go when the watermark passes its end,
/// so a row of a closed window that comes after finds nothing to join (a regular join would
/// join it), while an open window's rows still join.
#[test]
fn a_window_join_drops_a_window_s_rows_when_the_watermark_passes_its_end() {
    use arrow_array::TimestampMillisecondArray;
    use arrow_schema::TimeUnit;

    let end = || {
        Field::new(
            "end",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )
    };
    let windowed_left = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        end(),
    ]));
    let windowed_right = Arc::new(Schema::new(vec![
        Field::new("b", DataType::Utf8, false),
        end(),
    ]));
    let left = |a: i64, end: i64| {
        RecordBatch::try_new(
            windowed_left.clone(),
            vec![
                Arc::new(Int64Array::from(vec![a])),
                Arc::new(TimestampMillisecondArray::from(vec![end])),
            ],
        )
        .unwrap()
    };
    let right = |b: &str, end: i64| {
        RecordBatch::try_new(
            windowed_right.clone(),
            vec![
                Arc::new(StringArray::from(vec![b])),
                Arc::new(TimestampMillisecondArray::from(vec![end])),
            ],
        )
        .unwrap()
    };
    let output = Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Utf8, false),
    ]);
    let function = InnerJoin::window(&windowed_left, &windowed_right, 1, &output, 0).unwrap();
    let mut op = KeyedCoProcessOperator::new(
        function,
        (vec!["end".into()], windowed_left.clone()),
        (vec!["end".into()], windowed_right.clone()),
    )
    .unwrap();
    let mut out = Output::default();
    op.process_batch_from(0, left(1, 1_000), &mut out).unwrap();
    op.process_batch_from(0, left(2, 2_000), &mut out).unwrap();
    op.process_batch_from(1, right("x", 1_000), &mut out)
        .unwrap();
    // The window ending at 1000 closes; the one ending at 2000 stays open.
    op.process_watermark(999, &mut out).unwrap();
    op.process_batch_from(1, right("late", 1_000), &mut out)
        .unwrap();
    op.process_batch_from(1, right("y", 2_000), &mut out)
        .unwrap();
    let rows = emitted(&mut out);
    let want = [(1, "x"), (2, "y")].map(|(a, b)| (RowKind::Insert, a, b.to_string()));
    assert_eq!(rows, want);

    let not_a_time = InnerJoin::window(&left_schema(), &right_schema(), 1, &output, 0);
    assert!(
        not_a_time.is_err_and(|e| e.to_string().contains("must be a window end")),
        "a window join's end key must be a TIMESTAMP(3)"
    );
}
