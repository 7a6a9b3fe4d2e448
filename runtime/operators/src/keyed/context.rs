use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use arrow_select::concat::concat_batches;
use spate_api::{OperatorError, Output, Result, Timestamp};

use super::TimeDomain;
use super::timers::Timers;

/// Functions often emit a row or two per key or timer; gathering them up to this size keeps the
/// per-batch cost of downstream operators off the per-key path.
const EMIT_BATCH_ROWS: usize = 8192;

/// What a keyed process function can do while handling one key's rows or one timer.
pub struct KeyedContext<'a> {
    key: &'a [u8],
    timers: &'a mut Timers,
    emitter: &'a mut Emitter,
    out: &'a mut Output,
    watermark: Timestamp,
    processing_time: Timestamp,
}

impl<'a> KeyedContext<'a> {
    pub(crate) fn new(
        key: &'a [u8],
        timers: &'a mut Timers,
        emitter: &'a mut Emitter,
        out: &'a mut Output,
        watermark: Timestamp,
        processing_time: Timestamp,
    ) -> Self {
        KeyedContext {
            key,
            timers,
            emitter,
            out,
            watermark,
            processing_time,
        }
    }

    pub fn current_watermark(&self) -> Timestamp {
        self.watermark
    }

    pub fn current_processing_time(&self) -> Timestamp {
        self.processing_time
    }

    /// Fires once the watermark reaches `timestamp`; registering it again is a no-op.
    pub fn register_event_time_timer(&mut self, timestamp: Timestamp) {
        self.timers
            .register(TimeDomain::EventTime, self.key, timestamp);
    }

    pub fn register_processing_time_timer(&mut self, timestamp: Timestamp) {
        self.timers
            .register(TimeDomain::ProcessingTime, self.key, timestamp);
    }

    pub fn delete_event_time_timer(&mut self, timestamp: Timestamp) {
        self.timers
            .delete(TimeDomain::EventTime, self.key, timestamp);
    }

    pub fn delete_processing_time_timer(&mut self, timestamp: Timestamp) {
        self.timers
            .delete(TimeDomain::ProcessingTime, self.key, timestamp);
    }

    /// Emits rows; their columns must be those of the function's `output_schema()`.
    pub fn emit(&mut self, batch: RecordBatch) -> Result<()> {
        self.emitter.push(batch, self.out)
    }
}

/// Checks emitted batches against the declared schema and coalesces small ones.
#[derive(Debug)]
pub(crate) struct Emitter {
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    rows: usize,
}

impl Emitter {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        Emitter {
            schema,
            pending: Vec::new(),
            rows: 0,
        }
    }

    fn push(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(OperatorError::invalid(format!(
                "keyed process function emitted columns ({}) but its output_schema() declares ({})",
                describe(&batch.schema()),
                describe(&self.schema)
            )));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows();
        self.pending.push(batch);
        if self.rows >= EMIT_BATCH_ROWS {
            self.flush(out)?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self, out: &mut Output) -> Result<()> {
        let batch = match self.pending.len() {
            0 => return Ok(()),
            1 => self.pending.pop().expect("one pending batch"),
            _ => {
                let batch = concat_batches(&self.schema, &self.pending)?;
                self.pending.clear();
                batch
            }
        };
        self.rows = 0;
        out.batch(batch);
        Ok(())
    }
}

fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| {
            let null = if f.is_nullable() { "" } else { " NOT NULL" };
            format!("{} {}{null}", f.name(), f.data_type())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
