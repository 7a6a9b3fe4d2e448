//! A deterministic event generator: keyed events with event times, optionally out of order, with
//! injected late events, split across parallel source subtasks. The same configuration always
//! yields the same events, so a test can compute its reference from `GeneratorConfig::event`.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::StringBuilder;
use arrow_array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use spate_api::{
    OperatorContext, OperatorError, Result, SourceFactory, SourcePoll, SourceReader, Split,
    StateEntry, position_entries, restored_position,
};

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Number of events; `None` generates forever.
    pub events: Option<u64>,
    pub keys: u64,
    pub seed: u64,
    pub batch_size: usize,
    /// Event time of event 0, in milliseconds.
    pub start_ms: i64,
    /// Event-time distance between consecutive events, in microseconds.
    pub interval_us: u64,
    /// Each subtask emits its events in reversed blocks of this many (1: in order). Events move
    /// by at most `disorder × splits` indices, so the out-of-orderness is bounded.
    pub disorder: u64,
    /// Every `late_every`-th event (from index `late_after` on) has its time moved back by
    /// `late_by_ms`, to exercise late-event handling. 0 disables it.
    pub late_every: u64,
    pub late_by_ms: i64,
    pub late_after: u64,
    /// Length of the `payload` string column, to size events.
    pub payload_bytes: usize,
    /// Number of splits; `None`: one per subtask.
    pub splits: Option<u32>,
    /// Events per second per subtask; `None`: as fast as downstream takes them.
    pub rate_per_subtask: Option<u64>,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            events: Some(1_000_000),
            keys: 100,
            seed: 42,
            batch_size: 4096,
            start_ms: 1_700_000_000_000,
            interval_us: 1000,
            disorder: 1,
            late_every: 0,
            late_by_ms: 0,
            late_after: 0,
            payload_bytes: 0,
            splits: None,
            rate_per_subtask: None,
        }
    }
}

/// One generated event, as the reference computations in tests see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedEvent {
    pub index: u64,
    pub key: i64,
    pub ts: i64,
    pub value: i64,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl GeneratorConfig {
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("value", DataType::Int64, false),
            Field::new("payload", DataType::Utf8, false),
        ]))
    }

    pub fn is_late(&self, index: u64) -> bool {
        self.late_every > 0
            && index >= self.late_after
            && index % self.late_every == self.late_every - 1
    }

    pub fn event(&self, index: u64) -> GeneratedEvent {
        let h = splitmix64(self.seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let mut ts = self.start_ms + (index as u128 * self.interval_us as u128 / 1000) as i64;
        if self.is_late(index) {
            ts -= self.late_by_ms;
        }
        GeneratedEvent {
            index,
            key: (h % self.keys.max(1)) as i64,
            ts,
            value: ((h >> 32) % 1000) as i64,
        }
    }

    /// All events in index order (for references in tests).
    pub fn all_events(&self) -> impl Iterator<Item = GeneratedEvent> + '_ {
        (0..self.events.expect("a bounded generator")).map(|i| self.event(i))
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(OperatorError::invalid(format!("generator: {what}")));
        if self.keys == 0 {
            return bad("'keys' must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("'batch-size' must be at least 1");
        }
        if self.disorder == 0 {
            return bad("'disorder' must be at least 1 (1 means in order)");
        }
        if self.splits == Some(0) {
            return bad("'splits' must be at least 1");
        }
        Ok(())
    }
}

pub struct GeneratorSource {
    config: GeneratorConfig,
}

impl GeneratorSource {
    pub fn new(config: GeneratorConfig) -> Result<Self> {
        config.validate()?;
        Ok(GeneratorSource { config })
    }
}

impl SourceFactory for GeneratorSource {
    fn splits(&self, parallelism: u32) -> Vec<Split> {
        let n = self.config.splits.unwrap_or(parallelism);
        (0..n).map(|k| Split::new(format!("{k}/{n}"))).collect()
    }

