//! The Kafka source. Its splits are shares of the topic, not partitions: reader `i` of `n`
//! owns the partitions `p` with `p % n == i`, those the topic has and those added while the job
//! runs (found by the fetcher's partition discovery, and read from their start), so each
//! partition has one owner without a coordinator. A restored reader keeps its share, whatever
//! the job's parallelism now. A reader's fetcher consumes its partitions; the reader hands the
//! task their records as rows and checkpoints, per partition, the offset after the last record
//! it handed over and the offset it stops at, so a restored job reads every record once and a
//! bounded one stops where it first meant to.

use std::collections::BTreeMap;
use std::sync::mpsc::TryRecvError;

use arrow_schema::SchemaRef;
use spate_api::{
    OperatorContext, OperatorError, Result, SourceFactory, SourcePoll, SourceReader, Split,
    StateEntry,
};

use crate::fetcher::{self, Assigned, Fetched, Fetcher, Stop};
use crate::options::{Bounded, SourceOptions};
use crate::record::Decoder;

/// Checkpointed for an offset not looked up yet (the startup mode decides it on restore).
const UNRESOLVED: i64 = -1;
/// Checkpointed as the stop offset of an unbounded partition.
const NEVER: i64 = -1;
/// Checkpointed as the stop offset of a bounded partition not looked up yet.
const AT_END: i64 = -2;
/// An entry every reader checkpoints, so that a reader with no partition yet is restored too
/// (and keeps its share). No partition's entry can take this name.
const READER: &str = "reader";

pub struct KafkaSource {
    options: SourceOptions,
    schema: SchemaRef,
    /// The topic's partitions when the job was planned.
    partitions: Vec<i32>,
}

impl KafkaSource {
    pub fn new(options: SourceOptions, schema: SchemaRef, partitions: Vec<i32>) -> Self {
        KafkaSource {
            options,
            schema,
            partitions,
        }
    }
}

/// A reader's share of the topic: the partitions `p` with `p % readers == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    index: u32,
    readers: u32,
}

impl Share {
    fn split_id(&self, topic: &str) -> String {
        format!("{topic} reader {} of {}", self.index, self.readers)
    }

    fn parse(id: &str, topic: &str) -> Option<Share> {
        let (index, readers) = id
            .strip_prefix(topic)?
            .strip_prefix(" reader ")?
            .split_once(" of ")?;
        let share = Share {
            index: index.parse().ok()?,
            readers: readers.parse().ok()?,
        };
        (share.index < share.readers).then_some(share)
    }

    pub fn owns(&self, partition: i32) -> bool {
        u32::try_from(partition).is_ok_and(|p| p % self.readers == self.index)
    }
}

/// A partition's entry in the checkpoint.
fn entry_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

fn partition_of(entry: &str, topic: &str) -> Option<i32> {
    entry.strip_prefix(topic)?.strip_prefix('-')?.parse().ok()
}

impl KafkaSource {
    /// Where a partition a reader starts with (not restored, not discovered) stops.
    fn first_stop(&self, partition: i32) -> Result<i64> {
        Ok(match &self.options.bounded {
            Bounded::Unbounded => NEVER,
            Bounded::Latest => AT_END,
            Bounded::Specific(offsets) => offsets.get(&partition).copied().ok_or_else(|| {
                OperatorError::invalid(format!(
                    "scan.bounded.specific-offsets names no offset for partition {partition} \
                     of topic '{}'",
                    self.options.topic
                ))
            })?,
        })
    }
}

impl SourceFactory for KafkaSource {
    fn splits(&self, parallelism: u32) -> Vec<Split> {
        (0..parallelism)
            .map(|index| {
                let share = Share {
                    index,
                    readers: parallelism,
                };
                Split::new(share.split_id(&self.options.topic))
            })
            .collect()
    }

