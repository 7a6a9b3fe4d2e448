//! Aggregation per key without a window (Flink's `GroupAggregate`). A key's result is never
//! final, so every row updates it and the update goes out as a retract changelog: `+I` of a
//! key's first result, then `-U` of the result before and `+U` of the new one, row by row; a row
//! that leaves the result as it was (a MAX it does not beat) emits nothing, as in Flink.
//!
//! Over a changelog (another aggregate's result, a join of one) a row that retracts (`-U`, `-D`)
//! takes its values back: counts, sums and averages subtract them, and MIN and MAX keep every
//! value of their key with its number of copies in keyed map state, to find the next extreme
//! when the present one is taken back (as Flink's `MaxWithRetractAggFunction` does with its map
//! view). COUNT(DISTINCT) keeps its values so too, whatever its input. When a key's last row is
//! taken back, its result is deleted (`-D`) and its state cleared; a retraction reaching a key
//! with no state changes nothing, as in Flink.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt8Array, UInt32Array,
};
use arrow_cast::cast;
use arrow_schema::{Schema, SchemaRef};
use arrow_select::take::take;
use serde::{Deserialize, Serialize};
use spate_api::{
    OperatorError, Result, RowKind, changelog_schema, row_kind_index, split_row_kinds,
};

use crate::keyed::{KeyedContext, KeyedProcessFunction};
use crate::window::{Aggregate, AggregateSpec, Input, Kind, beats};

/// The value state of a key's results.
const GROUP: &str = "group";

/// `GROUP BY keys` with `aggregates`; its output is the key columns, one column per aggregate
/// and the row kind.
#[derive(Clone)]
pub struct GroupAggregate {
    keys: Vec<usize>,
    aggregates: Vec<Aggregate>,
    /// Per aggregate, the map state of its values (value bytes -> copies), for those that need
    /// their values: MIN and MAX over a changelog, COUNT(DISTINCT).
    value_states: Vec<Option<String>>,
    schema: SchemaRef,
}

/// A key's state: how many rows it holds, and each aggregate's running value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Group {
    /// Rows added less rows taken back; the key has a result while this is above 0.
    rows: i64,
    slots: Vec<Slot>,
}

/// One aggregate's running value for one key: how many values it folded (distinct ones for
/// COUNT(DISTINCT)), and their sum, least or greatest value as an integer, a float or a
/// string, whichever its kind folds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Slot {
    values: i64,
    int: i64,
    float: f64,
    text: Option<String>,
}

/// One aggregate's result as it is emitted.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<String>),
}

