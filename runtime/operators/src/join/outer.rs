//! The regular outer equi-joins (Flink's `StreamingJoinOperator` for LEFT, RIGHT and FULL OUTER
//! JOIN): as the inner join, each row of either input is kept in keyed state under the join key
//! and joined with the other side's rows of its key; a row of an outer side that matches nothing
//! goes out padded with NULLs instead.
//!
//! The padded row is an early answer that a match takes back: each kept row of an outer side
//! counts the rows of the other side it matches (Flink's `OuterJoinRecordStateView`); when a
//! row of the other side arrives and a kept row's count was 0, its padded row is deleted (`-D`)
//! before the joined rows go out, and when the count falls back to 0 the padded row is inserted
//! again (`+I`). Joined rows carry the kind of the input row that made them, as in the inner
//! join, so the output is always a retract changelog. Only equality conditions are supported:
//! any other part of the ON clause would have to be evaluated on each candidate pair here.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt8Array, UInt32Array, new_null_array};
use arrow_schema::{DataType, Schema, SchemaRef};
use arrow_select::take::take;
use serde::{Deserialize, Serialize};
use spate_api::{Result, RowKind, changelog_schema, split_row_kinds};

use super::{Input, Side, emitted_widths};
use crate::keyed::{KeyedCoProcessFunction, KeyedContext};

/// Which side of a join keeps its unmatched rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OuterSides {
    Left,
    Right,
    Both,
}

/// A kept row: how many copies of it, and how many rows of the other side it matches now.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Kept {
    copies: i64,
    matches: i64,
}

pub struct OuterJoin {
    left: Side,
    right: Side,
    /// The types of each side's emitted columns, for the NULLs that pad a row of the other.
    left_types: Vec<DataType>,
    right_types: Vec<DataType>,
    outer: OuterSides,
    output: SchemaRef,
}

/// One output row: a row of the input being processed and a kept row of the other side, either
/// of which may be the NULLs that pad the other, and its kind.
struct Joined {
    own: Option<u32>,
    other: Option<u32>,
    kind: RowKind,
}

impl OuterJoin {
    /// Joins rows of `left` and `right` (their data columns, without a row-kind column) whose
    /// last `keys` columns are equal, keeping the unmatched rows of `outer`; the output, of
    /// schema `output`, is the other columns of `left`, then those of `right`, then the kind.
    pub fn new(
        left: &Schema,
        right: &Schema,
        keys: usize,
        output: &Schema,
        outer: OuterSides,
    ) -> Result<Self> {
        let (left_width, right_width) = emitted_widths(left, right, keys, output)?;
        let types = |schema: &Schema, width: usize| -> Vec<DataType> {
            schema.fields()[..width]
                .iter()
                .map(|f| f.data_type().clone())
                .collect()
        };
        Ok(OuterJoin {
            left: Side::new("left rows and matches", left, left_width)?,
            right: Side::new("right rows and matches", right, right_width)?,
            left_types: types(left, left_width),
            right_types: types(right, right_width),
            outer,
            output: changelog_schema(output),
        })
    }

    fn is_outer(&self, input: Input) -> bool {
        matches!(
            (self.outer, input),
            (OuterSides::Both, _)
                | (OuterSides::Left, Input::Left)
                | (OuterSides::Right, Input::Right)
        )
    }

