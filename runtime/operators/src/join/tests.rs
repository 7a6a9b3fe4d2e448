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
