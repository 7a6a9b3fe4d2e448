//! Talking to the brokers. The client is async; planning and the task's source loop are not, so
//! each conversation runs on a thread of its own with its own runtime (the caller may itself be
//! inside a runtime, where blocking on another would panic): planning's lookups here, a
//! reader's fetching in the fetcher.

use std::future::Future;
use std::time::Duration;

use krafka::Kafka;
use krafka::consumer::{AutoOffsetReset, Consumer, IsolationLevel};

/// How long planning waits for the brokers to say what partitions a topic has.
const METADATA_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot reach the Kafka brokers at {bootstrap}: {source}")]
    Unreachable {
        bootstrap: String,
        #[source]
        source: krafka::error::KrafkaError,
    },
    #[error("the Kafka brokers at {bootstrap} did not answer within {waited:?}")]
    TimedOut { bootstrap: String, waited: Duration },
    #[error("topic '{topic}' does not exist on the Kafka brokers at {bootstrap}")]
    NoTopic { topic: String, bootstrap: String },
    #[error("reading topic '{topic}': {source}")]
    Topic {
        topic: String,
        #[source]
        source: krafka::error::KrafkaError,
    },
    #[error("topic '{topic}' partition {partition}: {source}")]
    Partition {
        topic: String,
        partition: i32,
        #[source]
        source: krafka::error::KrafkaError,
    },
    #[error("the Kafka client's thread failed: {0}")]
    Thread(String),
}

/// Runs `work` to its end on a new thread with a runtime of its own.
fn on_own_runtime<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, KafkaError> {
    std::thread::Builder::new()
        .name("kafka-client".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(work))
                .map_err(|e| KafkaError::Thread(e.to_string()))
        })
        .map_err(|e| KafkaError::Thread(e.to_string()))?
        .join()
        .map_err(|_| KafkaError::Thread("it panicked".into()))?
}

/// A client of the brokers at `bootstrap`.
pub async fn connect(bootstrap: &str) -> Result<Kafka, KafkaError> {
    connect_with(bootstrap, Kafka::builder(bootstrap)).await
}

/// A client of the brokers at `bootstrap` whose metadata (a topic's partitions) is never
/// older than `max_age`: a lookup within it answers from the cache.
pub async fn connect_fresh(bootstrap: &str, max_age: Duration) -> Result<Kafka, KafkaError> {
    connect_with(
        bootstrap,
        Kafka::builder(bootstrap).metadata_max_age(max_age),
    )
    .await
}

async fn connect_with(bootstrap: &str, builder: krafka::KafkaBuilder) -> Result<Kafka, KafkaError> {
    builder
        .client_id("spate")
        .connect()
        .await
        .map_err(|source| KafkaError::Unreachable {
            bootstrap: bootstrap.to_string(),
            source,
        })
}

/// A consumer that reads partitions it is assigned (no group).
pub async fn consumer(
    kafka: &Kafka,
    bootstrap: &str,
    read_committed: bool,
) -> Result<Consumer, KafkaError> {
    let isolation = if read_committed {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    kafka
        .consumer_without_group()
        .isolation_level(isolation)
        // An offset no longer in the log (retention deleted it) reads from the log's start:
        // what is left, rather than only what comes next.
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .enable_auto_commit(false)
        .metrics_push(false)
        .build()
        .await
        .map_err(|source| KafkaError::Unreachable {
            bootstrap: bootstrap.to_string(),
            source,
        })
}

/// The partitions of `topic`, in order, as the brokers know them now.
pub fn partitions(bootstrap: &str, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    on_own_runtime(async move {
        let lookup = async {
            let kafka = connect(&bootstrap).await?;
            let consumer = consumer(&kafka, &bootstrap, false).await?;
            let metadata = consumer.fetch_metadata(Some(&topic)).await;
            let _ = consumer.close().await;
            let metadata = metadata.map_err(|source| KafkaError::Unreachable {
                bootstrap: bootstrap.clone(),
                source,
            })?;
            let found = metadata.topics.into_iter().find(|t| t.name == topic);
            let mut partitions: Vec<i32> = found
                .map(|t| t.partitions.into_keys().collect())
                .unwrap_or_default();
            if partitions.is_empty() {
                return Err(KafkaError::NoTopic {
                    topic: topic.clone(),
                    bootstrap: bootstrap.clone(),
                });
            }
            partitions.sort_unstable();
            Ok(partitions)
        };
        tokio::time::timeout(METADATA_WAIT, lookup)
            .await
            .unwrap_or_else(|_| {
                Err(KafkaError::TimedOut {
                    bootstrap: bootstrap.clone(),
                    waited: METADATA_WAIT,
                })
            })
    })?
}