impl GroupAggregate {
    /// The aggregate of `input`'s rows by `keys`; `input` is a changelog when it ends in the
    /// row-kind column.
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
        let retracting = row_kind_index(input).is_some();
        let value_states = aggregates
            .iter()
            .enumerate()
            .map(|(i, aggregate)| match aggregate.kind() {
                Kind::DistinctWords | Kind::DistinctRows => Some(format!("distinct values {i}")),
                Kind::MinInt
                | Kind::MaxInt
                | Kind::MinFloat
                | Kind::MaxFloat
                | Kind::MinText
                | Kind::MaxText
                    if retracting =>
                {
                    Some(format!("values {i}"))
                }
                _ => None,
            })
            .collect();
        let mut fields: Vec<_> = keys.iter().map(|&k| input.field(k).clone()).collect();
        fields.extend(aggregates.iter().map(|a| a.output().clone()));
        Ok(GroupAggregate {
            keys,
            aggregates,
            value_states,
            schema: changelog_schema(&Schema::new(fields)),
        })
    }

    fn empty(&self) -> Group {
        Group {
            rows: 0,
            slots: vec![Slot::default(); self.aggregates.len()],
        }
    }

    fn results(&self, slots: &[Slot]) -> Vec<Value> {
        self.aggregates
            .iter()
            .zip(slots)
            .map(|(aggregate, slot)| {
                let some = slot.values > 0;
                match aggregate.kind() {
                    Kind::Count | Kind::DistinctWords | Kind::DistinctRows => {
                        Value::Int(Some(slot.values))
                    }
                    Kind::SumInt | Kind::MinInt | Kind::MaxInt => {
                        Value::Int(some.then_some(slot.int))
                    }
                    Kind::SumFloat | Kind::MinFloat | Kind::MaxFloat => {
                        Value::Float(some.then_some(slot.float))
                    }
                    Kind::MinText | Kind::MaxText => Value::Text(slot.text.clone()),
                    Kind::Avg => Value::Float(some.then(|| slot.float / slot.values as f64)),
                }
            })
            .collect()
    }

    /// Adds (or takes back) row `row`'s value of an aggregate that keeps its values in the map
    /// state `name`.
    fn update_values(
        ctx: &mut KeyedContext<'_>,
        name: &str,
        slot: &mut Slot,
        kind: Kind,
        input: &Input,
        row: usize,
        adds: bool,
    ) -> Result<()> {
        let Some(value) = value_bytes(input, row) else {
            return Ok(());
        };
        let mut values = ctx.map_state::<Vec<u8>, i64>(name)?;
        let copies = values.get(&value)?.unwrap_or(0);
        let distinct = matches!(kind, Kind::DistinctWords | Kind::DistinctRows);
        if adds {
            values.put(&value, &(copies + 1))?;
            if !distinct {
                fold(slot, kind, input, row);
            } else if copies == 0 {
                slot.values += 1;
            }
            return Ok(());
        }
        match copies {
            // Never added here: nothing to take back.
            0 => return Ok(()),
            1 => values.remove(&value)?,
            _ => values.put(&value, &(copies - 1))?,
        }
        if distinct {
            slot.values -= i64::from(copies == 1);
            return Ok(());
        }
        slot.values -= 1;
        if slot.values == 0 {
            *slot = Slot::default();
        } else if copies == 1 && is_extreme(slot, kind, &value)? {
            // The last copy of the least or greatest value went: the next one is among those
            // kept.
            *slot = Slot::default();
            for (value, copies) in values.entries()? {
                for _ in 0..copies {
                    match kind {
                        Kind::MinInt | Kind::MaxInt => fold_int(slot, kind, word(&value)? as i64),
                        Kind::MinText | Kind::MaxText => fold_text(slot, kind, text(&value)?),
                        _ => fold_float(slot, kind, f64::from_bits(word(&value)?)),
                    }
                }
            }
        }
        Ok(())
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
                match &results[0][i] {
                    Value::Int(_) => {
                        Arc::new(Int64Array::from_iter(results.iter().map(|r| match r[i] {
                            Value::Int(v) => v,
                            _ => unreachable!("one aggregate, one type"),
                        })))
                    }
                    Value::Float(_) => Arc::new(Float64Array::from_iter(results.iter().map(|r| {
                        match r[i] {
                            Value::Float(v) => v,
                            _ => unreachable!("one aggregate, one type"),
                        }
                    }))),
                    Value::Text(_) => Arc::new(StringArray::from_iter(results.iter().map(|r| {
                        match &r[i] {
                            Value::Text(v) => v.as_deref(),
                            _ => unreachable!("one aggregate, one type"),
                        }
                    }))),
                };
            // MIN and MAX of timestamps fold their i64 units, of LARGE or view strings strings.
            let wanted = aggregate.output().data_type();
            columns.push(if column.data_type() == wanted {
                column
            } else {
                cast(&column, wanted)?
            });
        }
        columns.push(Arc::new(UInt8Array::from(kinds)));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Row `row`'s value of an aggregate that keeps its values, as the bytes it is kept under;
/// `None` if it is null. Integers and floats take 8 bytes, which [`word`] reads back.
fn value_bytes(input: &Input, row: usize) -> Option<Vec<u8>> {
    match input {
        Input::Int(values) => values
            .is_valid(row)
            .then(|| values.value(row).to_be_bytes().to_vec()),
        Input::Float(values) => values
            .is_valid(row)
            .then(|| values.value(row).to_bits().to_be_bytes().to_vec()),
        Input::Text(texts) => texts
            .is_valid(row)
            .then(|| texts.value(row).as_bytes().to_vec()),
        Input::Words(words) => words.bytes(row).map(|bytes| bytes.to_vec()),
        Input::Rows(rows) => rows.bytes(row).map(<[u8]>::to_vec),
        Input::All | Input::Valid(_) => None,
    }
}

/// The 8 bytes of a kept integer or float, as a word.
fn word(bytes: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        OperatorError::invalid(format!(
            "group aggregate: a kept value has {} bytes, not 8",
            bytes.len()
        ))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A kept string.
fn text(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| {
        OperatorError::invalid(format!("group aggregate: a kept string is not UTF-8: {e}"))
    })
}

