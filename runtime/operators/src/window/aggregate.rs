use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_buffer::{ArrowNativeType, BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use spate_api::{OperatorError, Result, column_names};

mod codec;

use super::distinct::{ByteSet, Distinct, HashedRows, WordSet, Words, fits_word};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    /// The number of distinct non-null values; floats count -0.0 as 0.0 and all NaNs as one.
    CountDistinct,
}

impl AggregateFunction {
    fn name(self) -> &'static str {
        match self {
            AggregateFunction::Count => "COUNT",
            AggregateFunction::Sum => "SUM",
            AggregateFunction::Min => "MIN",
            AggregateFunction::Max => "MAX",
            AggregateFunction::Avg => "AVG",
            AggregateFunction::CountDistinct => "COUNT(DISTINCT)",
        }
    }

    fn call(self, column: &str) -> String {
        match self {
            AggregateFunction::CountDistinct => format!("COUNT(DISTINCT {column})"),
            _ => format!("{}({column})", self.name()),
        }
    }
}

/// One aggregate of a window: `function(column) AS output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateSpec {
    pub function: AggregateFunction,
    /// `None` is `COUNT(*)`.
    pub column: Option<String>,
    pub output: String,
}

/// What an aggregate folds its values into, with the input type already decided: integers
/// (and timestamps) are folded as i64, floats as f64, strings as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Count,
    SumInt,
    SumFloat,
    MinInt,
    MaxInt,
    MinFloat,
    MaxFloat,
    /// MIN and MAX of strings, which compare by their UTF-8 bytes as Flink's do.
    MinText,
    MaxText,
    Avg,
    DistinctWords,
    DistinctRows,
}

/// An aggregate checked against the input schema.
#[derive(Debug, Clone)]
pub(crate) struct Aggregate {
    kind: Kind,
    column: Option<usize>,
    output: Field,
}

impl AggregateSpec {
    pub(crate) fn resolve(&self, input: &Schema) -> Result<Aggregate> {
        let function = self.function.name();
        let Some(name) = &self.column else {
            return match self.function {
                AggregateFunction::Count => Ok(Aggregate {
                    kind: Kind::Count,
                    column: None,
                    output: Field::new(&self.output, DataType::Int64, false),
                }),
                _ => Err(OperatorError::invalid(format!(
                    "aggregate '{}': {function} needs a column",
                    self.output
                ))),
            };
        };
        let column = input.index_of(name).map_err(|_| {
            OperatorError::invalid(format!(
                "aggregate '{}': column '{name}' of {} is not in the input (columns: {})",
                self.output,
                self.function.call(name),
                column_names(input)
            ))
        })?;
        let input_type = input.field(column).data_type();
        let integer = input_type.is_integer();
        let float = input_type.is_floating();
        let (kind, output_type) = match self.function {
            AggregateFunction::Count => (Kind::Count, DataType::Int64),
            // Values are told apart by their row format (words are a shortcut for small fixed
            // widths), so DISTINCT takes the types a key takes.
            AggregateFunction::CountDistinct
                if !RowConverter::supports_fields(&[SortField::new(input_type.clone())]) =>
            {
                return Err(OperatorError::invalid(format!(
                    "aggregate '{}': column '{name}' has type {input_type}, which {function} \
                     cannot compare",
                    self.output
                )));
            }
            AggregateFunction::CountDistinct if fits_word(input_type) => {
                (Kind::DistinctWords, DataType::Int64)
            }
            AggregateFunction::CountDistinct => (Kind::DistinctRows, DataType::Int64),
            AggregateFunction::Sum if integer => (Kind::SumInt, DataType::Int64),
            AggregateFunction::Sum if float => (Kind::SumFloat, DataType::Float64),
            AggregateFunction::Min | AggregateFunction::Max if integer => {
                (self.pick(Kind::MinInt, Kind::MaxInt), DataType::Int64)
            }
            AggregateFunction::Min | AggregateFunction::Max if float => {
                (self.pick(Kind::MinFloat, Kind::MaxFloat), DataType::Float64)
            }
            AggregateFunction::Min | AggregateFunction::Max
                if matches!(input_type, DataType::Timestamp(_, _)) =>
            {
                (self.pick(Kind::MinInt, Kind::MaxInt), input_type.clone())
            }
            AggregateFunction::Min | AggregateFunction::Max if is_text(input_type) => {
                (self.pick(Kind::MinText, Kind::MaxText), input_type.clone())
            }
            AggregateFunction::Avg if integer || float => (Kind::Avg, DataType::Float64),
            _ => {
                let expected = match self.function {
                    AggregateFunction::Min | AggregateFunction::Max => {
                        "integer, floating-point, timestamp or string"
                    }
                    _ => "integer or floating-point",
                };
                return Err(OperatorError::invalid(format!(
                    "aggregate '{}': column '{name}' has type {input_type}, but {function} \
                     takes {expected} columns",
                    self.output
                )));
            }
        };
        // Counts are never null: no value counts 0.
        let nullable = !matches!(kind, Kind::Count | Kind::DistinctWords | Kind::DistinctRows);
        Ok(Aggregate {
            kind,
            column: Some(column),
            output: Field::new(&self.output, output_type, nullable),
        })
    }

