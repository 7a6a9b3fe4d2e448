//! The fetcher: a thread of the reader's own that consumes the assigned partitions and hands
//! records over through a bounded channel, so the task's loop never waits on the network and a
//! slow task slows the fetching (back-pressure) instead of filling memory.

use std::collections::BTreeMap;
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

/// A record's place and value.
pub struct Fetch {
    pub partition: i32,
    pub offset: i64,
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

/// Starts fetching `assigned` partitions of the options' topic.
pub fn start(
    options: SourceOptions,
    assigned: Vec<Assigned>,
) -> Result<Receiver<Fetched>, KafkaError> {
    let (sender, receiver) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name(format!("kafka-{}", options.topic))
        .spawn(move || {
            let failed = sender.clone();
            let run = client::on_own_runtime(fetch(options, assigned, sender));
            let error = match run {
                Ok(Ok(())) => return,
                Ok(Err(error)) | Err(error) => error,
            };
            let _ = failed.send(Fetched::Failed(error));
        })
        .map_err(|e| KafkaError::Thread(e.to_string()))?;
    Ok(receiver)
}

/// Fetches until every bounded partition is done or the reader is gone (its receiver dropped).
async fn fetch(
    options: SourceOptions,
    assigned: Vec<Assigned>,
    sender: SyncSender<Fetched>,
) -> Result<(), KafkaError> {
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
    let partitions: Vec<i32> = assigned.iter().map(|a| a.partition).collect();
    if partitions.is_empty() {
        // A subtask without partitions: nothing to read, bounded or not.
        return if options.bounded.is_bounded() {
            let _ = sender.send(Fetched::End);
            Ok(())
        } else {
            std::future::pending().await
        };
    }
    consumer
        .assign(&topic, partitions.clone())
        .await
        .map_err(partition_error(partitions[0]))?;
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
    loop {
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
        let records = consumer
            .poll(POLL)
            .await
            .map_err(partition_error(partitions[0]))?;
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
                value: r.value.map(|v| v.to_vec()),
            })
            .collect();
        if !records.is_empty() && sender.send(Fetched::Records(records)).is_err() {
            let _ = consumer.close().await;
            return Ok(());
        }
    }
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