/// Whether the kept `value` is the least or greatest value `slot` holds now.
fn is_extreme(slot: &Slot, kind: Kind, value: &[u8]) -> Result<bool> {
    Ok(match kind {
        Kind::MinInt | Kind::MaxInt => slot.int == word(value)? as i64,
        Kind::MinText | Kind::MaxText => slot.text.as_deref().map(str::as_bytes) == Some(value),
        _ => slot.float.to_bits() == word(value)?,
    })
}

fn fold_int(slot: &mut Slot, kind: Kind, value: i64) {
    slot.int = match (kind, slot.values) {
        (Kind::SumInt, _) => slot.int.wrapping_add(value),
        (_, 0) => value,
        (Kind::MinInt, _) => slot.int.min(value),
        _ => slot.int.max(value),
    };
    slot.values += 1;
}

fn fold_float(slot: &mut Slot, kind: Kind, value: f64) {
    slot.float = match (kind, slot.values) {
        (Kind::SumFloat | Kind::Avg, _) => slot.float + value,
        (_, 0) => value,
        (Kind::MinFloat, _) => slot.float.min(value),
        _ => slot.float.max(value),
    };
    slot.values += 1;
}

fn fold_text(slot: &mut Slot, kind: Kind, value: &str) {
    if beats(value, slot.text.as_deref(), kind == Kind::MaxText) {
        slot.text = Some(value.to_owned());
    }
    slot.values += 1;
}

/// Folds row `row` of `input` into `slot`.
fn fold(slot: &mut Slot, kind: Kind, input: &Input, row: usize) {
    match (kind, input) {
        (Kind::Count, Input::All) => slot.values += 1,
        (Kind::Count, Input::Valid(valid)) => slot.values += i64::from(valid.is_valid(row)),
        (_, Input::Int(values)) if values.is_valid(row) => fold_int(slot, kind, values.value(row)),
        (_, Input::Float(values)) if values.is_valid(row) => {
            fold_float(slot, kind, values.value(row))
        }
        (_, Input::Text(texts)) if texts.is_valid(row) => fold_text(slot, kind, texts.value(row)),
        // A null value leaves every aggregate but COUNT(*) as it was.
        _ => {}
    }
}

/// Takes row `row` of `input` back out of `slot`: counts, sums and averages (MIN and MAX keep
/// their values, see `update_values`).
fn unfold(slot: &mut Slot, kind: Kind, input: &Input, row: usize) {
    match (kind, input) {
        (Kind::Count, Input::All) => slot.values -= 1,
        (Kind::Count, Input::Valid(valid)) => slot.values -= i64::from(valid.is_valid(row)),
        (Kind::SumInt, Input::Int(values)) if values.is_valid(row) => {
            slot.int = slot.int.wrapping_sub(values.value(row));
            slot.values -= 1;
        }
        (Kind::SumFloat | Kind::Avg, Input::Float(values)) if values.is_valid(row) => {
            slot.float -= values.value(row);
            slot.values -= 1;
        }
        _ => {}
    }
    // With no value left, no rounding residue of a float sum stays behind either.
    if slot.values == 0 {
        *slot = Slot::default();
    }
}

impl KeyedProcessFunction for GroupAggregate {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        let (data, kinds) = split_row_kinds(rows)?;
        // Read every input before the state changes, so a bad batch leaves the state as it was.
        let inputs = self
            .aggregates
            .iter()
            .map(|a| a.input(&data))
            .collect::<Result<Vec<_>>>()?;
        let stored = ctx.value_state::<Group>(GROUP)?.get()?;
        let mut before = stored.as_ref().map(|group| self.results(&group.slots));
        let mut group = stored.unwrap_or_else(|| self.empty());
        let (mut results, mut out_kinds) = (Vec::new(), Vec::new());
        for row in 0..data.num_rows() {
            let adds = kinds.as_ref().is_none_or(|kinds| kinds[row].is_addition());
            if !adds && group.rows == 0 {
                continue;
            }
            group.rows += if adds { 1 } else { -1 };
            for (i, aggregate) in self.aggregates.iter().enumerate() {
                let slot = &mut group.slots[i];
                match (&self.value_states[i], adds) {
                    (Some(name), _) => Self::update_values(
                        ctx,
                        name,
                        slot,
                        aggregate.kind(),
                        &inputs[i],
                        row,
                        adds,
                    )?,
                    (None, true) => fold(slot, aggregate.kind(), &inputs[i], row),
                    (None, false) => unfold(slot, aggregate.kind(), &inputs[i], row),
                }
            }
            if group.rows == 0 {
                // The key's last row was taken back: so is its result.
                if let Some(old) = before.take() {
                    results.push(old);
                    out_kinds.push(RowKind::Delete as u8);
                }
                for name in self.value_states.iter().flatten() {
                    ctx.map_state::<Vec<u8>, i64>(name.as_str())?.clear()?;
                }
                group = self.empty();
                continue;
            }
            let after = self.results(&group.slots);
            match before.take() {
                None => {
                    results.push(after.clone());
                    out_kinds.push(RowKind::Insert as u8);
                }
                Some(old) if old == after => {}
                Some(old) => {
                    results.push(old);
                    out_kinds.push(RowKind::UpdateBefore as u8);
                    results.push(after.clone());
                    out_kinds.push(RowKind::UpdateAfter as u8);
                }
            }
            before = Some(after);
        }
        let mut state = ctx.value_state::<Group>(GROUP)?;
        if group.rows == 0 {
            state.clear()?;
        } else {
            state.set(&group)?;
        }
        if results.is_empty() {
            return Ok(());
        }
        let batch = self.batch(&data, &results, out_kinds)?;
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

