//! The fetcher: a thread of the reader's own that consumes the assigned partitions and hands
//! records over through a bounded channel, so the task's loop never waits on the network and a
//! slow task slows the fetching (back-pressure) instead of filling memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use krafka::consumer::Consumer;
use tracing::debug;

use crate::client::{self, KafkaError};
use crate::options::{SourceOptions, Startup};

/// Fetched messages waiting for the task, at most.
const QUEUE: usize = 8;
const POLL: Duration = Duration::from_millis(200);

/// Where a partition starts (`None`: as the startup mode says) and stops (`Some(None)`:
/// bounded, at the end offset the fetcher is to look up).
#[derive(Debug, Clone)]
pub struct Assigned {
    pub partition: i32,
    pub start: Option<i64>,
    pub stop: Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Never,
    /// At the partition's end offset when the fetcher starts (first start of a bounded job).
    AtEnd,
    At(i64),
}

/// A record's place, key and value.
pub struct Fetch {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

pub enum Fetched {
    /// Where each partition starts and stops, once looked up.
    Resolved(Vec<(i32, i64, Option<i64>)>),
    Records(Vec<Fetch>),
    /// Every partition reached the offset it stops at.
    End,
    Failed(KafkaError),
}

/// A running fetcher: its records, and its end once dropped (the fetcher notices within a poll,
/// also while no record comes, and closes its consumer).
pub struct Fetcher {
    pub fetched: Receiver<Fetched>,
    closed: Arc<AtomicBool>,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Starts fetching `assigned` partitions of the options' topic on a thread of its own.
pub fn start(options: SourceOptions, assigned: Vec<Assigned>) -> Result<Fetcher, KafkaError> {
    let (sender, fetched) = sync_channel(QUEUE);
    let closed = Arc::new(AtomicBool::new(false));
    let done = closed.clone();
    std::thread::Builder::new()
        .name(format!("kafka-{}", options.topic))
        .spawn(move || {
            let fetching = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| KafkaError::Thread(e.to_string()))
                .and_then(|runtime| runtime.block_on(fetch(options, assigned, &sender, &done)));
            if let Err(error) = fetching {
                let _ = sender.send(Fetched::Failed(error));
            }
        })
        .map_err(|e| KafkaError::Thread(e.to_string()))?;
    Ok(Fetcher { fetched, closed })
}

/// Fetches until every bounded partition is done or the reader is gone.
async fn fetch(
    options: SourceOptions,
    assigned: Vec<Assigned>,
    sender: &SyncSender<Fetched>,
    closed: &AtomicBool,
) -> Result<(), KafkaError> {
    let partitions: Vec<i32> = assigned.iter().map(|a| a.partition).collect();
    if partitions.is_empty() {
        // A subtask without partitions: nothing to read, bounded or not, and no broker to ask.
        if options.bounded.is_bounded() {
            let _ = sender.send(Fetched::End);
        }
        while !closed.load(Ordering::Relaxed) {
            tokio::time::sleep(POLL).await;
        }
        return Ok(());
    }
    let topic = options.topic.clone();
    let kafka = client::connect(&options.bootstrap).await?;
    let consumer = client::consumer(&kafka, &options.bootstrap, options.read_committed).await?;
    let partition_error = |partition: i32| {
        let topic = topic.clone();
        move |source| KafkaError::Partition {
            topic,
            partition,
            source,
        }
    };
    let topic_error = |source| KafkaError::Topic {
        topic: topic.clone(),
        source,
    };
    consumer
        .assign(&topic, partitions)
        .await
        .map_err(topic_error)?;
    let mut resolved = Vec::new();
    let mut stops: BTreeMap<i32, i64> = BTreeMap::new();
    for a in &assigned {
        let start = match a.start {
            Some(offset) => offset,
            None => start_offset(&consumer, &topic, a.partition, &options.startup)
                .await
                .map_err(partition_error(a.partition))?,
        };
        consumer
            .seek(&topic, a.partition, start)
            .await
            .map_err(partition_error(a.partition))?;
        let stop = match a.stop {
            Stop::Never => None,
            Stop::At(offset) => Some(offset),
            Stop::AtEnd => Some(
                consumer
                    .fetch_watermarks(&topic, a.partition)
                    .await
                    .map_err(partition_error(a.partition))?
                    .1,
            ),
        };
        if let Some(stop) = stop {
            stops.insert(a.partition, stop);
        }
        debug!(partition = a.partition, start, ?stop, "partition assigned");
        resolved.push((a.partition, start, stop));
    }
    if sender.send(Fetched::Resolved(resolved)).is_err() {
        return Ok(());
    }
    while !closed.load(Ordering::Relaxed) {
        // A bounded partition is done once the consumer's position passed its stop offset
        // (records are not the only thing at the end of a log: a transaction's marker is not
        // handed out, yet takes an offset).
        let mut done = Vec::new();
        for (&partition, &stop) in &stops {
            let position = consumer.position(&topic, partition).await;
            if position.is_some_and(|position| position >= stop) {
                done.push(partition);
            }
        }
        for partition in done {
            stops.remove(&partition);
            consumer.pause(&topic, &[partition]).await;
        }
        if options.bounded.is_bounded() && stops.is_empty() {
            let _ = sender.send(Fetched::End);
            let _ = consumer.close().await;
            return Ok(());
        }
        let records = consumer.poll(POLL).await.map_err(topic_error)?;
        let records: Vec<Fetch> = records
            .into_iter()
            // Nothing at or past a partition's stop offset, nor of a partition that is done.
            .filter(|r| {
                !options.bounded.is_bounded()
                    || stops.get(&r.partition).is_some_and(|&stop| r.offset < stop)
            })
            .map(|r| Fetch {
                partition: r.partition,
                offset: r.offset,
                key: r.key.map(|k| k.to_vec()),
                value: r.value.map(|v| v.to_vec()),
            })
            .collect();
        if !records.is_empty() && sender.send(Fetched::Records(records)).is_err() {
            break;
        }
    }
    let _ = consumer.close().await;
    Ok(())
}

/// The first offset of `partition` the startup mode selects.
async fn start_offset(
    consumer: &Consumer,
    topic: &str,
    partition: i32,
    startup: &Startup,
) -> krafka::Result<i64> {
    let (earliest, latest) = consumer.fetch_watermarks(topic, partition).await?;
    Ok(match startup {
        Startup::Earliest => earliest,
        Startup::Latest => latest,
        Startup::Specific(offsets) => offsets.get(&partition).copied().unwrap_or(earliest),
        Startup::Timestamp(millis) => {
            let found = consumer
                .offsets_for_times(&[(topic, partition)], *millis)
                .await
                .into_values()
                .next()
                .transpose()?;
            // No record that new: start at the end, where the next one will be.
            found.filter(|&offset| offset >= 0).unwrap_or(latest)
        }
    })
}