    fn create_reader(
        &self,
        splits: Vec<Split>,
        ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>> {
        let topic = &self.options.topic;
        let shares = splits
            .iter()
            .map(|split| {
                Share::parse(&split.id, topic).ok_or_else(|| {
                    OperatorError::invalid(format!(
                        "split '{}' is not a share of topic '{topic}' (was the table's topic \
                         changed since the checkpoint, or was it taken by a version of Spate \
                         whose Kafka splits were partitions?)",
                        split.id
                    ))
                })
            })
            .collect::<Result<Vec<Share>>>()?;
        let restored: Vec<&StateEntry> =
            ctx.state.restored.iter().flat_map(|r| &r.entries).collect();
        let mut partitions = BTreeMap::new();
        if restored.is_empty() {
            // A first start: the partitions the topic had at planning that the shares own.
            for &partition in &self.partitions {
                if shares.iter().any(|share| share.owns(partition)) {
                    let stop = self.first_stop(partition)?;
                    let position = Position {
                        next: UNRESOLVED,
                        stop,
                    };
                    partitions.insert(partition, position);
                }
            }
        }
        for (name, value) in restored {
            if name.as_str() == READER {
                continue;
            }
            let partition = partition_of(name, topic).ok_or_else(|| {
                OperatorError::invalid(format!(
                    "the checkpoint holds '{name}', which is not a partition of topic '{topic}' \
                     (was the table's topic changed since the checkpoint?)"
                ))
            })?;
            partitions.insert(partition, Position::decode(value, name)?);
        }
        let assigned = partitions
            .iter()
            .map(|(&partition, position)| Assigned {
                partition,
                start: (position.next != UNRESOLVED).then_some(position.next),
                stop: match position.stop {
                    NEVER => Stop::Never,
                    AT_END => Stop::AtEnd,
                    offset => Stop::At(offset),
                },
            })
            .collect();
        let decoder = Decoder::new(
            topic,
            &self.schema,
            &self.options.layout,
            self.options.tolerance,
        )?;
        let fetcher = fetcher::start(self.options.clone(), assigned, shares)
            .map_err(|e| OperatorError::invalid(e.to_string()))?;
        Ok(Box::new(KafkaReader {
            topic: topic.clone(),
            decoder,
            partitions,
            fetcher,
            ended: false,
        }))
    }
}

/// A partition's checkpointed place: the next offset to hand over and where to stop.
#[derive(Debug, Clone, Copy)]
struct Position {
    next: i64,
    stop: i64,
}

impl Position {
    fn encode(&self) -> Vec<u8> {
        [self.next.to_le_bytes(), self.stop.to_le_bytes()].concat()
    }

    fn decode(value: &[u8], split: &str) -> Result<Self> {
        let word = |at: usize| -> Option<i64> {
            Some(i64::from_le_bytes(value.get(at..at + 8)?.try_into().ok()?))
        };
        match (value.len(), word(0), word(8)) {
            (16, Some(next), Some(stop)) => Ok(Position { next, stop }),
            _ => Err(OperatorError::invalid(format!(
                "the checkpointed position of Kafka split '{split}' has {} bytes, expected 16",
                value.len()
            ))),
        }
    }
}

struct KafkaReader {
    topic: String,
    decoder: Decoder,
    partitions: BTreeMap<i32, Position>,
    fetcher: Fetcher,
    ended: bool,
}

impl SourceReader for KafkaReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        if self.ended {
            return Ok(SourcePoll::End);
        }
        loop {
            match self.fetcher.fetched.try_recv() {
                Ok(Fetched::Resolved(resolved)) => {
                    // The partitions the reader started with, or ones the fetcher discovered:
                    // their records come after this, so a checkpoint that has a partition's
                    // records has its position too.
                    for (partition, start, stop) in resolved {
                        let position = Position {
                            next: start,
                            stop: stop.unwrap_or(NEVER),
                        };
                        self.partitions.insert(partition, position);
                    }
                }
                Ok(Fetched::Records(records)) => {
                    let rows = self.decoder.decode(&records)?;
                    for record in &records {
                        if let Some(position) = self.partitions.get_mut(&record.partition) {
                            position.next = record.offset + 1;
                        }
                    }
                    return Ok(SourcePoll::Batch(rows));
                }
                Ok(Fetched::End) => {
                    self.ended = true;
                    return Ok(SourcePoll::End);
                }
                Ok(Fetched::Failed(error)) => {
                    return Err(OperatorError::invalid(error.to_string()));
                }
                Err(TryRecvError::Empty) => return Ok(SourcePoll::Idle),
                Err(TryRecvError::Disconnected) => {
                    return Err(OperatorError::invalid(format!(
                        "the fetcher of topic '{}' stopped",
                        self.topic
                    )));
                }
            }
        }
    }

    fn snapshot_positions(&mut self) -> Result<Vec<StateEntry>> {
        let positions = self
            .partitions
            .iter()
            .map(|(&partition, position)| (entry_name(&self.topic, partition), position.encode()));
        Ok(std::iter::once((READER.to_string(), Vec::new()))
            .chain(positions)
            .collect())
    }
}
