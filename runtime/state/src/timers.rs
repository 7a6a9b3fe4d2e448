//! Event-time and processing-time timers per (key, timestamp), kept in memory (as Flink's heap
//! timers) and written into every keyed snapshot as a file in the heap snapshot format, so they
//! move with their key groups on rescale.

use std::collections::BTreeSet;
use std::path::Path;

use spate_api::{KeyGroupRange, Timestamp};

use crate::backend::check_group;
use crate::error::{Result, StateError};
use crate::heap::snapshot::{HeapSnapshotReader, HeapSnapshotWriter, SnapshotEntry};
use crate::key::{Key, OwnedKey};

/// The file of a keyed snapshot that holds its timers.
pub(crate) const TIMERS_FILE: &str = "timers.snap";

pub(crate) const EVENT_TIME: &str = "event-time";
const PROCESSING_TIME: &str = "processing-time";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Due when the watermark reaches the timestamp.
    EventTime,
    /// Due when the wall clock (or the backend's clock) reaches the timestamp.
    ProcessingTime,
}

/// A timer that is due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    pub timestamp: Timestamp,
    pub key: OwnedKey,
}

/// Timers ordered by timestamp, then key group and key (a deterministic order for equal
/// timestamps); a set, so registering a timer twice keeps one.
#[derive(Debug, Default)]
struct Queue(BTreeSet<(Timestamp, u32, Box<[u8]>)>);

/// The timers of one operator instance.
#[derive(Debug)]
pub struct TimerService {
    key_groups: KeyGroupRange,
    event: Queue,
    processing: Queue,
}

impl TimerService {
    pub fn new(key_groups: KeyGroupRange) -> Self {
        TimerService {
            key_groups,
            event: Queue::default(),
            processing: Queue::default(),
        }
    }

