//! The Kafka source: one split per partition of the topic. A reader's fetcher consumes its
//! partitions; the reader hands the task their records as rows and checkpoints, per partition,
//! the offset after the last record it handed over and the offset it stops at, so a restored
//! job reads every record once and a bounded one stops where it first meant to.

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

pub struct KafkaSource {
    options: SourceOptions,
    schema: SchemaRef,
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

fn split_id(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

impl SourceFactory for KafkaSource {
    fn splits(&self, _parallelism: u32) -> Vec<Split> {
        self.partitions
            .iter()
            .map(|&p| Split::new(split_id(&self.options.topic, p)))
            .collect()
    }

    fn create_reader(
        &self,
        splits: Vec<Split>,
        ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>> {
        let restored: BTreeMap<&str, &[u8]> = ctx
            .state
            .restored
            .iter()
            .flat_map(|r| &r.entries)
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect();
        let mut partitions = BTreeMap::new();
        for split in &splits {
            let partition = split
                .id
                .strip_prefix(&format!("{}-", self.options.topic))
                .and_then(|p| p.parse::<i32>().ok())
                .ok_or_else(|| {
                    OperatorError::invalid(format!(
                        "split '{}' is not a partition of topic '{}' (was the table's topic \
                         changed since the checkpoint?)",
                        split.id, self.options.topic
                    ))
                })?;
            let position = match restored.get(split.id.as_str()) {
                Some(value) => Position::decode(value, &split.id)?,
                None => Position {
                    next: UNRESOLVED,
                    stop: match &self.options.bounded {
                        Bounded::Unbounded => NEVER,
                        Bounded::Latest => AT_END,
                        Bounded::Specific(offsets) => {
                            offsets.get(&partition).copied().ok_or_else(|| {
                                OperatorError::invalid(format!(
                                    "scan.bounded.specific-offsets names no offset for \
                                     partition {partition} of topic '{}'",
                                    self.options.topic
                                ))
                            })?
                        }
                    },
                },
            };
            partitions.insert(partition, position);
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
            &self.options.topic,
            &self.schema,
            &self.options.layout,
            self.options.tolerance,
        )?;
        let fetcher = fetcher::start(self.options.clone(), assigned)
            .map_err(|e| OperatorError::invalid(e.to_string()))?;
        Ok(Box::new(KafkaReader {
            topic: self.options.topic.clone(),
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
                    for (partition, start, stop) in resolved {
                        if let Some(position) = self.partitions.get_mut(&partition) {
                            position.next = start;
                            position.stop = stop.unwrap_or(NEVER);
                        }
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
        Ok(self
            .partitions
            .iter()
            .map(|(&partition, position)| (split_id(&self.topic, partition), position.encode()))
            .collect())
    }
}
