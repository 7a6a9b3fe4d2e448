//! The regular inner equi-join (Flink's `StreamingJoinOperator` for an INNER JOIN): each row of
//! either input is kept in keyed state, under the join key, and joined with the rows of the
//! other input that have its key, those there now and those still to come. Nothing is ever
//! dropped from the state but by a retraction, as in Flink without a state TTL.
//!
//! A row that retracts (`-U`, `-D`) takes one copy of itself out of its side's state and
//! retracts what it had joined; an output row carries the kind of the input row that made it,
//! so the join of two append-only inputs is append-only and otherwise a retract changelog.
//! Rows with a NULL key join nothing (SQL's `=` is never true for NULL) and are not kept.
//! A window join is this join with one more rule: a key's rows go when its window closes.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, UInt8Array, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Schema, SchemaRef, TimeUnit};
use arrow_select::take::take;
use spate_api::{OperatorError, Result, RowKind, Timestamp, changelog_schema, split_row_kinds};

use crate::keyed::{KeyedCoProcessFunction, KeyedContext, TimeDomain};

/// One input of the join.
struct Side {
    /// The keyed map state holding this side's rows: encoded row -> copies.
    state: &'static str,
    /// Rows of this side as bytes (Arrow's row format) and back.
    rows: RowConverter,
    /// The leading columns that go into the output; the ones after them are the join key.
    emitted: usize,
    /// The key columns' indices, to drop rows with a NULL key.
    keys: Vec<usize>,
}