    fn pick(&self, min: Kind, max: Kind) -> Kind {
        if self.function == AggregateFunction::Min {
            min
        } else {
            max
        }
    }
}

impl Aggregate {
    pub(crate) fn output(&self) -> &Field {
        &self.output
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Reads this aggregate's input from a batch, in the representation its state folds.
    pub(crate) fn input(&self, batch: &RecordBatch) -> Result<Input> {
        let Some(column) = self.column else {
            return Ok(Input::All);
        };
        let column = batch.column(column);
        // Unsafe casts fail instead of turning values that do not fit (u64 above i64::MAX)
        // into nulls that would silently vanish from the result.
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        Ok(match self.kind {
            Kind::Count => match column.logical_nulls() {
                Some(nulls) => Input::Valid(nulls),
                None => Input::All,
            },
            Kind::SumInt | Kind::MinInt | Kind::MaxInt => Input::Int(
                cast_with_options(column, &DataType::Int64, &options)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            Kind::SumFloat | Kind::MinFloat | Kind::MaxFloat | Kind::Avg => Input::Float(
                cast_with_options(column, &DataType::Float64, &options)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            Kind::MinText | Kind::MaxText => Input::Text(
                cast_with_options(column, &DataType::Utf8, &options)?
                    .as_string::<i32>()
                    .clone(),
            ),
            Kind::DistinctWords => Input::Words(Words::read(column)?),
            Kind::DistinctRows => Input::Rows(HashedRows::read(column)?),
        })
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// An aggregate's input for one batch.
#[derive(Debug)]
pub(crate) enum Input {
    /// Every row counts.
    All,
    /// Rows whose value is not null count.
    Valid(NullBuffer),
    Int(Int64Array),
    Float(Float64Array),
    Text(StringArray),
    Words(Words),
    Rows(HashedRows),
}

/// Accumulated updates of one batch, applied aggregate by aggregate so each aggregate runs one
/// tight, monomorphic loop instead of a dispatch per record.
#[derive(Debug, Default)]
pub(crate) struct Updates {
    inputs: Vec<Input>,
    /// (row, accumulator slot) per record and window.
    pairs: Vec<(u32, u32)>,
}

impl Updates {
    /// Starts a batch: reads the inputs before any state changes, so a bad batch leaves the
    /// state as it was.
    pub(crate) fn start(&mut self, aggregates: &[Aggregate], batch: &RecordBatch) -> Result<()> {
        self.inputs = aggregates
            .iter()
            .map(|a| a.input(batch))
            .collect::<Result<_>>()?;
        self.pairs.clear();
        Ok(())
    }

    #[inline]
    pub(crate) fn push(&mut self, row: usize, slot: u32) {
        self.pairs.push((row as u32, slot));
    }

    pub(crate) fn apply(&mut self, accumulators: &mut Accumulators) {
        for (state, input) in accumulators.states.iter_mut().zip(&self.inputs) {
            state.update(input, &self.pairs);
        }
        self.pairs.clear();
    }

    /// Ends a batch, releasing its input arrays.
    pub(crate) fn finish(&mut self, accumulators: &mut Accumulators) {
        self.apply(accumulators);
        self.inputs.clear();
    }
}

/// Accumulator state of all open windows, one column per aggregate and one slot per (key,
/// window). Slots of fired windows are reused.
#[derive(Debug)]
pub(crate) struct Accumulators {
    states: Vec<State>,
    types: Vec<DataType>,
    free: Vec<u32>,
    slots: u32,
}

impl Accumulators {
    pub(crate) fn new(aggregates: &[Aggregate]) -> Self {
        Accumulators {
            states: aggregates.iter().map(|a| State::new(a.kind)).collect(),
            types: aggregates
                .iter()
                .map(|a| a.output.data_type().clone())
                .collect(),
            free: Vec::new(),
            slots: 0,
        }
    }

    pub(crate) fn alloc(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            for state in &mut self.states {
                state.reset(slot as usize);
            }
            return slot;
        }
        for state in &mut self.states {
            state.grow();
        }
        self.slots += 1;
        self.slots - 1
    }

    /// Frees `slots`, whose results have been read.
    pub(crate) fn free(&mut self, slots: &[u32]) {
        for state in &mut self.states {
            state.release(slots);
        }
        self.free.extend_from_slice(slots);
    }

    /// Folds `src` into `dst`, as when session windows merge.
    pub(crate) fn merge(&mut self, dst: u32, src: u32) {
        for state in &mut self.states {
            state.merge(dst as usize, src as usize);
        }
    }

    /// The results of `slots`, one column per aggregate.
    pub(crate) fn results(&self, slots: &[u32]) -> Vec<ArrayRef> {
        self.states
            .iter()
            .zip(&self.types)
            .map(|(state, data_type)| state.results(slots, data_type))
            .collect()
    }

    /// Slots in use.
    pub(crate) fn live(&self) -> usize {
        self.slots as usize - self.free.len()
    }

    /// Values held in the sets of COUNT(DISTINCT) aggregates, over all slots.
    #[cfg(test)]
    pub(crate) fn distinct_values(&self) -> usize {
        self.states
            .iter()
            .map(|state| match state {
                State::DistinctWords(d) => d.held(),
                State::DistinctRows(d) => d.held(),
                _ => 0,
            })
            .sum()
    }
}

/// How a fold combines values; `IDENTITY` is the state before any value.
trait Fold {
    type T: ArrowNativeType;
    const IDENTITY: Self::T;
    fn combine(acc: Self::T, value: Self::T) -> Self::T;
}

#[derive(Debug)]
struct SumInt;
#[derive(Debug)]
struct SumFloat;
#[derive(Debug)]
struct MinInt;
#[derive(Debug)]
struct MaxInt;
#[derive(Debug)]
struct MinFloat;
#[derive(Debug)]
struct MaxFloat;

impl Fold for SumInt {
    type T = i64;
    const IDENTITY: i64 = 0;
    #[inline]
    fn combine(acc: i64, value: i64) -> i64 {
        // Overflow wraps, as BIGINT sums do in Flink (Java long arithmetic).
        acc.wrapping_add(value)
    }
}

impl Fold for SumFloat {
    type T = f64;
    const IDENTITY: f64 = 0.0;
    #[inline]
    fn combine(acc: f64, value: f64) -> f64 {
        acc + value
    }
}

impl Fold for MinInt {
    type T = i64;
    const IDENTITY: i64 = i64::MAX;
    #[inline]
    fn combine(acc: i64, value: i64) -> i64 {
        acc.min(value)
    }
}

impl Fold for MaxInt {
    type T = i64;
    const IDENTITY: i64 = i64::MIN;
    #[inline]
    fn combine(acc: i64, value: i64) -> i64 {
        acc.max(value)
    }
}

// NaN as identity: `f64::min`/`max` return the other operand for NaN, so NaN inputs are skipped
// unless a window has nothing else.
impl Fold for MinFloat {
    type T = f64;
    const IDENTITY: f64 = f64::NAN;
    #[inline]
    fn combine(acc: f64, value: f64) -> f64 {
        acc.min(value)
    }
}

impl Fold for MaxFloat {
    type T = f64;
    const IDENTITY: f64 = f64::NAN;
    #[inline]
    fn combine(acc: f64, value: f64) -> f64 {
        acc.max(value)
    }
}

/// Whether `value` replaces `kept` as the least (or, with `greatest`, the greatest) string so
/// far, compared by their UTF-8 bytes as Flink compares strings.
pub(crate) fn beats(value: &str, kept: Option<&str>, greatest: bool) -> bool {
    match kept {
        None => true,
        Some(kept) if greatest => value > kept,
        Some(kept) => value < kept,
    }
}

/// The least or greatest string per slot; `None` until a non-null value reaches the slot.
#[derive(Debug)]
struct Texts {
    greatest: bool,
    values: Vec<Option<String>>,
}

impl Texts {
    fn new(greatest: bool) -> Self {
        Texts {
            greatest,
            values: Vec::new(),
        }
    }

    fn fold(&mut self, slot: usize, value: &str) {
        if beats(value, self.values[slot].as_deref(), self.greatest) {
            self.values[slot] = Some(value.to_owned());
        }
    }

    fn update(&mut self, texts: &StringArray, pairs: &[(u32, u32)]) {
        for &(row, slot) in pairs {
            if texts.is_valid(row as usize) {
                self.fold(slot as usize, texts.value(row as usize));
            }
        }
    }

    fn merge(&mut self, dst: usize, src: usize) {
        if let Some(value) = self.values[src].clone() {
            self.fold(dst, &value);
        }
    }

    fn results(&self, slots: &[u32], data_type: &DataType) -> ArrayRef {
        let texts: ArrayRef = Arc::new(StringArray::from_iter(
            slots.iter().map(|&s| self.values[s as usize].as_deref()),
        ));
        match data_type {
            DataType::Utf8 => texts,
            // LARGE or view strings in, the same out; a cast between string types cannot fail.
            other => arrow_cast::cast(&texts, other).expect("strings cast to strings"),
        }
    }
}

/// A fold per slot, plus whether any non-null value reached it (no value gives null).
#[derive(Debug)]
struct Folded<F: Fold> {
    values: Vec<F::T>,
    seen: Vec<bool>,
}

impl<F: Fold> Default for Folded<F> {
    fn default() -> Self {
        Folded {
            values: Vec::new(),
            seen: Vec::new(),
        }
    }
}

impl<F: Fold> Folded<F> {
    fn grow(&mut self) {
        self.values.push(F::IDENTITY);
        self.seen.push(false);
    }

    fn reset(&mut self, slot: usize) {
        self.values[slot] = F::IDENTITY;
        self.seen[slot] = false;
    }

    #[inline]
    fn fold(&mut self, slot: usize, value: F::T) {
        self.values[slot] = F::combine(self.values[slot], value);
        self.seen[slot] = true;
    }

    fn update(&mut self, values: &[F::T], nulls: Option<&NullBuffer>, pairs: &[(u32, u32)]) {
        match nulls {
            None => {
                for &(row, slot) in pairs {
                    self.fold(slot as usize, values[row as usize]);
                }
            }
            Some(nulls) => {
                for &(row, slot) in pairs {
                    if nulls.is_valid(row as usize) {
                        self.fold(slot as usize, values[row as usize]);
                    }
                }
            }
        }
    }

    fn merge(&mut self, dst: usize, src: usize) {
        self.values[dst] = F::combine(self.values[dst], self.values[src]);
        self.seen[dst] |= self.seen[src];
    }

    fn results(&self, slots: &[u32]) -> (ScalarBuffer<F::T>, Option<NullBuffer>) {
        let values: Vec<F::T> = slots.iter().map(|&s| self.values[s as usize]).collect();
        (values.into(), validity(slots, |s| self.seen[s]))
    }
}

fn validity(slots: &[u32], valid: impl Fn(usize) -> bool) -> Option<NullBuffer> {
    let nulls = NullBuffer::new(BooleanBuffer::collect_bool(slots.len(), |i| {
        valid(slots[i] as usize)
    }));
    (nulls.null_count() > 0).then_some(nulls)
}

#[derive(Debug)]
enum State {
    Count(Vec<i64>),
    SumInt(Folded<SumInt>),
    SumFloat(Folded<SumFloat>),
    MinInt(Folded<MinInt>),
    MaxInt(Folded<MaxInt>),
    MinFloat(Folded<MinFloat>),
    MaxFloat(Folded<MaxFloat>),
    Text(Texts),
    Avg { sums: Vec<f64>, counts: Vec<i64> },
    DistinctWords(Distinct<WordSet>),
    DistinctRows(Distinct<ByteSet>),
}

impl State {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Count => State::Count(Vec::new()),
            Kind::SumInt => State::SumInt(Folded::default()),
            Kind::SumFloat => State::SumFloat(Folded::default()),
            Kind::MinInt => State::MinInt(Folded::default()),
            Kind::MaxInt => State::MaxInt(Folded::default()),
            Kind::MinFloat => State::MinFloat(Folded::default()),
            Kind::MaxFloat => State::MaxFloat(Folded::default()),
            Kind::MinText => State::Text(Texts::new(false)),
            Kind::MaxText => State::Text(Texts::new(true)),
            Kind::Avg => State::Avg {
                sums: Vec::new(),
                counts: Vec::new(),
            },
            Kind::DistinctWords => State::DistinctWords(Distinct::default()),
            Kind::DistinctRows => State::DistinctRows(Distinct::default()),
        }
    }

    fn grow(&mut self) {
        match self {
            State::Count(counts) => counts.push(0),
            State::SumInt(f) => f.grow(),
            State::SumFloat(f) => f.grow(),
            State::MinInt(f) => f.grow(),
            State::MaxInt(f) => f.grow(),
            State::MinFloat(f) => f.grow(),
            State::MaxFloat(f) => f.grow(),
            State::Text(t) => t.values.push(None),
            State::Avg { sums, counts } => {
                sums.push(0.0);
                counts.push(0);
            }
            State::DistinctWords(d) => d.grow(),
            State::DistinctRows(d) => d.grow(),
        }
    }

    fn reset(&mut self, slot: usize) {
        match self {
            State::Count(counts) => counts[slot] = 0,
            State::SumInt(f) => f.reset(slot),
            State::SumFloat(f) => f.reset(slot),
            State::MinInt(f) => f.reset(slot),
            State::MaxInt(f) => f.reset(slot),
            State::MinFloat(f) => f.reset(slot),
            State::MaxFloat(f) => f.reset(slot),
            State::Text(t) => t.values[slot] = None,
            State::Avg { sums, counts } => {
                sums[slot] = 0.0;
                counts[slot] = 0;
            }
            // Emptied when the slot was freed.
            State::DistinctWords(_) | State::DistinctRows(_) => {}
        }
    }

    fn release(&mut self, slots: &[u32]) {
        match self {
            State::DistinctWords(d) => d.release(slots),
            State::DistinctRows(d) => d.release(slots),
            // Strings are dropped now rather than when the slot is reused.
            State::Text(t) => {
                for &slot in slots {
                    t.values[slot as usize] = None;
                }
            }
            // Fixed-size state, reset when the slot is reused.
            _ => {}
        }
    }

    fn update(&mut self, input: &Input, pairs: &[(u32, u32)]) {
        match (self, input) {
            (State::Count(counts), Input::All) => {
                for &(_, slot) in pairs {
                    counts[slot as usize] += 1;
                }
            }
            (State::Count(counts), Input::Valid(nulls)) => {
                for &(row, slot) in pairs {
                    counts[slot as usize] += nulls.is_valid(row as usize) as i64;
                }
            }
            (State::SumInt(f), Input::Int(a)) => f.update(a.values(), a.nulls(), pairs),
            (State::MinInt(f), Input::Int(a)) => f.update(a.values(), a.nulls(), pairs),
            (State::MaxInt(f), Input::Int(a)) => f.update(a.values(), a.nulls(), pairs),
            (State::SumFloat(f), Input::Float(a)) => f.update(a.values(), a.nulls(), pairs),
            (State::MinFloat(f), Input::Float(a)) => f.update(a.values(), a.nulls(), pairs),
            (State::MaxFloat(f), Input::Float(a)) => f.update(a.values(), a.nulls(), pairs),
            (State::Text(t), Input::Text(texts)) => t.update(texts, pairs),
            (State::Avg { sums, counts }, Input::Float(a)) => {
                let values = a.values();
                for &(row, slot) in pairs {
                    let (row, slot) = (row as usize, slot as usize);
                    if a.is_valid(row) {
                        sums[slot] += values[row];
                        counts[slot] += 1;
                    }
                }
            }
            (State::DistinctWords(d), Input::Words(words)) => d.update(words, pairs),
            (State::DistinctRows(d), Input::Rows(rows)) => d.update(rows, pairs),
            (state, input) => unreachable!("{state:?} is never fed {input:?}"),
        }
    }

    fn merge(&mut self, dst: usize, src: usize) {
        match self {
            State::Count(counts) => counts[dst] += counts[src],
            State::SumInt(f) => f.merge(dst, src),
            State::SumFloat(f) => f.merge(dst, src),
            State::MinInt(f) => f.merge(dst, src),
            State::MaxInt(f) => f.merge(dst, src),
            State::MinFloat(f) => f.merge(dst, src),
            State::MaxFloat(f) => f.merge(dst, src),
            State::Text(t) => t.merge(dst, src),
            State::Avg { sums, counts } => {
                sums[dst] += sums[src];
                counts[dst] += counts[src];
            }
            State::DistinctWords(d) => d.merge(dst, src),
            State::DistinctRows(d) => d.merge(dst, src),
        }
    }

    fn results(&self, slots: &[u32], data_type: &DataType) -> ArrayRef {
        match self {
            State::Count(counts) => Arc::new(Int64Array::from_iter_values(
                slots.iter().map(|&s| counts[s as usize]),
            )),
            State::SumInt(f) => int_array(f.results(slots), data_type),
            State::MinInt(f) => int_array(f.results(slots), data_type),
            State::MaxInt(f) => int_array(f.results(slots), data_type),
            State::SumFloat(f) => float_array(f.results(slots)),
            State::MinFloat(f) => float_array(f.results(slots)),
            State::MaxFloat(f) => float_array(f.results(slots)),
            State::Text(t) => t.results(slots, data_type),
            State::Avg { sums, counts } => {
                let means: Vec<f64> = slots
                    .iter()
                    .map(|&s| sums[s as usize] / counts[s as usize] as f64)
                    .collect();
                float_array((means.into(), validity(slots, |s| counts[s] > 0)))
            }
            State::DistinctWords(d) => Arc::new(Int64Array::from_iter_values(d.counts(slots))),
            State::DistinctRows(d) => Arc::new(Int64Array::from_iter_values(d.counts(slots))),
        }
    }
}

fn float_array((values, nulls): (ScalarBuffer<f64>, Option<NullBuffer>)) -> ArrayRef {
    Arc::new(Float64Array::new(values, nulls))
}

/// Integer results typed as the output: BIGINT, or the timestamp type MIN/MAX read.
fn int_array(
    (values, nulls): (ScalarBuffer<i64>, Option<NullBuffer>),
    data_type: &DataType,
) -> ArrayRef {
    match data_type {
        DataType::Timestamp(TimeUnit::Second, tz) => {
            Arc::new(TimestampSecondArray::new(values, nulls).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            Arc::new(TimestampMillisecondArray::new(values, nulls).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            Arc::new(TimestampMicrosecondArray::new(values, nulls).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            Arc::new(TimestampNanosecondArray::new(values, nulls).with_timezone_opt(tz.clone()))
        }
        _ => Arc::new(Int64Array::new(values, nulls)),
    }
}
#[cfg(test)]
mod tests {
    use arrow_array::{Float32Array, UInt64Array};

    use super::*;

    fn run(spec: AggregateSpec, column: ArrayRef, slots: &[u32]) -> Result<ArrayRef> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "x",
            column.data_type().clone(),
            true,
        )]));
        let aggregate = spec.resolve(&schema)?;
        let batch = RecordBatch::try_new(schema, vec![column])?;
        let mut accumulators = Accumulators::new(std::slice::from_ref(&aggregate));
        let count = slots.iter().max().map_or(0, |m| m + 1);
        for _ in 0..count {
            accumulators.alloc();
        }
        let mut updates = Updates::default();
        updates.start(std::slice::from_ref(&aggregate), &batch)?;
        for (row, &slot) in slots.iter().enumerate() {
            updates.push(row, slot);
        }
        updates.finish(&mut accumulators);
        let slots: Vec<u32> = (0..count).collect();
        Ok(accumulators.results(&slots).remove(0))
    }

