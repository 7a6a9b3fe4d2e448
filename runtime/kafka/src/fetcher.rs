//! The fetcher: a thread of the reader's own that consumes the assigned partitions and hands
//! records over through a bounded channel, so the task's loop never waits on the network and a
//! slow task slows the fetching (back-pressure) instead of filling memory. Reading without a
//! bound, it also looks for partitions added to the topic that the reader's shares own, and
//! reads them from their start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use krafka::consumer::Consumer;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::client::{self, KafkaError};
use crate::options::{SourceOptions, Startup};
use crate::source::Share;

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

/// Starts fetching `assigned` partitions of the options' topic on a thread of its own, and
/// those added later that `shares` own.
pub fn start(
    options: SourceOptions,
    assigned: Vec<Assigned>,
    shares: Vec<Share>,
) -> Result<Fetcher, KafkaError> {
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
                .and_then(|runtime| {
                    runtime.block_on(fetch(options, assigned, shares, &sender, &done))
                });
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
    shares: Vec<Share>,
    sender: &SyncSender<Fetched>,
    closed: &AtomicBool,
) -> Result<(), KafkaError> {
    if assigned.is_empty() && options.discovery.is_none() {
        // Nothing to read, bounded or not, and no broker to ask.
        if options.bounded.is_bounded() {
            let _ = sender.send(Fetched::End);
        }
        while !closed.load(Ordering::Relaxed) {
            tokio::time::sleep(POLL).await;
        }
        return Ok(());
    }
    let topic = options.topic.clone();
    let kafka = match options.discovery {
        // Metadata cached no longer than the interval, or discovery would see the cache's.
        Some(interval) => client::connect_fresh(&options.bootstrap, interval / 2).await?,
        None => client::connect(&options.bootstrap).await?,
    };
    let consumer = client::consumer(&kafka, &options.bootstrap, options.read_committed).await?;
    let topic_error = |source| KafkaError::Topic {
        topic: topic.clone(),
        source,
    };
    let mut known: BTreeSet<i32> = assigned.iter().map(|a| a.partition).collect();
    if !known.is_empty() {
        consumer
            .assign(&topic, known.iter().copied().collect())
            .await
            .map_err(topic_error)?;
    }
    let mut stops: BTreeMap<i32, i64> = BTreeMap::new();
    let mut resolved = Vec::new();
    for a in &assigned {
        let (start, stop) = resolve(&consumer, &options, a).await?;
        if let Some(stop) = stop {
            stops.insert(a.partition, stop);
        }
        resolved.push((a.partition, start, stop));
    }
    if sender.send(Fetched::Resolved(resolved)).is_err() {
        return Ok(());
    }
    let mut discover_at = Instant::now();
    while !closed.load(Ordering::Relaxed) {
        if let Some(interval) = options.discovery
            && Instant::now() >= discover_at
        {
            discover_at = Instant::now() + interval;
            let added = discover(&consumer, &topic, &shares, &mut known).await?;
            if !added.is_empty() && sender.send(Fetched::Resolved(added)).is_err() {
                break;
            }
        }
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
        if known.is_empty() {
            // No partition of the reader's shares yet: only discovery has work.
            tokio::time::sleep(POLL).await;
            continue;
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

/// Seeks an assigned partition to where it starts; where it starts and stops.
async fn resolve(
    consumer: &Consumer,
    options: &SourceOptions,
    assigned: &Assigned,
) -> Result<(i64, Option<i64>), KafkaError> {
    let (topic, partition) = (&options.topic, assigned.partition);
    let error = |source| KafkaError::Partition {
        topic: topic.clone(),
        partition,
        source,
    };
    let start = match assigned.start {
        Some(offset) => offset,
        None => start_offset(consumer, topic, partition, &options.startup)
            .await
            .map_err(error)?,
    };
    consumer
        .seek(topic, partition, start)
        .await
        .map_err(error)?;
    let stop = match assigned.stop {
        Stop::Never => None,
        Stop::At(offset) => Some(offset),
        Stop::AtEnd => Some(
            consumer
                .fetch_watermarks(topic, partition)
                .await
                .map_err(error)?
                .1,
        ),
    };
    debug!(partition, start, ?stop, "partition assigned");
    Ok((start, stop))
}

/// Partitions of `topic` that `shares` own and the reader does not read yet: assigned and
/// sought to their start (a partition added while the job runs is read from its first
/// record, as Flink reads one). Returns (partition, start, no stop) of each. A failed lookup is
/// logged and tried again at the next interval: the brokers may be back by then.
async fn discover(
    consumer: &Consumer,
    topic: &str,
    shares: &[Share],
    known: &mut BTreeSet<i32>,
) -> Result<Vec<(i32, i64, Option<i64>)>, KafkaError> {
    let listed = match consumer.fetch_metadata(Some(topic)).await {
        Ok(metadata) => metadata,
        Err(error) => {
            warn!(topic, %error, "looking for new partitions failed; trying again later");
            return Ok(Vec::new());
        }
    };
    let new: Vec<i32> = listed
        .topics
        .into_iter()
        .filter(|t| t.name == topic)
        .flat_map(|t| t.partitions.into_keys())
        .filter(|p| !known.contains(p) && shares.iter().any(|share| share.owns(*p)))
        .collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    // Where each starts, before any is assigned: an assigned partition without a position
    // would be read from a place the reader was never told of.
    let mut starts = Vec::new();
    for partition in new {
        match consumer.fetch_watermarks(topic, partition).await {
            Ok((earliest, _)) => starts.push((partition, earliest)),
            Err(error) => {
                warn!(topic, partition, %error, "a new partition's start is unknown; later");
            }
        }
    }
    let all = known.iter().copied().chain(starts.iter().map(|(p, _)| *p));
    if let Err(error) = consumer.assign(topic, all.collect()).await {
        warn!(topic, %error, "assigning new partitions failed; trying again later");
        return Ok(Vec::new());
    }
    for &(partition, start) in &starts {
        // Seeking an assigned partition only sets its position.
        if let Err(error) = consumer.seek(topic, partition, start).await {
            return Err(KafkaError::Partition {
                topic: topic.to_string(),
                partition,
                source: error,
            });
        }
    }
    let mut added = Vec::new();
    for (partition, start) in starts {
        info!(
            topic,
            partition, start, "reading a partition added to the topic"
        );
        known.insert(partition);
        added.push((partition, start, None));
    }
    Ok(added)
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