    /// (COUNT(*), COUNT(v), SUM, MIN, MAX, AVG, COUNT(DISTINCT v)) of one key.
    type Summary = (
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<f64>,
        i64,
    );

    /// A key's results by brute force over the values of its rows that are live.
    fn summary(live: &[Option<i64>]) -> Summary {
        let values: Vec<i64> = live.iter().flatten().copied().collect();
        let sum = (!values.is_empty()).then(|| values.iter().sum::<i64>());
        let distinct: std::collections::BTreeSet<i64> = values.iter().copied().collect();
        (
            live.len() as i64,
            values.len() as i64,
            sum,
            values.iter().min().copied(),
            values.iter().max().copied(),
            sum.map(|s| s as f64 / values.len() as f64),
            distinct.len() as i64,
        )
    }

    fn retracting_specs() -> Vec<AggregateSpec> {
        let spec = |function, column: Option<&str>, output: &str| AggregateSpec {
            function,
            column: column.map(str::to_string),
            output: output.to_string(),
        };
        vec![
            spec(AggregateFunction::Count, None, "rows"),
            spec(AggregateFunction::Count, Some("v"), "values"),
            spec(AggregateFunction::Sum, Some("v"), "total"),
            spec(AggregateFunction::Min, Some("v"), "least"),
            spec(AggregateFunction::Max, Some("v"), "top"),
            spec(AggregateFunction::Avg, Some("v"), "mean"),
            spec(AggregateFunction::CountDistinct, Some("v"), "kinds"),
        ]
    }

    /// Every emitted change, per key, in order.
    fn changes_by_key(output: &[RecordBatch]) -> BTreeMap<String, Vec<(RowKind, Summary)>> {
        let mut got: BTreeMap<String, Vec<(RowKind, Summary)>> = BTreeMap::new();
        for batch in output {
            let (data, kinds) = split_row_kinds(batch).unwrap();
            let int = |i: usize| data.column(i).as_primitive::<Int64Type>();
            let value = |i: usize, row: usize| int(i).is_valid(row).then(|| int(i).value(row));
            let mean = data.column(6).as_primitive::<Float64Type>();
            for (row, kind) in kinds.expect("a changelog").into_iter().enumerate() {
                let summary = (
                    int(1).value(row),
                    int(2).value(row),
                    value(3, row),
                    value(4, row),
                    value(5, row),
                    mean.is_valid(row).then(|| mean.value(row)),
                    int(7).value(row),
                );
                let key = data.column(0).as_string::<i32>().value(row).to_string();
                got.entry(key).or_default().push((kind, summary));
            }
        }
        got
    }

