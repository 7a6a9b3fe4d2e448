//! Aggregation per key without a window (Flink's `GroupAggregate`). A key's result is never
//! final, so every row updates it and the update goes out as a retract changelog: `+I` of a
//! key's first result, then `-U` of the result before and `+U` of the new one, row by row; a row
//! that leaves the result as it was (a MAX it does not beat) emits nothing, as in Flink.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, UInt8Array, UInt32Array, make_array,
};
use arrow_schema::{Schema, SchemaRef};
use arrow_select::take::take;
use serde::{Deserialize, Serialize};
use spate_api::{OperatorError, Result, RowKind, changelog_schema};

use crate::keyed::{KeyedContext, KeyedProcessFunction};
use crate::window::{Aggregate, AggregateSpec, Input, Kind};

/// `GROUP BY keys` with `aggregates` over an append-only input; its output is the key columns,
/// one column per aggregate and the row kind.
#[derive(Clone)]
pub struct GroupAggregate {
    keys: Vec<usize>,
    aggregates: Vec<Aggregate>,
    schema: SchemaRef,
}

/// One aggregate's running value for one key: how many values it folded, and their sum,
/// least or greatest value as an integer or a float, whichever its kind folds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Slot {
    values: i64,
    int: i64,
    float: f64,
}

/// One aggregate's result as it is emitted.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Int(Option<i64>),
    Float(Option<f64>),
}

