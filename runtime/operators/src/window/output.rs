use std::sync::Arc;

use arrow_array::{RecordBatch, TimestampMillisecondArray};
use arrow_cast::cast;
use arrow_schema::SchemaRef;
use spate_api::{KeyEncoder, Output, Result, Timestamp};

use super::aggregate::Accumulators;
use crate::keyed::table::KeyTable;

/// Most rows per emitted batch.
pub(crate) const BATCH_ROWS: usize = 8192;

/// Gathers fired windows into output batches. Results are read column by column when a batch
/// is built, which keeps the per-window work to a few pushes.
#[derive(Debug)]
pub(crate) struct OutputBuilder {
    schema: SchemaRef,
    key_columns: usize,
    keys: Vec<u32>,
    starts: Vec<Timestamp>,
    ends: Vec<Timestamp>,
    slots: Vec<u32>,
}

impl OutputBuilder {
    pub(crate) fn new(schema: SchemaRef, key_columns: usize) -> Self {
        OutputBuilder {
            schema,
            key_columns,
            keys: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            slots: Vec::new(),
        }
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Adds a fired window. The builder takes over the window's reference on `key` and its
    /// accumulator slot, and lets go of both in `flush`.
    pub(crate) fn push(&mut self, key: u32, start: Timestamp, end: Timestamp, slot: u32) {
        self.keys.push(key);
        self.starts.push(start);
        self.ends.push(end);
        self.slots.push(slot);
    }

    pub(crate) fn is_full(&self) -> bool {
        self.keys.len() >= BATCH_ROWS
    }

    pub(crate) fn flush(
        &mut self,
        encoder: Option<&KeyEncoder>,
        table: &mut KeyTable,
        accumulators: &mut Accumulators,
        out: &mut Output,
    ) -> Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let fields = self.schema.fields();
        let mut columns = Vec::with_capacity(fields.len());
        if let Some(encoder) = encoder {
            let decoded = encoder.decode(self.keys.iter().map(|&id| table.bytes(id)))?;
            for (array, field) in decoded.into_iter().zip(&fields[..self.key_columns]) {
                // The row format gives dictionary keys back as plain values.
                columns.push(if array.data_type() == field.data_type() {
                    array
                } else {
                    cast(&array, field.data_type())?
                });
            }
        }
        for id in self.keys.drain(..) {
            table.release(id);
        }
        let bounds = |times: &mut Vec<Timestamp>| {
            Arc::new(TimestampMillisecondArray::from(std::mem::take(times)))
        };
        columns.push(bounds(&mut self.starts));
        columns.push(bounds(&mut self.ends));
        columns.extend(accumulators.results(&self.slots));
        accumulators.free(&self.slots);
        self.slots.clear();
        out.batch(RecordBatch::try_new(self.schema.clone(), columns)?);
        Ok(())
    }
}
