//! What writes the rows, by delivery guarantee, and where it runs. The client is async and the
//! task's operator calls are not, and they come from inside the task's own runtime, where
//! waiting on another runtime is refused. So the writer lives on a small runtime of the sink's
//! own: each call moves it into a future spawned there and waits, on a plain channel, for the
//! future to hand it back with the outcome.

use std::future::Future;
use std::sync::mpsc::sync_channel;

use spate_api::{OperatorError, Result, StateEntry};
use tokio::runtime::Runtime;

use super::options::{Delivery, SinkOptions};
use super::plain::Plain;
use super::transactions::Transactions;
use crate::record::Message;

/// Boxed: producers are hundreds of bytes.
pub enum Writer {
    Plain(Box<Plain>),
    Transactional(Box<Transactions>),
}

/// What starting the writer needs from the operator's `open`.
pub struct Restore {
    pub subtask: u32,
    pub parallelism: u32,
    pub entries: Vec<StateEntry>,
}

impl Writer {
    /// Connects to the brokers; for exactly-once, commits the restored checkpoint's
    /// transactions and aborts those left open.
    pub async fn start(table: String, options: SinkOptions, restore: Restore) -> Result<Writer> {
        let kafka = crate::client::connect(&options.bootstrap)
            .await
            .map_err(|e| OperatorError::invalid(format!("table '{table}': {e}")))?;
        let topic = options.topic;
        Ok(match options.delivery {
            Delivery::None => Writer::Plain(Box::new(Plain::start(&kafka, topic, false).await?)),
            Delivery::AtLeastOnce => {
                Writer::Plain(Box::new(Plain::start(&kafka, topic, true).await?))
            }
            Delivery::ExactlyOnce { prefix, timeout } => {
                let mut transactions = Transactions::new(
                    kafka,
                    options.bootstrap,
                    topic,
                    prefix,
                    timeout,
                    restore.subtask,
                );
                transactions
                    .restore(&restore.entries, restore.parallelism)
                    .await?;
                Writer::Transactional(Box::new(transactions))
            }
        })
    }

    pub async fn write(&mut self, messages: Vec<Message>) -> Result<()> {
        match self {
            Writer::Plain(plain) => plain.write(messages).await,
            Writer::Transactional(transactions) => transactions.write(messages).await,
        }
    }

    /// The barrier of `checkpoint_id`; what the checkpoint keeps.
    pub async fn barrier(&mut self, checkpoint_id: u64) -> Result<Vec<StateEntry>> {
        match self {
            Writer::Plain(plain) => plain.barrier().await.map(|()| Vec::new()),
            Writer::Transactional(transactions) => {
                transactions.pre_commit(checkpoint_id).await?;
                Ok(transactions.entries())
            }
        }
    }

    pub async fn checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        match self {
            Writer::Plain(_) => Ok(()),
            Writer::Transactional(transactions) => transactions.commit_up_to(checkpoint_id).await,
        }
    }

    /// The end of input of a job without checkpoints: everything written becomes visible.
    pub async fn finish(&mut self) -> Result<()> {
        match self {
            Writer::Plain(plain) => plain.flush().await,
            Writer::Transactional(transactions) => transactions.commit_open().await,
        }
    }
}

/// The writer on its runtime.
pub struct Running {
    /// Taken only by `drop`.
    runtime: Option<Runtime>,
    /// Away while a call runs on the runtime; gone if a call never came back.
    writer: Option<Writer>,
}

impl Running {
    pub fn start(table: String, options: SinkOptions, restore: Restore) -> Result<Running> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("kafka-sink-{}", restore.subtask))
            .enable_all()
            .build()
            .map_err(|e| OperatorError::invalid(format!("a runtime for the Kafka sink: {e}")))?;
        let writer = on(&runtime, Writer::start(table, options, restore))??;
        Ok(Running {
            runtime: Some(runtime),
            writer: Some(writer),
        })
    }

    /// Runs `call` with the writer on the runtime and waits for its outcome.
    pub fn run<T, F>(&mut self, call: impl FnOnce(Writer) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = (Writer, Result<T>)> + Send + 'static,
    {
        let (Some(runtime), Some(writer)) = (&self.runtime, self.writer.take()) else {
            return Err(OperatorError::invalid("the Kafka sink's writer was lost"));
        };
        let (writer, outcome) = on(runtime, call(writer))?;
        self.writer = Some(writer);
        outcome
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Without waiting: the sink may be dropped where blocking is not allowed (a deployment
        // that failed half-way). Nothing is committed or aborted here: a pre-committed
        // transaction may still be committed by a restore.
        self.writer = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `work` on `runtime` and waits for it on this thread.
fn on<T: Send + 'static>(
    runtime: &Runtime,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    let (done, outcome) = sync_channel(1);
    runtime.spawn(async move {
        let _ = done.send(work.await);
    });
    outcome
        .recv()
        .map_err(|_| OperatorError::invalid("the Kafka sink's runtime stopped mid-call"))
}