    fn queue(&mut self, domain: TimeDomain) -> &mut Queue {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Registers a timer; `false` if the same timer was already registered.
    pub fn register(
        &mut self,
        domain: TimeDomain,
        key: Key<'_>,
        timestamp: Timestamp,
    ) -> Result<bool> {
        check_group(self.key_groups, key)?;
        Ok(self
            .queue(domain)
            .0
            .insert((timestamp, key.group(), key.bytes().into())))
    }

    /// Deletes a timer; `false` if there was none.
    pub fn delete(&mut self, domain: TimeDomain, key: Key<'_>, timestamp: Timestamp) -> bool {
        self.queue(domain)
            .0
            .remove(&(timestamp, key.group(), key.bytes().into()))
    }

    /// The earliest timestamp of any timer in `domain`.
    pub fn next_timestamp(&self, domain: TimeDomain) -> Option<Timestamp> {
        let queue = match domain {
            TimeDomain::EventTime => &self.event,
            TimeDomain::ProcessingTime => &self.processing,
        };
        queue.0.first().map(|(timestamp, _, _)| *timestamp)
    }

    /// Removes and returns the earliest timer due at `time` (its timestamp is at most `time`).
    /// Call until `None` to fire everything due, in timestamp order.
    pub fn pop_due(&mut self, domain: TimeDomain, time: Timestamp) -> Option<Timer> {
        let queue = &mut self.queue(domain).0;
        if queue.first()?.0 > time {
            return None;
        }
        let (timestamp, group, key) = queue.pop_first()?;
        Some(Timer {
            timestamp,
            key: OwnedKey {
                group,
                bytes: key.into_vec(),
            },
        })
    }

    pub fn len(&self, domain: TimeDomain) -> usize {
        match domain {
            TimeDomain::EventTime => self.event.0.len(),
            TimeDomain::ProcessingTime => self.processing.0.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.event.0.is_empty() && self.processing.0.is_empty()
    }

    /// Writes all timers to `path` (timestamps are the user keys, big-endian).
    pub(crate) fn write_snapshot(&self, path: &Path, max_parallelism: u32) -> Result<u64> {
        let mut writer = HeapSnapshotWriter::create(path, max_parallelism)?;
        for (state, queue) in [
            (EVENT_TIME, &self.event),
            (PROCESSING_TIME, &self.processing),
        ] {
            for (timestamp, group, key) in &queue.0 {
                writer.write(&SnapshotEntry {
                    key_group: *group,
                    state,
                    key,
                    user_key: Some(&timestamp.to_be_bytes()),
                    value: &[],
                })?;
            }
        }
        writer.finish()
    }

    /// Adds the timers in `path` whose key groups this instance owns.
    pub(crate) fn restore(&mut self, path: &Path, max_parallelism: u32) -> Result<()> {
        let mut reader = HeapSnapshotReader::open(path)?;
        reader.expect_max_parallelism(max_parallelism)?;
        while let Some(entry) = reader.next_entry()? {
            if !self.key_groups.contains(entry.key_group) {
                continue;
            }
            let queue = match entry.state {
                EVENT_TIME => &mut self.event,
                PROCESSING_TIME => &mut self.processing,
                other => {
                    return Err(StateError::corrupt(
                        path,
                        format!("unknown timer domain '{other}'"),
                    ));
                }
            };
            let timestamp = entry
                .user_key
                .and_then(|bytes| bytes.try_into().ok())
                .map(Timestamp::from_be_bytes)
                .ok_or_else(|| StateError::corrupt(path, "a timer without a timestamp"))?;
            queue
                .0
                .insert((timestamp, entry.key_group, entry.key.into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bytes: &[u8]) -> Key<'_> {
        Key::new(bytes, 128)
    }

    #[test]
    fn timers_pop_in_timestamp_order_once() {
        let mut timers = TimerService::new(KeyGroupRange::new(0, 128));
        let d = TimeDomain::EventTime;
        assert!(timers.register(d, key(b"b"), 20).unwrap());
        assert!(timers.register(d, key(b"a"), 10).unwrap());
        assert!(!timers.register(d, key(b"a"), 10).unwrap());
        assert!(timers.register(d, key(b"a"), 30).unwrap());
        assert!(
            timers
                .register(TimeDomain::ProcessingTime, key(b"a"), 5)
                .unwrap()
        );
        assert_eq!(timers.len(d), 3);
        assert_eq!(timers.next_timestamp(d), Some(10));

        assert_eq!(timers.pop_due(d, 9), None);
        let fired: Vec<(Timestamp, Vec<u8>)> = std::iter::from_fn(|| timers.pop_due(d, 25))
            .map(|t| (t.timestamp, t.key.bytes))
            .collect();
        assert_eq!(fired, vec![(10, b"a".to_vec()), (20, b"b".to_vec())]);
        assert!(timers.delete(d, key(b"a"), 30));
        assert!(!timers.delete(d, key(b"a"), 30));
        assert_eq!(timers.pop_due(d, i64::MAX), None);
        assert_eq!(timers.len(TimeDomain::ProcessingTime), 1);
    }

    #[test]
    fn foreign_key_groups_are_refused() {
        let mut timers = TimerService::new(KeyGroupRange::new(0, 1));
        let foreign = Key::with_group(5, b"x");
        assert!(timers.register(TimeDomain::EventTime, foreign, 1).is_err());
    }

    #[test]
    fn snapshots_keep_the_owned_key_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TIMERS_FILE);
        let mut all = TimerService::new(KeyGroupRange::new(0, 4));
        for group in 0..4 {
            let k = Key::with_group(group, b"k");
            all.register(TimeDomain::EventTime, k, i64::from(group))
                .unwrap();
            all.register(TimeDomain::ProcessingTime, k, -1).unwrap();
        }
        all.write_snapshot(&path, 4).unwrap();

        let mut half = TimerService::new(KeyGroupRange::new(2, 4));
        half.restore(&path, 4).unwrap();
        assert_eq!(half.len(TimeDomain::EventTime), 2);
        assert_eq!(half.len(TimeDomain::ProcessingTime), 2);
        assert_eq!(
            half.pop_due(TimeDomain::EventTime, 10).unwrap().timestamp,
            2
        );
        assert!(half.restore(&path, 8).is_err());
    }
}