    fn create_reader(
        &self,
        splits: Vec<Split>,
        ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>> {
        let start = restored_position(ctx)?;
        let mut owned = Vec::with_capacity(splits.len());
        let mut total = 0;
        for split in &splits {
            let parsed = split
                .id
                .split_once('/')
                .and_then(|(k, n)| Some((k.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
            let Some((k, n)) = parsed.filter(|(k, n)| k < n) else {
                return Err(OperatorError::invalid(format!(
                    "generator: malformed split '{}'",
                    split.id
                )));
            };
            owned.push(k);
            total = n;
        }
        owned.sort_unstable();
        let count = self.config.events.map(|events| {
            owned
                .iter()
                .map(|&k| {
                    if events > k {
                        (events - k).div_ceil(total)
                    } else {
                        0
                    }
                })
                .sum()
        });
        Ok(Box::new(GeneratorReader {
            config: self.config.clone(),
            pool: payload_pool(self.config.seed),
            owned,
            total,
            count,
            position: start,
            start,
            started: Instant::now(),
        }))
    }
}

fn payload_pool(seed: u64) -> Vec<u8> {
    (0..4096u64)
        .map(|i| b'a' + (splitmix64(seed ^ i) % 26) as u8)
        .collect()
}

struct GeneratorReader {
    config: GeneratorConfig,
    pool: Vec<u8>,
    /// The split numbers this subtask reads, of `total`.
    owned: Vec<u64>,
    total: u64,
    /// How many events this subtask emits; `None` for an unbounded generator.
    count: Option<u64>,
    position: u64,
    /// Where this reader started (a restored position): the rate limit counts from there.
    start: u64,
    started: Instant,
}

impl GeneratorReader {
    /// The event index at `position` in this subtask's sequence, before disorder.
    fn index_at(&self, position: u64) -> u64 {
        let m = self.owned.len() as u64;
        (position / m) * self.total + self.owned[(position % m) as usize]
    }

    /// Reverses blocks of `disorder` positions; the last block may be shorter.
    fn emitted_position(&self, position: u64) -> u64 {
        let d = self.config.disorder;
        let block = position / d * d;
        let size = self.count.map_or(d, |c| d.min(c - block));
        block + (size - 1 - (position - block))
    }
}

impl SourceReader for GeneratorReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        if self.owned.is_empty() {
            return Ok(SourcePoll::End);
        }
        let mut rows = self.config.batch_size as u64;
        if let Some(count) = self.count {
            if self.position >= count {
                return Ok(SourcePoll::End);
            }
            rows = rows.min(count - self.position);
        }
        if let Some(rate) = self.config.rate_per_subtask {
            let allowed = self.start + (self.started.elapsed().as_secs_f64() * rate as f64) as u64;
            if self.position >= allowed {
                return Ok(SourcePoll::Idle);
            }
            rows = rows.min(allowed - self.position);
        }
        let n = rows as usize;
        let (mut keys, mut times, mut values) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let len = self.config.payload_bytes.min(self.pool.len() / 2);
        let mut payload = StringBuilder::with_capacity(n, n * len);
        for p in self.position..self.position + rows {
            let event = self.config.event(self.index_at(self.emitted_position(p)));
            keys.push(event.key);
            times.push(event.ts);
            values.push(event.value);
            let offset = (event.index as usize * 31) % (self.pool.len() - len);
            // The pool is ASCII, so any slice of it is valid UTF-8.
            payload.append_value(
                std::str::from_utf8(&self.pool[offset..offset + len]).expect("ascii pool"),
            );
        }
        self.position += rows;
        let batch = RecordBatch::try_new(
            GeneratorConfig::schema(),
            vec![
                Arc::new(Int64Array::from(keys)),
                Arc::new(TimestampMillisecondArray::from(times)),
                Arc::new(Int64Array::from(values)),
                Arc::new(payload.finish()),
            ],
        )?;
        Ok(SourcePoll::Batch(batch))
    }

    fn snapshot_positions(&mut self) -> Result<Vec<StateEntry>> {
        Ok(position_entries(self.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn read_all(config: &GeneratorConfig, parallelism: u32) -> Vec<Vec<(i64, i64)>> {
        let source = GeneratorSource::new(config.clone()).unwrap();
        let splits = source.splits(parallelism);
        (0..parallelism)
            .map(|s| {
                let mine = splits
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i as u32 % parallelism == s);
                let mut reader = source
                    .create_reader(
                        mine.map(|(_, sp)| sp.clone()).collect(),
                        &OperatorContext::single("g"),
                    )
                    .unwrap();
                let mut rows = Vec::new();
                while let SourcePoll::Batch(b) = reader.poll_next().unwrap() {
                    let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    let t = b
                        .column(1)
                        .as_any()
                        .downcast_ref::<TimestampMillisecondArray>()
                        .unwrap();
                    assert_eq!(b.column(3).len(), b.num_rows());
                    rows.extend(k.values().iter().copied().zip(t.values().iter().copied()));
                }
                rows
            })
            .collect()
    }

    #[test]
    fn splits_cover_every_event_exactly_once() {
        let config = GeneratorConfig {
            events: Some(10_007),
            batch_size: 100,
            splits: Some(5),
            payload_bytes: 10,
            ..Default::default()
        };
        let mut got: Vec<(i64, i64)> = read_all(&config, 3).into_iter().flatten().collect();
        let mut want: Vec<(i64, i64)> = config.all_events().map(|e| (e.key, e.ts)).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn disorder_permutes_within_its_bound() {
        let sorted = GeneratorConfig {
            events: Some(1000),
            batch_size: 64,
            ..Default::default()
        };
        let shuffled = GeneratorConfig {
            disorder: 7,
            ..sorted.clone()
        };
        let a = read_all(&sorted, 2);
        let b = read_all(&shuffled, 2);
        for (x, y) in a.iter().zip(&b) {
            assert_ne!(x, y);
            let mut y_sorted = y.clone();
            y_sorted.sort_by_key(|r| r.1);
            assert_eq!(x, &y_sorted);
            let mut max = i64::MIN;
            for &(_, ts) in y {
                assert!(
                    ts > max.saturating_sub(7 * 2),
                    "displacement beyond disorder × splits"
                );
                max = max.max(ts);
            }
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let err = GeneratorSource::new(GeneratorConfig {
            keys: 0,
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("'keys'"), "{err}");
    }
}
