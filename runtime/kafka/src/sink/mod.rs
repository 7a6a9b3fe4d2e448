//! The Kafka sink: each row one record, its value the row as a JSON object. How rows reach the
//! topic depends on `sink.delivery-guarantee`: `plain` writes without transactions, and
//! `transactions` writes exactly once with a Kafka transaction per checkpoint.
//!
//! The client is async and the task's operator calls are not: each sink instance owns a small
//! runtime, on which the producers send in the background, and the task thread waits on it
//! only where the sink must wait (a full buffer, a barrier, a commit).

mod options;
mod plain;
mod prepared;
mod resume;
mod sent;
mod transactions;

use std::future::Future;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{
    Operator, OperatorContext, OperatorError, OperatorFactory, OperatorSnapshot, Output, Result,
    RowKind, split_row_kinds,
};
use spate_connectors::blackhole::check_batch;
use spate_connectors::text::write_json;
use tokio::runtime::Runtime;

use options::Delivery;
pub use options::SinkOptions;
use plain::Plain;
use transactions::Transactions;

pub fn factory(table: &str, schema: SchemaRef, options: SinkOptions) -> Arc<dyn OperatorFactory> {
    let table = table.to_string();
    Arc::new(move |ctx: &OperatorContext| -> Result<Box<dyn Operator>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("kafka-sink-{}", ctx.subtask))
            .enable_all()
            .build()
            .map_err(|e| OperatorError::invalid(format!("a runtime for the Kafka sink: {e}")))?;
        Ok(Box::new(KafkaSink {
            table: table.clone(),
            schema: schema.clone(),
            options: options.clone(),
            checkpointing: ctx.state.checkpointing,
            runtime,
            writer: None,
            encoded: Vec::new(),
        }))
    })
}

/// Boxed: producers are hundreds of bytes.
enum Writer {
    Plain(Box<Plain>),
    Transactional(Box<Transactions>),
}

struct KafkaSink {
    table: String,
    schema: SchemaRef,
    options: SinkOptions,
    checkpointing: bool,
    runtime: Runtime,
    /// Started in `open`.
    writer: Option<Writer>,
    /// Reused between batches.
    encoded: Vec<u8>,
}

impl KafkaSink {
    /// Runs `work` on the sink's runtime, the task thread waiting for it.
    fn wait<T>(&self, work: impl Future<Output = T>) -> T {
        self.runtime.block_on(work)
    }

    async fn start(&self, ctx: &OperatorContext) -> Result<Writer> {
        let options = &self.options;
        let kafka = crate::client::connect(&options.bootstrap)
            .await
            .map_err(|e| OperatorError::invalid(format!("table '{}': {e}", self.table)))?;
        let topic = options.topic.clone();
        Ok(match &options.delivery {
            Delivery::None => Writer::Plain(Box::new(Plain::start(&kafka, topic, false).await?)),
            Delivery::AtLeastOnce => {
                Writer::Plain(Box::new(Plain::start(&kafka, topic, true).await?))
            }
            Delivery::ExactlyOnce { prefix, timeout } => {
                let mut transactions = Transactions::new(
                    kafka,
                    options.bootstrap.clone(),
                    topic,
                    prefix.clone(),
                    *timeout,
                    ctx.subtask,
                );
                let restored = ctx.state.restored.iter().flat_map(|r| &r.entries);
                let restored: Vec<_> = restored.cloned().collect();
                transactions.restore(&restored, ctx.parallelism).await?;
                Writer::Transactional(Box::new(transactions))
            }
        })
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
        let writer = self.wait(self.start(ctx))?;
        self.writer = Some(writer);
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        let (data, kinds) = split_row_kinds(&batch)?;
        check_batch(&self.table, &self.schema, &data)?;
        if kinds.is_some_and(|kinds| kinds.iter().any(|&k| k != RowKind::Insert)) {
            return Err(OperatorError::invalid(format!(
                "table '{}': the kafka connector writes inserts only but received updates or \
                 deletes",
                self.table
            )));
        }
        if data.num_rows() == 0 {
            return Ok(());
        }
        self.encoded.clear();
        write_json(&data, &mut self.encoded)?;
        let rows: Vec<Vec<u8>> = self
            .encoded
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let runtime = &self.runtime;
        match self.writer.as_mut() {
            Some(Writer::Plain(plain)) => runtime.block_on(plain.write(rows)),
            Some(Writer::Transactional(transactions)) => runtime.block_on(transactions.write(rows)),
            None => Err(OperatorError::invalid("the Kafka sink was not opened")),
        }
    }

    fn finish(&mut self, _out: &mut Output) -> Result<()> {
        // With checkpoints, the final checkpoint pre-commits (or flushes) and its completion
        // commits.
        if self.checkpointing {
            return Ok(());
        }
        let runtime = &self.runtime;
        match self.writer.as_mut() {
            Some(Writer::Plain(plain)) => runtime.block_on(plain.flush()),
            Some(Writer::Transactional(transactions)) => {
                runtime.block_on(transactions.commit_open())
            }
            None => Ok(()),
        }
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot> {
        let runtime = &self.runtime;
        let entries = match self.writer.as_mut() {
            Some(Writer::Plain(plain)) => {
                runtime.block_on(plain.barrier())?;
                Vec::new()
            }
            Some(Writer::Transactional(transactions)) => {
                runtime.block_on(transactions.pre_commit(checkpoint_id))?;
                transactions.entries()
            }
            None => Vec::new(),
        };
        Ok(OperatorSnapshot {
            entries,
            keyed: None,
        })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        match self.writer.as_mut() {
            Some(Writer::Transactional(transactions)) => self
                .runtime
                .block_on(transactions.commit_up_to(checkpoint_id)),
            _ => Ok(()),
        }
    }
}
