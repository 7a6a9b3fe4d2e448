//! Top-N per key over an append-only input (Flink's `AppendOnlyTopNFunction`, which also runs
//! deduplication as the top 1): `ROW_NUMBER() OVER (PARTITION BY keys ORDER BY ...)` filtered to
//! the first N rows. Each key keeps its best N rows in keyed state, sorted; a row that sorts
//! among them takes its rank and pushes those after it one rank down, the last one out.
//!
//! The output carries the rank number, as Flink's with `outputRankNumber`: a rank whose row
//! changes is updated (`-U` of the row it had, `+U` of the new one), a rank that had no row yet
//! gets an insert. A row that ties with rows already kept sorts after them, so the first rows
//! to arrive keep their ranks.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt8Array, UInt64Array};
use arrow_cast::cast;
use arrow_row::{RowConverter, SortField};
use arrow_schema::{Schema, SchemaRef, SortOptions};
use spate_api::{OperatorError, Result, RowKind, changelog_schema, row_kind_index};

use crate::keyed::{KeyedContext, KeyedProcessFunction};

/// The keyed state of a key's best rows: (sort key, row), in rank order.
const TOP: &str = "top rows";

pub struct TopN {
    limit: usize,
    /// The input's leading columns, which are the output's but for the rank.
    width: usize,
    /// Those columns as bytes and back.
    rows: RowConverter,
    /// The input's columns to sort by, and their order as bytes that compare alike.
    sort_columns: Vec<usize>,
    sort: RowConverter,
    schema: SchemaRef,
}

/// One column of the ORDER BY: the input column and its direction.
#[derive(Debug, Clone, Copy)]
pub struct SortColumn {
    pub column: usize,
    pub options: SortOptions,
}

impl TopN {
    /// Keeps the first `limit` rows per key of `input` (an append-only stream) in the order of
    /// `order`; the output is `input`'s first `output.len() - 1` columns and the rank, of
    /// schema `output`, with the row kinds after.
    pub fn new(
        input: &Schema,
        order: &[SortColumn],
        limit: usize,
        output: &Schema,
    ) -> Result<Self> {
        if row_kind_index(input).is_some() {
            return Err(OperatorError::invalid(
                "Top-N: the input is a changelog; only inserts can be ranked",
            ));
        }
        if limit == 0 || order.is_empty() {
            return Err(OperatorError::invalid(
                "Top-N: it needs a limit above 0 and at least one column to sort by",
            ));
        }
        let width = output
            .fields()
            .len()
            .checked_sub(1)
            .ok_or_else(|| OperatorError::invalid("Top-N: the output has no rank column"))?;
        let kept: Vec<_> = input
            .fields()
            .iter()
            .take(width)
            .map(|f| f.data_type())
            .collect();
        let declared: Vec<_> = output.fields()[..width]
            .iter()
            .map(|f| f.data_type())
            .collect();
        if kept != declared {
            return Err(OperatorError::invalid(format!(
                "Top-N: the input's columns are {kept:?} but the output declares {declared:?}"
            )));
        }
        let rows = RowConverter::new(
            input.fields()[..width]
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let sort = RowConverter::new(
            order
                .iter()
                .map(|o| {
                    SortField::new_with_options(
                        input.field(o.column).data_type().clone(),
                        o.options,
                    )
                })
                .collect(),
        )?;
        Ok(TopN {
            limit,
            width,
            rows,
            sort_columns: order.iter().map(|o| o.column).collect(),
            sort,
            schema: changelog_schema(output),
        })
    }

    /// The emitted changes as a batch: each row's columns, its rank, its kind.
    fn batch(&self, changes: &[(Vec<u8>, u64, RowKind)]) -> Result<RecordBatch> {
        let parser = self.rows.parser();
        let mut columns: Vec<ArrayRef> = self
            .rows
            .convert_rows(changes.iter().map(|(row, _, _)| parser.parse(row)))?;
        let ranks = UInt64Array::from_iter_values(changes.iter().map(|(_, rank, _)| *rank));
        let rank_type = self.schema.field(self.width).data_type();
        columns.push(cast(&ranks, rank_type)?);
        let kinds = changes.iter().map(|(_, _, kind)| *kind as u8);
        columns.push(Arc::new(UInt8Array::from_iter_values(kinds)));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl KeyedProcessFunction for TopN {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        let sort_columns: Vec<ArrayRef> = self
            .sort_columns
            .iter()
            .map(|&c| rows.column(c).clone())
            .collect();
        let sort_keys = self.sort.convert_columns(&sort_columns)?;
        let encoded = self.rows.convert_columns(&rows.columns()[..self.width])?;
        let mut state = ctx.value_state::<Vec<(Vec<u8>, Vec<u8>)>>(TOP)?;
        let mut top = state.get()?.unwrap_or_default();
        let mut changes = Vec::new();
        for row in 0..rows.num_rows() {
            let key = sort_keys.row(row);
            let key = key.as_ref();
            // After every row it ties with: the earlier rows keep their ranks.
            let at = top.partition_point(|(kept, _)| kept.as_slice() <= key);
            if at >= self.limit {
                continue;
            }
            let before: Vec<Vec<u8>> = top[at..].iter().map(|(_, row)| row.clone()).collect();
            top.insert(at, (key.to_vec(), encoded.row(row).as_ref().to_vec()));
            top.truncate(self.limit);
            for (offset, (_, now)) in top[at..].iter().enumerate() {
                let rank = (at + offset + 1) as u64;
                match before.get(offset) {
                    Some(was) => {
                        changes.push((was.clone(), rank, RowKind::UpdateBefore));
                        changes.push((now.clone(), rank, RowKind::UpdateAfter));
                    }
                    None => changes.push((now.clone(), rank, RowKind::Insert)),
                }
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        state.set(&top)?;
        let batch = self.batch(&changes)?;
        ctx.emit(batch)
    }
}

#[cfg(test)]
mod tests;