    fn spec(function: AggregateFunction) -> AggregateSpec {
        AggregateSpec {
            function,
            column: Some("x".into()),
            output: "out".into(),
        }
    }

    #[test]
    fn nulls_are_skipped_and_empty_windows_give_null() {
        use AggregateFunction::*;
        let values: ArrayRef = Arc::new(Float32Array::from(vec![
            Some(1.5),
            None,
            Some(-2.0),
            Some(f32::NAN),
            None,
        ]));
        // Slot 0: 1.5, null, -2, NaN; slot 1: null.
        let slots = [0, 0, 0, 0, 1];
        let floats = |function| {
            let array = run(spec(function), values.clone(), &slots).unwrap();
            let array = array.as_primitive::<Float64Type>().clone();
            (array.value(0), array.is_null(1))
        };
        assert!(floats(Sum).0.is_nan() && floats(Sum).1);
        assert_eq!(floats(Min), (-2.0, true), "NaN is skipped by MIN");
        assert_eq!(floats(Max), (1.5, true));
        let counts = run(spec(Count), values.clone(), &slots).unwrap();
        assert_eq!(
            counts.as_primitive::<Int64Type>().values().to_vec(),
            vec![3, 0]
        );
        assert_eq!(counts.null_count(), 0);
    }

    #[test]
    fn merged_slots_combine_their_state() {
        let schema = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        let aggregates: Vec<Aggregate> = [AggregateFunction::Min, AggregateFunction::Avg]
            .into_iter()
            .map(|f| spec(f).resolve(&schema).unwrap())
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from(vec![Some(4), Some(1), None]))],
        )
        .unwrap();
        let mut accumulators = Accumulators::new(&aggregates);
        let (a, b, empty) = (
            accumulators.alloc(),
            accumulators.alloc(),
            accumulators.alloc(),
        );
        let mut updates = Updates::default();
        updates.start(&aggregates, &batch).unwrap();
        updates.push(0, a);
        updates.push(1, b);
        updates.push(2, empty);
        updates.finish(&mut accumulators);
        accumulators.merge(a, b);
        accumulators.merge(a, empty);
        accumulators.free(&[b, empty]);
        assert_eq!(accumulators.alloc(), empty, "freed slots are reused");

        let results = accumulators.results(&[a, empty]);
        let (min, avg) = (&results[0], &results[1]);
        assert_eq!(min.as_primitive::<Int64Type>().value(0), 1);
        assert_eq!(avg.as_primitive::<Float64Type>().value(0), 2.5);
        assert!(
            min.is_null(1) && avg.is_null(1),
            "a reused slot starts empty"
        );
    }

    #[test]
    fn strings_fold_by_their_bytes_merge_and_survive_a_snapshot() {
        use AggregateFunction::*;
        // Slot 0: "b", null, "ab", "é" (bytes above ASCII); slot 1: null; slot 2: "a".
        let values: ArrayRef = Arc::new(arrow_array::LargeStringArray::from(vec![
            Some("b"),
            None,
            Some("ab"),
            Some("é"),
            None,
            Some("a"),
        ]));
        let slots = [0, 0, 0, 0, 1, 2];
        let texts = |function| {
            let array = run(spec(function), values.clone(), &slots).unwrap();
            assert_eq!(
                array.data_type(),
                &DataType::LargeUtf8,
                "the input's type out"
            );
            let array = array.as_string::<i64>();
            (0..3)
                .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
                .collect::<Vec<_>>()
        };
        let text = |s: &str| Some(s.to_string());
        assert_eq!(texts(Min), vec![text("ab"), None, text("a")]);
        assert_eq!(texts(Max), vec![text("é"), None, text("a")]);

        let schema = Schema::new(vec![Field::new("x", DataType::Utf8, true)]);
        let aggregates = vec![spec(Max).resolve(&schema).unwrap()];
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(StringArray::from(vec!["x", "y"]))],
        )
        .unwrap();
        let mut accumulators = Accumulators::new(&aggregates);
        let (a, b) = (accumulators.alloc(), accumulators.alloc());
        let mut updates = Updates::default();
        updates.start(&aggregates, &batch).unwrap();
        updates.push(0, a);
        updates.push(1, b);
        updates.finish(&mut accumulators);
        accumulators.merge(a, b);
        let mut snapshot = Vec::new();
        accumulators.encode(a, &mut snapshot);
        let restored = accumulators.decode_new(&snapshot).unwrap();
        let results = accumulators.results(&[a, restored]);
        let results = results[0].as_string::<i32>();
        assert_eq!((results.value(0), results.value(1)), ("y", "y"));

        let mut min = Accumulators::new(&[spec(Min).resolve(batch.schema_ref()).unwrap()]);
        let err = min.decode_new(&snapshot).unwrap_err();
        assert!(err.contains("kind 12"), "MAX's state is not MIN's: {err}");
    }

    #[test]
    fn integers_beyond_bigint_are_an_error_not_a_null() {
        let values: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        let err = run(spec(AggregateFunction::Sum), values, &[0]).unwrap_err();
        assert!(err.to_string().contains("18446744073709551615"), "{err}");
    }
}