    /// A changelog input (rows added and taken back) on either backend, restored halfway at
    /// another parallelism: each key's changes equal those computed by brute force from its
    /// live rows, a key whose rows are all taken back is deleted, and a retraction for a key
    /// that holds nothing changes nothing.
    #[test]
    fn retractions_update_counts_sums_extremes_and_distinct_counts() {
        for backend in [StateBackendKind::Heap, StateBackendKind::RocksDb] {
            let schema = changelog_schema(&input_schema());
            let make = || -> Box<dyn Operator> {
                let schema = changelog_schema(&input_schema());
                let function =
                    GroupAggregate::new(&["k".into()], &retracting_specs(), &schema).unwrap();
                Box::new(KeyedProcessOperator::new(function, vec!["k".into()], schema).unwrap())
            };
            let dir = tempfile::tempdir().unwrap();
            let mut rng = Lcg(11);
            let mut live: BTreeMap<String, Vec<Option<i64>>> = BTreeMap::new();
            let mut want: BTreeMap<String, Vec<(RowKind, Summary)>> = BTreeMap::new();
            let mut output = Vec::new();
            let mut restored = None;
            for (phase, parallelism) in [(0, 2), (1, 3)] {
                let mut instances = Instances::open(
                    make,
                    dir.path(),
                    &format!("agg-{phase}"),
                    backend,
                    parallelism,
                    restored.as_ref(),
                    &["k"],
                )
                .unwrap();
                for _ in 0..40 {
                    let (mut keys, mut values, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
                    for _ in 0..1 + rng.below(30) {
                        let key = format!("k{}", rng.below(5));
                        let rows = live.entry(key.clone()).or_default();
                        let before = (!rows.is_empty()).then(|| summary(rows));
                        let (kind, value) = if rng.below(100) < 3 {
                            // Nothing of this key was ever added.
                            keys.push("none".to_string());
                            values.push(Some(1));
                            kinds.push(RowKind::Delete as u8);
                            continue;
                        } else if !rows.is_empty() && rng.below(10) < 4 {
                            let value = rows.swap_remove(rng.below(rows.len() as u64) as usize);
                            let kind =
                                [RowKind::UpdateBefore, RowKind::Delete][rng.below(2) as usize];
                            (kind, value)
                        } else {
                            let value = (rng.below(5) > 0).then(|| rng.below(8) as i64);
                            rows.push(value);
                            let kind =
                                [RowKind::Insert, RowKind::UpdateAfter][rng.below(2) as usize];
                            (kind, value)
                        };
                        let changes = want.entry(key.clone()).or_default();
                        match (before, (!rows.is_empty()).then(|| summary(rows))) {
                            (None, Some(after)) => changes.push((RowKind::Insert, after)),
                            (Some(before), None) => changes.push((RowKind::Delete, before)),
                            (Some(before), Some(after)) if before != after => {
                                changes.push((RowKind::UpdateBefore, before));
                                changes.push((RowKind::UpdateAfter, after));
                            }
                            _ => {}
                        }
                        keys.push(key);
                        values.push(value);
                        kinds.push(kind as u8);
                    }
                    instances.batch(
                        RecordBatch::try_new(
                            schema.clone(),
                            vec![
                                Arc::new(StringArray::from(keys)),
                                Arc::new(Int64Array::from(values)),
                                Arc::new(UInt8Array::from(kinds)),
                            ],
                        )
                        .unwrap(),
                    );
                }
                restored = Some(instances.snapshot(phase + 1));
                output.append(&mut instances.output);
            }
            want.retain(|_, changes| !changes.is_empty());
            let got = changes_by_key(&output);
            assert_eq!(got, want, "{backend:?}");
            let kinds: Vec<RowKind> = want.values().flatten().map(|c| c.0).collect();
            assert!(kinds.contains(&RowKind::Delete), "keys are deleted");
            assert!(
                !got.contains_key("none"),
                "a retraction of nothing emits nothing"
            );
        }
    }

    /// MIN and MAX of a key whose extreme is taken back fall back to the next value kept, also
    /// when that value has several copies of which one went before.
    #[test]
    fn taking_back_the_extreme_finds_the_next_one() {
        let schema = changelog_schema(&input_schema());
        let function = GroupAggregate::new(&["k".into()], &retracting_specs(), &schema).unwrap();
        let make = || -> Box<dyn Operator> {
            Box::new(
                KeyedProcessOperator::new(function.clone(), vec!["k".into()], schema.clone())
                    .unwrap(),
            )
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
        let changes = [
            (RowKind::Insert, 5),
            (RowKind::Insert, 9),
            (RowKind::Insert, 7),
            (RowKind::Insert, 9),
            (RowKind::Delete, 9),
            (RowKind::Delete, 9),
            (RowKind::Delete, 5),
        ];
        for (kind, value) in changes {
            instances.batch(
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(vec!["k"])),
                        Arc::new(Int64Array::from(vec![value])),
                        Arc::new(UInt8Array::from(vec![kind as u8])),
                    ],
                )
                .unwrap(),
            );
        }
        let got = changes_by_key(&instances.output).remove("k").unwrap();
        let extremes: Vec<(RowKind, Option<i64>, Option<i64>)> =
            got.iter().map(|(kind, s)| (*kind, s.3, s.4)).collect();
        use RowKind::{Insert, UpdateAfter as UA, UpdateBefore as UB};
        assert_eq!(
            extremes,
            [
                (Insert, Some(5), Some(5)),
                (UB, Some(5), Some(5)),
                (UA, Some(5), Some(9)),
                (UB, Some(5), Some(9)),
                (UA, Some(5), Some(9)),
                (UB, Some(5), Some(9)),
                (UA, Some(5), Some(9)),
                (UB, Some(5), Some(9)),
                (UA, Some(5), Some(9)),
                (UB, Some(5), Some(9)),
                (UA, Some(5), Some(7)),
                (UB, Some(5), Some(7)),
                (UA, Some(7), Some(7)),
            ]
        );
    }

    /// MIN and MAX of strings over a changelog, on either backend: each change is what brute
    /// force gives from the key's live strings (compared by their bytes, nulls skipped), the
    /// extreme taken back falling back to the next one kept.
    #[test]
    fn string_extremes_follow_the_live_rows() {
        type Extremes = (Option<String>, Option<String>);
        fn extremes(live: &[Option<&str>]) -> Extremes {
            let values = live.iter().flatten();
            let least = values.clone().min().map(|s| s.to_string());
            (least, values.max().map(|s| s.to_string()))
        }
        let words = ["", "a", "ab", "b", "é", "zz"];
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let schema = changelog_schema(&input);
        let spec = |function, output: &str| AggregateSpec {
            function,
            column: Some("s".into()),
            output: output.into(),
        };
        let specs = [
            spec(AggregateFunction::Min, "least"),
            spec(AggregateFunction::Max, "top"),
        ];
        let function = GroupAggregate::new(&["k".into()], &specs, &schema).unwrap();
        for backend in [StateBackendKind::Heap, StateBackendKind::RocksDb] {
            let make = || -> Box<dyn Operator> {
                Box::new(
                    KeyedProcessOperator::new(function.clone(), vec!["k".into()], schema.clone())
                        .unwrap(),
                )
            };
            let dir = tempfile::tempdir().unwrap();
            let mut instances =
                Instances::open(make, dir.path(), "agg", backend, 1, None, &["k"]).unwrap();
            let mut rng = Lcg(5);
            let mut live: Vec<Option<&str>> = Vec::new();
            let mut want: Vec<(RowKind, Extremes)> = Vec::new();
            for _ in 0..300 {
                let before = (!live.is_empty()).then(|| extremes(&live));
                let (kind, value) = if !live.is_empty() && rng.below(10) < 4 {
                    let value = live.swap_remove(rng.below(live.len() as u64) as usize);
                    (RowKind::Delete, value)
                } else {
                    let value = (rng.below(6) > 0).then(|| words[rng.below(6) as usize]);
                    live.push(value);
                    (RowKind::Insert, value)
                };
                match (before, (!live.is_empty()).then(|| extremes(&live))) {
                    (None, Some(after)) => want.push((RowKind::Insert, after)),
                    (Some(before), None) => want.push((RowKind::Delete, before)),
                    (Some(before), Some(after)) if before != after => {
                        want.push((RowKind::UpdateBefore, before));
                        want.push((RowKind::UpdateAfter, after));
                    }
                    _ => {}
                }
                instances.batch(
                    RecordBatch::try_new(
                        schema.clone(),
                        vec![
                            Arc::new(StringArray::from(vec!["k"])),
                            Arc::new(StringArray::from(vec![value])),
                            Arc::new(UInt8Array::from(vec![kind as u8])),
                        ],
                    )
                    .unwrap(),
                );
            }
            let mut got = Vec::new();
            for batch in &instances.output {
                let (data, kinds) = split_row_kinds(batch).unwrap();
                let text = |i: usize, row: usize| {
                    let column = data.column(i).as_string::<i32>();
                    column.is_valid(row).then(|| column.value(row).to_string())
                };
                for (row, kind) in kinds.expect("a changelog").into_iter().enumerate() {
                    got.push((kind, (text(1, row), text(2, row))));
                }
            }
            assert!(want.len() > 20, "the extremes change: {want:?}");
            assert_eq!(got, want, "{backend:?}");
        }
    }
}
