use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use arrow_select::concat::concat_batches;
use serde::Serialize;
use serde::de::DeserializeOwned;
use spate_api::{OperatorError, Output, Result, Timestamp};
use spate_state::{Key, KeyedStateBackend, ListState, MapState, ValueState};

use super::TimeDomain;
use super::state::{KeyedList, KeyedMap, KeyedValue, StateHandles, StateName};

/// Functions often emit a row or two per key or timer; gathering them up to this size keeps the
/// per-batch cost of downstream operators off the per-key path.
const EMIT_BATCH_ROWS: usize = 8192;

/// What a keyed process function can do while handling one key's rows or one timer: read and
/// write the key's state, set the key's timers, emit rows.
pub struct KeyedContext<'a> {
    key: Key<'a>,
    backend: &'a mut dyn KeyedStateBackend,
    handles: &'a mut StateHandles,
    emitter: &'a mut Emitter,
    out: &'a mut Output,
    watermark: Timestamp,
    processing_time: Timestamp,
}

impl<'a> KeyedContext<'a> {
    pub(crate) fn new(
        key: Key<'a>,
        backend: &'a mut dyn KeyedStateBackend,
        handles: &'a mut StateHandles,
        emitter: &'a mut Emitter,
        out: &'a mut Output,
        watermark: Timestamp,
        processing_time: Timestamp,
    ) -> Self {
        KeyedContext {
            key,
            backend,
            handles,
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

    /// The current key's value state `state` (registered on first use).
    pub fn value_state<T>(&mut self, state: impl StateName) -> Result<KeyedValue<'_, T>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let state = self
            .handles
            .get(&mut *self.backend, &state, |b, d| ValueState::new(b, d))?;
        Ok(KeyedValue {
            state,
            backend: &mut *self.backend,
            key: self.key,
        })
    }

    /// The current key's list state `state` (registered on first use).
    pub fn list_state<T>(&mut self, state: impl StateName) -> Result<KeyedList<'_, T>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let state = self
            .handles
            .get(&mut *self.backend, &state, |b, d| ListState::new(b, d))?;
        Ok(KeyedList {
            state,
            backend: &mut *self.backend,
            key: self.key,
        })
    }

    /// The current key's map state `state` (registered on first use).
    pub fn map_state<K, V>(&mut self, state: impl StateName) -> Result<KeyedMap<'_, K, V>>
    where
        K: Serialize + DeserializeOwned + Send + 'static,
        V: Serialize + DeserializeOwned + Send + 'static,
    {
        let state = self
            .handles
            .get(&mut *self.backend, &state, |b, d| MapState::new(b, d))?;
        Ok(KeyedMap {
            state,
            backend: &mut *self.backend,
            key: self.key,
        })
    }

    /// Fires once the watermark reaches `timestamp`; registering it again is a no-op. Timers
    /// are part of checkpoints.
    pub fn register_event_time_timer(&mut self, timestamp: Timestamp) -> Result<()> {
        self.register(TimeDomain::EventTime, timestamp)
    }

    pub fn register_processing_time_timer(&mut self, timestamp: Timestamp) -> Result<()> {
        self.register(TimeDomain::ProcessingTime, timestamp)
    }

    fn register(&mut self, domain: TimeDomain, timestamp: Timestamp) -> Result<()> {
        self.backend
            .timers()
            .register(domain, self.key, timestamp)?;
        Ok(())
    }

    pub fn delete_event_time_timer(&mut self, timestamp: Timestamp) {
        self.backend
            .timers()
            .delete(TimeDomain::EventTime, self.key, timestamp);
    }

    pub fn delete_processing_time_timer(&mut self, timestamp: Timestamp) {
        self.backend
            .timers()
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