impl Side {
    fn new(state: &'static str, schema: &Schema, emitted: usize) -> Result<Side> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Side {
            state,
            rows: RowConverter::new(fields)?,
            emitted,
            keys: (emitted..schema.fields().len()).collect(),
        })
    }

    fn has_null_key(&self, columns: &[ArrayRef], row: usize) -> bool {
        self.keys.iter().any(|&k| columns[k].is_null(row))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Input {
    Left,
    Right,
}

pub struct InnerJoin {
    left: Side,
    right: Side,
    output: SchemaRef,
    changelog: bool,
    /// For a window join, which key column is the end of the window both inputs share.
    window_end: Option<usize>,
}

impl InnerJoin {
    /// Joins rows of `left` and `right` (their data columns, without a row-kind column) whose
    /// last `keys` columns are equal; the output, of schema `output`, is the other columns of
    /// `left`, then those of `right`, then the row kind when `changelog` (either input is a
    /// changelog).
    pub fn new(
        left: &Schema,
        right: &Schema,
        keys: usize,
        output: &Schema,
        changelog: bool,
    ) -> Result<Self> {
        let (left_width, right_width) = emitted_widths(left, right, keys, output)?;
        let output = match changelog {
            true => changelog_schema(output),
            false => Arc::new(output.clone()),
        };
        Ok(InnerJoin {
            left: Side::new("left rows", left, left_width)?,
            right: Side::new("right rows", right, right_width)?,
            output,
            changelog,
            window_end: None,
        })
    }

    /// A window join (Flink's window join, INNER): key column `end_key` is the end of the window
    /// that both inputs' rows were aggregated in, so all rows of a key belong to one window, and
    /// no row of it comes once the watermark has passed its end (a window aggregation emits a
    /// window's rows before the watermark that closes it). The key's rows are dropped then: the
    /// state holds open windows only, where a regular join would keep every row forever.
    pub fn window(
        left: &Schema,
        right: &Schema,
        keys: usize,
        output: &Schema,
        end_key: usize,
    ) -> Result<Self> {
        let mut join = InnerJoin::new(left, right, keys, output, false)?;
        for (side, schema) in [(&join.left, left), (&join.right, right)] {
            let column = side.keys.get(end_key).map(|&k| schema.field(k));
            let millis = DataType::Timestamp(TimeUnit::Millisecond, None);
            if column.is_none_or(|f| f.data_type() != &millis) {
                return Err(OperatorError::invalid(format!(
                    "window join: key column {end_key} must be a window end, a TIMESTAMP(3), got {:?}",
                    column.map(|f| f.data_type())
                )));
            }
        }
        join.window_end = Some(end_key);
        Ok(join)
    }

    fn process(
        &mut self,
        input: Input,
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        let (data, kinds) = split_row_kinds(rows)?;
        let (mine, other) = match input {
            Input::Left => (&self.left, &self.right),
            Input::Right => (&self.right, &self.left),
        };
        if let Some(end_key) = self.window_end {
            // One key, one window: the first row's end is every row's.
            let ends = data
                .column(mine.keys[end_key])
                .as_primitive::<TimestampMillisecondType>();
            if let Some(end) = ends.iter().flatten().next() {
                ctx.register_event_time_timer(end - 1)?;
            }
        }
        let encoded = mine.rows.convert_columns(data.columns())?;

        // The other side's rows of this key, decoded once for the whole batch.
        let stored = ctx.map_state::<Vec<u8>, i64>(other.state)?.entries()?;
        let parser = other.rows.parser();
        let other_columns = match stored.is_empty() {
            true => Vec::new(),
            false => other
                .rows
                .convert_rows(stored.iter().map(|(row, _)| parser.parse(row)))?,
        };

        let mut own_rows = Vec::new();
        let mut other_rows = Vec::new();
        let mut out_kinds = Vec::new();
        let mut state = ctx.map_state::<Vec<u8>, i64>(mine.state)?;
        for row in 0..data.num_rows() {
            if mine.has_null_key(data.columns(), row) {
                continue;
            }
            let kind = kinds.as_ref().map_or(RowKind::Insert, |kinds| kinds[row]);
            let bytes = encoded.row(row).as_ref().to_vec();
            let copies = state.get(&bytes)?.unwrap_or(0);
            match (kind.is_addition(), copies) {
                (true, _) => state.put(&bytes, &(copies + 1))?,
                // A retraction of a row the state does not hold (never joined) changes nothing
                // here, and still retracts what its copy upstream was joined with.
                (false, 0 | 1) => state.remove(&bytes)?,
                (false, _) => state.put(&bytes, &(copies - 1))?,
            }
            for (index, (_, copies)) in stored.iter().enumerate() {
                for _ in 0..*copies {
                    own_rows.push(row as u32);
                    other_rows.push(index as u32);
                    out_kinds.push(kind as u8);
                }
            }
        }
        if own_rows.is_empty() {
            return Ok(());
        }
        let pick = |columns: &[ArrayRef], width: usize, rows: Vec<u32>| -> Result<Vec<ArrayRef>> {
            let rows = UInt32Array::from(rows);
            columns[..width]
                .iter()
                .map(|c| Ok(take(c.as_ref(), &rows, None)?))
                .collect()
        };
        let own = pick(data.columns(), mine.emitted, own_rows)?;
        let other = pick(&other_columns, other.emitted, other_rows)?;
        let mut columns = match input {
            Input::Left => [own, other].concat(),
            Input::Right => [other, own].concat(),
        };
        if self.changelog {
            columns.push(Arc::new(UInt8Array::from(out_kinds)));
        }
        ctx.emit(RecordBatch::try_new(self.output.clone(), columns)?)
    }
}

/// How many leading columns of `left` and of `right` go into the output: all but their last
/// `keys` (the join key), whose types must be those `output` declares.
fn emitted_widths(
    left: &Schema,
    right: &Schema,
    keys: usize,
    output: &Schema,
) -> Result<(usize, usize)> {
    let emitted = |schema: &Schema| {
        schema.fields().len().checked_sub(keys).ok_or_else(|| {
            OperatorError::invalid(format!(
                "join: an input of {} columns cannot end in {keys} key columns",
                schema.fields().len()
            ))
        })
    };
    let (left_width, right_width) = (emitted(left)?, emitted(right)?);
    let joined: Vec<_> = left.fields()[..left_width]
        .iter()
        .chain(&right.fields()[..right_width])
        .map(|f| f.data_type())
        .collect();
    let declared: Vec<_> = output.fields().iter().map(|f| f.data_type()).collect();
    if joined != declared {
        return Err(OperatorError::invalid(format!(
            "join: the inputs' columns are {joined:?} but the output declares {declared:?}"
        )));
    }
    Ok((left_width, right_width))
}

impl KeyedCoProcessFunction for InnerJoin {
    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process1(
        &mut self,
        _key: &[u8],
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        self.process(Input::Left, rows, ctx)
    }

    fn process2(
        &mut self,
        _key: &[u8],
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        self.process(Input::Right, rows, ctx)
    }

    /// Only window joins set timers: the key's window has closed.
    fn on_timer(
        &mut self,
        _key: &[u8],
        _timestamp: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        ctx.map_state::<Vec<u8>, i64>(self.left.state)?.clear()?;
        ctx.map_state::<Vec<u8>, i64>(self.right.state)?.clear()
    }
}

mod outer;

pub use outer::{OuterJoin, OuterSides};

#[cfg(test)]
mod tests;
