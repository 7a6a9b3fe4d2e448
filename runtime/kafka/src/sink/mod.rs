//! The Kafka sink: each row one record, laid out as its connector says (`crate::record`). How
//! rows reach the topic depends on `sink.delivery-guarantee`: `plain` writes without transactions, and
//! `transactions` writes exactly once with a Kafka transaction per checkpoint; `writer` runs
//! either on a runtime of the sink's own.

mod options;
mod plain;
mod prepared;
mod resume;
mod sent;
mod transactions;
mod writer;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{
    Operator, OperatorContext, OperatorError, OperatorFactory, OperatorSnapshot, Output, Result,
    split_row_kinds,
};
use spate_connectors::blackhole::check_batch;

use options::Delivery;
pub use options::SinkOptions;
use writer::{Restore, Running};

use crate::record::Encoder;

pub fn factory(table: &str, schema: SchemaRef, options: SinkOptions) -> Arc<dyn OperatorFactory> {
    let table = table.to_string();
    Arc::new(move |ctx: &OperatorContext| -> Result<Box<dyn Operator>> {
        Ok(Box::new(KafkaSink {
            table: table.clone(),
            schema: schema.clone(),
            options: options.clone(),
            checkpointing: ctx.state.checkpointing,
            restore: None,
            writer: None,
            encoder: Encoder::new(&table, options.layout.clone(), options.key.clone()),
        }))
    })
}

struct KafkaSink {
    table: String,
    schema: SchemaRef,
    options: SinkOptions,
    checkpointing: bool,
    /// Set by `open`, taken when the writer starts.
    restore: Option<Restore>,
    /// Started on the task's thread when first needed: `open` runs where the worker deploys
    /// the task, which must not wait on the brokers (a restore's commits may take a while).
    /// Restored transactions are committed before anything else is written, and at the
    /// latest by the first barrier.
    writer: Option<Running>,
    encoder: Encoder,
}

impl KafkaSink {
    /// The running writer, started if this is the first call.
    fn writer(&mut self) -> Result<&mut Running> {
        if self.writer.is_none() {
            let restore = self
                .restore
                .take()
                .ok_or_else(|| OperatorError::invalid("the Kafka sink was not opened"))?;
            let running = Running::start(self.table.clone(), self.options.clone(), restore)?;
            self.writer = Some(running);
        }
        self.writer
            .as_mut()
            .ok_or_else(|| OperatorError::invalid("the Kafka sink did not start"))
    }
}

impl Operator for KafkaSink {
    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        if !self.checkpointing && matches!(self.options.delivery, Delivery::ExactlyOnce { .. }) {
            tracing::warn!(
                table = %self.table,
                "exactly-once Kafka sink without checkpoints: rows become visible to \
                 read_committed readers only when the input ends"
            );
        }
        self.restore = Some(Restore {
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
            entries: ctx
                .state
                .restored
                .iter()
                .flat_map(|r| r.entries.iter().cloned())
                .collect(),
        });
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        let (data, kinds) = split_row_kinds(&batch)?;
        check_batch(&self.table, &self.schema, &data)?;
        let messages = self.encoder.encode(&data, kinds.as_deref())?;
        if messages.is_empty() {
            return Ok(());
        }
        self.writer()?.run(|mut writer| async move {
            let written = writer.write(messages).await;
            (writer, written)
        })
    }

    fn finish(&mut self, _out: &mut Output) -> Result<()> {
        // With checkpoints, the final checkpoint pre-commits (or flushes) and its completion
        // commits.
        if self.checkpointing {
            return Ok(());
        }
        self.writer()?.run(|mut writer| async move {
            let finished = writer.finish().await;
            (writer, finished)
        })
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot> {
        let entries = self.writer()?.run(move |mut writer| async move {
            let entries = writer.barrier(checkpoint_id).await;
            (writer, entries)
        })?;
        Ok(OperatorSnapshot {
            entries,
            keyed: None,
        })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        self.writer()?.run(move |mut writer| async move {
            let committed = writer.checkpoint_complete(checkpoint_id).await;
            (writer, committed)
        })
    }
}