impl GroupAggregate {
    pub fn new(keys: &[String], specs: &[AggregateSpec], input: &Schema) -> Result<Self> {
        let keys = keys
            .iter()
            .map(|key| {
                input.index_of(key).map_err(|_| {
                    OperatorError::invalid(format!("group aggregate: no key column '{key}'"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let aggregates = specs
            .iter()
            .map(|spec| spec.resolve(input))
            .collect::<Result<Vec<_>>>()?;
        if let Some(distinct) = aggregates
            .iter()
            .find(|a| matches!(a.kind(), Kind::DistinctWords | Kind::DistinctRows))
        {
            return Err(OperatorError::invalid(format!(
                "aggregate '{}': COUNT(DISTINCT) without a window is not supported yet",
                distinct.output().name()
            )));
        }
        let mut fields: Vec<_> = keys.iter().map(|&k| input.field(k).clone()).collect();
        fields.extend(aggregates.iter().map(|a| a.output().clone()));
        Ok(GroupAggregate {
            keys,
            aggregates,
            schema: changelog_schema(&Schema::new(fields)),
        })
    }

    fn results(&self, slots: &[Slot]) -> Vec<Value> {
        self.aggregates
            .iter()
            .zip(slots)
            .map(|(aggregate, slot)| {
                let some = slot.values > 0;
                match aggregate.kind() {
                    Kind::Count => Value::Int(Some(slot.values)),
                    Kind::SumInt | Kind::MinInt | Kind::MaxInt => {
                        Value::Int(some.then_some(slot.int))
                    }
                    Kind::SumFloat | Kind::MinFloat | Kind::MaxFloat => {
                        Value::Float(some.then_some(slot.float))
                    }
                    Kind::Avg => Value::Float(some.then(|| slot.float / slot.values as f64)),
                    Kind::DistinctWords | Kind::DistinctRows => unreachable!("refused in new"),
                }
            })
            .collect()
    }

    /// The emitted rows as a batch: the key of `rows` repeated, the results, the kinds.
    fn batch(
        &self,
        rows: &RecordBatch,
        results: &[Vec<Value>],
        kinds: Vec<u8>,
    ) -> Result<RecordBatch> {
        let first = UInt32Array::from(vec![0; results.len()]);
        let mut columns: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|&k| take(rows.column(k).as_ref(), &first, None))
            .collect::<Result<_, _>>()?;
        for (i, aggregate) in self.aggregates.iter().enumerate() {
            let column: ArrayRef =
                match results[0][i] {
                    Value::Int(_) => {
                        Arc::new(Int64Array::from_iter(results.iter().map(|r| match r[i] {
                            Value::Int(v) => v,
                            Value::Float(_) => unreachable!("one aggregate, one type"),
                        })))
                    }
                    Value::Float(_) => Arc::new(Float64Array::from_iter(results.iter().map(|r| {
                        match r[i] {
                            Value::Float(v) => v,
                            Value::Int(_) => unreachable!("one aggregate, one type"),
                        }
                    }))),
                };
            // MIN and MAX of timestamps fold their i64 milliseconds.
            let wanted = aggregate.output().data_type();
            columns.push(if column.data_type() == wanted {
                column
            } else {
                make_array(
                    column
                        .to_data()
                        .into_builder()
                        .data_type(wanted.clone())
                        .build()?,
                )
            });
        }
        columns.push(Arc::new(UInt8Array::from(kinds)));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Folds row `row` of `input` into `slot`.
fn fold(slot: &mut Slot, kind: Kind, input: &Input, row: usize) {
    match (kind, input) {
        (Kind::Count, Input::All) => slot.values += 1,
        (Kind::Count, Input::Valid(valid)) => slot.values += i64::from(valid.is_valid(row)),
        (_, Input::Int(values)) if values.is_valid(row) => {
            let value = values.value(row);
            slot.int = match (kind, slot.values) {
                (Kind::SumInt, _) => slot.int.wrapping_add(value),
                (_, 0) => value,
                (Kind::MinInt, _) => slot.int.min(value),
                _ => slot.int.max(value),
            };
            slot.values += 1;
        }
        (_, Input::Float(values)) if values.is_valid(row) => {
            let value = values.value(row);
            slot.float = match (kind, slot.values) {
                (Kind::SumFloat | Kind::Avg, _) => slot.float + value,
                (_, 0) => value,
                (Kind::MinFloat, _) => slot.float.min(value),
                _ => slot.float.max(value),
            };
            slot.values += 1;
        }
        // A null value leaves every aggregate but COUNT(*) as it was.
        _ => {}
    }
}

impl KeyedProcessFunction for GroupAggregate {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        // Read every input before the state changes, so a bad batch leaves the state as it was.
        let inputs = self
            .aggregates
            .iter()
            .map(|a| a.input(rows))
            .collect::<Result<Vec<_>>>()?;
        let mut state = ctx.value_state::<Vec<Slot>>("aggregates")?;
        let stored = state.get()?;
        let mut before = stored.as_ref().map(|slots| self.results(slots));
        let mut slots = stored.unwrap_or_else(|| vec![Slot::default(); self.aggregates.len()]);
        let (mut results, mut kinds) = (Vec::new(), Vec::new());
        for row in 0..rows.num_rows() {
            for ((slot, aggregate), input) in slots.iter_mut().zip(&self.aggregates).zip(&inputs) {
                fold(slot, aggregate.kind(), input, row);
            }
            let after = self.results(&slots);
            match before.take() {
                None => {
                    results.push(after.clone());
                    kinds.push(RowKind::Insert as u8);
                }
                Some(old) if old == after => {}
                Some(old) => {
                    results.push(old);
                    kinds.push(RowKind::UpdateBefore as u8);
                    results.push(after.clone());
                    kinds.push(RowKind::UpdateAfter as u8);
                }
            }
            before = Some(after);
        }
        state.set(&slots)?;
        if results.is_empty() {
            return Ok(());
        }
        let batch = self.batch(rows, &results, kinds)?;
        ctx.emit(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::StringArray;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_schema::{DataType, Field};
    use spate_api::{Operator, StateBackendKind, split_row_kinds};

    use super::*;
    use crate::keyed::KeyedProcessOperator;
    use crate::test_cluster::{Instances, Lcg};
    use crate::window::AggregateFunction;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn specs() -> Vec<AggregateSpec> {
        let spec = |function, column: Option<&str>, output: &str| AggregateSpec {
            function,
            column: column.map(str::to_string),
            output: output.to_string(),
        };
        vec![
            spec(AggregateFunction::Count, None, "rows"),
            spec(AggregateFunction::Sum, Some("v"), "total"),
            spec(AggregateFunction::Max, Some("v"), "top"),
            spec(AggregateFunction::Avg, Some("v"), "mean"),
        ]
    }

    /// (kind, rows, total, top, mean) as emitted for one key.
    /// (rows, total, top, mean) of one key.
    type Results = (i64, Option<i64>, Option<i64>, Option<f64>);
    type Change = (RowKind, i64, Option<i64>, Option<i64>, Option<f64>);

    /// The changes of one key by brute force: its results after each of its rows, in order,
    /// each differing from the one before retracted and replaced.
    fn reference(values: &[Option<i64>]) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut before: Option<Results> = None;
        for n in 1..=values.len() {
            let seen: Vec<i64> = values[..n].iter().flatten().copied().collect();
            let total = (!seen.is_empty()).then(|| seen.iter().sum::<i64>());
            let top = seen.iter().max().copied();
            let mean = total.map(|t| t as f64 / seen.len() as f64);
            let after = (n as i64, total, top, mean);
            match before {
                None => changes.push((RowKind::Insert, after.0, after.1, after.2, after.3)),
                Some(old) if old == after => {}
                Some(old) => {
                    changes.push((RowKind::UpdateBefore, old.0, old.1, old.2, old.3));
                    changes.push((RowKind::UpdateAfter, after.0, after.1, after.2, after.3));
                }
            }
            before = Some(after);
        }
        changes
    }

    #[test]
    fn every_row_updates_its_keys_result_as_a_retract_changelog() {
        let mut rng = Lcg(5);
        let mut sent: BTreeMap<String, Vec<Option<i64>>> = BTreeMap::new();
        let make = || -> Box<dyn Operator> {
            let function = GroupAggregate::new(&["k".into()], &specs(), &input_schema()).unwrap();
            Box::new(KeyedProcessOperator::new(function, vec!["k".into()], input_schema()).unwrap())
        };
        let dir = tempfile::tempdir().unwrap();
        let mut instances = Instances::open(
            make,
            dir.path(),
            "agg",
            StateBackendKind::Heap,
            1,
            None,
            &["k"],
        )
        .unwrap();
        for _ in 0..40 {
            let rows = 1 + rng.below(30) as usize;
            let keys: Vec<String> = (0..rows).map(|_| format!("k{}", rng.below(6))).collect();
            // Values repeat and are sometimes null, so some rows change nothing.
            let values: Vec<Option<i64>> = (0..rows)
                .map(|_| (rng.below(5) > 0).then(|| rng.below(10) as i64))
                .collect();
            for (key, value) in keys.iter().zip(&values) {
                sent.entry(key.clone()).or_default().push(*value);
            }
            instances.batch(
                RecordBatch::try_new(
                    input_schema(),
                    vec![
                        Arc::new(StringArray::from(keys)),
                        Arc::new(Int64Array::from(values)),
                    ],
                )
                .unwrap(),
            );
        }
        let mut got: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for batch in &instances.output {
            let (data, kinds) = split_row_kinds(batch).unwrap();
            let kinds = kinds.expect("a changelog");
            let int = |i: usize| data.column(i).as_primitive::<Int64Type>();
            let mean = data.column(4).as_primitive::<Float64Type>();
            for (row, kind) in kinds.into_iter().enumerate() {
                let value = |i: usize| int(i).is_valid(row).then(|| int(i).value(row));
                got.entry(data.column(0).as_string::<i32>().value(row).to_string())
                    .or_default()
                    .push((
                        kind,
                        int(1).value(row),
                        value(2),
                        value(3),
                        mean.is_valid(row).then(|| mean.value(row)),
                    ));
            }
        }
        let want: BTreeMap<String, Vec<Change>> = sent
            .iter()
            .map(|(k, v)| (k.clone(), reference(v)))
            .collect();
        assert_eq!(got, want);
        assert!(
            want.values()
                .flatten()
                .any(|c| c.0 == RowKind::UpdateBefore),
            "the stream updates results"
        );
    }

    #[test]
    fn distinct_counts_are_refused_by_name() {
        let spec = AggregateSpec {
            function: AggregateFunction::CountDistinct,
            column: Some("v".into()),
            output: "kinds".into(),
        };
        let err = GroupAggregate::new(&["k".into()], &[spec], &input_schema())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("'kinds': COUNT(DISTINCT) without a window"),
            "{err}"
        );
    }
}
