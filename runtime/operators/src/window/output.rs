use std::sync::Arc;

use arrow_array::{RecordBatch, TimestampMillisecondArray};
use arrow_cast::cast;
use arrow_schema::SchemaRef;
use spate_api::{KeyEncoder, Output, Result, Timestamp};

use super::aggregate::{Accumulators, Column};
use crate::keyed::table::KeyTable;

/// Most rows per emitted batch.
pub(crate) const BATCH_ROWS: usize = 8192;

/// Gathers the results of fired windows into output batches.
#[derive(Debug)]
pub(crate) struct OutputBuilder {
    schema: SchemaRef,
    key_columns: usize,
    keys: Vec<u32>,
    starts: Vec<Timestamp>,
    ends: Vec<Timestamp>,
    columns: Vec<Column>,
}

impl OutputBuilder {
    pub(crate) fn new(schema: SchemaRef, key_columns: usize) -> Self {
        let columns = schema.fields()[key_columns + 2..]
            .iter()
            .map(|f| Column::for_output(f))
            .collect();
        OutputBuilder {
            schema,
            key_columns,
            keys: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            columns,
        }
    }

    /// Adds the row of a fired window. The row takes over the window's reference on `key`, which
    /// `flush` releases once the key is decoded.
    pub(crate) fn push(
        &mut self,
        key: u32,
        start: Timestamp,
        end: Timestamp,
        slot: u32,
        accumulators: &Accumulators,
    ) {
        self.keys.push(key);
        self.starts.push(start);
        self.ends.push(end);
        accumulators.append(slot, &mut self.columns);
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.keys.len() >= BATCH_ROWS
    }

    pub(crate) fn flush(
        &mut self,
        encoder: Option<&KeyEncoder>,
        table: &mut KeyTable,
        out: &mut Output,
    ) -> Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let fields = self.schema.fields();
        let mut columns = Vec::with_capacity(fields.len());
        if let Some(encoder) = encoder {
            let decoded = encoder.decode(self.keys.iter().map(|&id| table.bytes(id)))?;
            for (array, field) in decoded.into_iter().zip(fields.iter()) {
                // The row format gives dictionary keys back as plain values.
                columns.push(if array.data_type() == field.data_type() {
                    array
                } else {
                    cast(&array, field.data_type())?
                });
            }
        }
        for &id in &self.keys {
            table.release(id);
        }
        self.keys.clear();
        columns.push(Arc::new(TimestampMillisecondArray::from(std::mem::take(
            &mut self.starts,
        ))));
        columns.push(Arc::new(TimestampMillisecondArray::from(std::mem::take(
            &mut self.ends,
        ))));
        for (column, field) in self.columns.iter_mut().zip(&fields[self.key_columns + 2..]) {
            columns.push(column.finish(field.data_type()));
        }
        out.batch(RecordBatch::try_new(self.schema.clone(), columns)?);
        Ok(())
    }
}