    fn process(
        &mut self,
        input: Input,
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        let (data, kinds) = split_row_kinds(rows)?;
        let (mine_outer, other_outer) = match input {
            Input::Left => (self.is_outer(Input::Left), self.is_outer(Input::Right)),
            Input::Right => (self.is_outer(Input::Right), self.is_outer(Input::Left)),
        };
        let (mine, other) = match input {
            Input::Left => (&self.left, &self.right),
            Input::Right => (&self.right, &self.left),
        };
        let encoded = mine.rows.convert_columns(data.columns())?;

        // The other side's rows of this key, decoded once for the whole batch; their match
        // counts change as this batch's rows come and go, and are written back at the end.
        let mut others = ctx.map_state::<Vec<u8>, Kept>(other.state)?.entries()?;
        let parser = other.rows.parser();
        let other_columns = match others.is_empty() {
            true => Vec::new(),
            false => other
                .rows
                .convert_rows(others.iter().map(|(row, _)| parser.parse(row)))?,
        };
        let other_rows: i64 = others.iter().map(|(_, kept)| kept.copies).sum();
        let mut matched_changed = false;

        let mut joined = Vec::new();
        for row in 0..data.num_rows() {
            let kind = kinds.as_ref().map_or(RowKind::Insert, |kinds| kinds[row]);
            let adds = kind.is_addition();
            let padded_kind = if adds {
                RowKind::Insert
            } else {
                RowKind::Delete
            };
            let own = Some(row as u32);
            // A NULL key matches nothing, now or later: such a row is never kept.
            if mine.has_null_key(data.columns(), row) {
                if mine_outer {
                    joined.push(Joined {
                        own,
                        other: None,
                        kind: padded_kind,
                    });
                }
                continue;
            }
            let bytes = encoded.row(row).as_ref().to_vec();
            let mut state = ctx.map_state::<Vec<u8>, Kept>(mine.state)?;
            let kept = state.get(&bytes)?.unwrap_or_default();
            match (adds, kept.copies) {
                (true, _) => state.put(
                    &bytes,
                    &Kept {
                        copies: kept.copies + 1,
                        matches: other_rows,
                    },
                )?,
                // A retraction of a row not kept changes no state, and still takes back what
                // its copy upstream was joined with.
                (false, 0 | 1) => state.remove(&bytes)?,
                (false, _) => state.put(
                    &bytes,
                    &Kept {
                        copies: kept.copies - 1,
                        ..kept
                    },
                )?,
            }
            // A first match takes the other rows' padded rows back before the joined rows go
            // out; the last match going gives them back after.
            if other_outer && adds {
                for (index, (_, kept)) in others.iter().enumerate() {
                    if kept.matches == 0 {
                        pad(&mut joined, index, kept.copies, RowKind::Delete);
                    }
                }
            }
            if other_rows == 0 {
                if mine_outer {
                    joined.push(Joined {
                        own,
                        other: None,
                        kind: padded_kind,
                    });
                }
            } else {
                for (index, (_, kept)) in others.iter().enumerate() {
                    for _ in 0..kept.copies {
                        joined.push(Joined {
                            own,
                            other: Some(index as u32),
                            kind,
                        });
                    }
                }
            }
            if other_outer {
                for (index, (_, kept)) in others.iter_mut().enumerate() {
                    kept.matches += if adds { 1 } else { -1 };
                    if !adds && kept.matches == 0 {
                        pad(&mut joined, index, kept.copies, RowKind::Insert);
                    }
                }
                matched_changed = true;
            }
        }
        if matched_changed {
            let mut state = ctx.map_state::<Vec<u8>, Kept>(other.state)?;
            for (row, kept) in &others {
                state.put(row, kept)?;
            }
        }
        if joined.is_empty() {
            return Ok(());
        }
        let (mine_types, other_types) = match input {
            Input::Left => (&self.left_types, &self.right_types),
            Input::Right => (&self.right_types, &self.left_types),
        };
        let own = pick(
            &data.columns()[..mine.emitted],
            mine_types,
            joined.iter().map(|j| j.own),
        )?;
        let other = pick(
            &other_columns[..other_columns.len().min(other.emitted)],
            other_types,
            joined.iter().map(|j| j.other),
        )?;
        let mut columns = match input {
            Input::Left => [own, other].concat(),
            Input::Right => [other, own].concat(),
        };
        columns.push(Arc::new(UInt8Array::from_iter_values(
            joined.iter().map(|j| j.kind as u8),
        )));
        ctx.emit(RecordBatch::try_new(self.output.clone(), columns)?)
    }
}

/// The padded row of kept row `index` of the other side, once per copy.
fn pad(joined: &mut Vec<Joined>, index: usize, copies: i64, kind: RowKind) {
    for _ in 0..copies {
        joined.push(Joined {
            own: None,
            other: Some(index as u32),
            kind,
        });
    }
}

/// The rows `picked` of `columns` (of `types`), NULL where none is picked; all NULL when
/// `columns` is empty (the side holds no rows).
fn pick(
    columns: &[ArrayRef],
    types: &[DataType],
    picked: impl Iterator<Item = Option<u32>>,
) -> Result<Vec<ArrayRef>> {
    let indices = UInt32Array::from_iter(picked);
    if columns.is_empty() {
        return Ok(types
            .iter()
            .map(|t| new_null_array(t, indices.len()))
            .collect());
    }
    columns
        .iter()
        .map(|column| Ok(take(column.as_ref(), &indices, None)?))
        .collect()
}

impl KeyedCoProcessFunction for OuterJoin {
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
}
