//! The `running-count` job's function: a count per key that is never final, so every new row
//! of a key updates the count emitted before (Flink's non-windowed `GROUP BY` count).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch, UInt8Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use spate_api::{OperatorError, Result, RowKind, changelog_schema};
use spate_operators::keyed::{KeyedContext, KeyedProcessFunction};

/// Per key of column `key`, the number of rows so far, as a changelog of `(key, count)`: the
/// first row of a key inserts `(key, 1)`; each later one updates the key's row to the new
/// count, row by row as Flink does without mini-batches. With `retract`, an update is a -U of
/// the old count followed by a +U of the new; without, a +U alone (an upsert by `key`).
#[derive(Clone)]
pub struct RunningCount {
    retract: bool,
    schema: SchemaRef,
}

impl RunningCount {
    pub fn new(retract: bool) -> Self {
        let data = Schema::new(vec![
            Field::new("key", DataType::Int64, false),
            Field::new("count", DataType::Int64, false),
        ]);
        RunningCount {
            retract,
            schema: changelog_schema(&data),
        }
    }
}

impl KeyedProcessFunction for RunningCount {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        let key = rows
            .column_by_name("key")
            .ok_or_else(|| OperatorError::invalid("running-count: no column 'key'"))?
            .as_primitive::<Int64Type>()
            .value(0);
        let mut state = ctx.value_state::<i64>("count")?;
        let before = state.get()?.unwrap_or(0);
        let mut counts = Vec::with_capacity(2 * rows.num_rows());
        let mut kinds = Vec::with_capacity(2 * rows.num_rows());
        for count in before + 1..=before + rows.num_rows() as i64 {
            if count == 1 {
                counts.push(count);
                kinds.push(RowKind::Insert as u8);
                continue;
            }
            if self.retract {
                counts.push(count - 1);
                kinds.push(RowKind::UpdateBefore as u8);
            }
            counts.push(count);
            kinds.push(RowKind::UpdateAfter as u8);
        }
        state.set(&(before + rows.num_rows() as i64))?;
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![key; counts.len()])),
                Arc::new(Int64Array::from(counts)),
                Arc::new(UInt8Array::from(kinds)),
            ],
        )?;
        ctx.emit(batch)
    }
}
