//! The datagen source: rows numbered 0, 1, 2, ..., row `i` read by split `i mod n`.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{
    OperatorContext, Result, SourceFactory, SourcePoll, SourceReader, Split, StateEntry,
    now_millis, position_entries, restored_position,
};

use super::field::{FieldGen, Kind, Random};
use crate::nexmark::rng::Rng;
use crate::nexmark::splits::{parse_splits, split_ids};

/// Rows per batch at most; the rate limit usually makes batches smaller.
const MAX_BATCH_ROWS: u64 = 4096;
/// Random strings are cut from a pool of letters at least this long.
const POOL_LEN: usize = 1 << 16;

pub(crate) struct DatagenConfig {
    pub schema: SchemaRef,
    /// One per column of `schema`.
    pub fields: Vec<FieldGen>,
    pub rows_per_second: u64,
    pub number_of_rows: Option<u64>,
    pub seed: u64,
}

pub(crate) struct DatagenSource {
    config: Arc<DatagenConfig>,
    /// Rows in all: `number-of-rows`, or fewer when a sequence runs out first.
    rows: Option<u64>,
    letters: Arc<str>,
}

impl DatagenSource {
    pub(crate) fn new(config: DatagenConfig) -> Self {
        let rows = config
            .fields
            .iter()
            .filter_map(FieldGen::limit)
            .chain(config.number_of_rows)
            .min();
        let longest = config
            .fields
            .iter()
            .filter_map(|f| match f.kind {
                Kind::Random(Random::Varchar { length }) => Some(length),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let mut rng = Rng::for_index(config.seed, u64::MAX);
        let letters: String = (0..POOL_LEN.max(2 * longest))
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect();
        DatagenSource {
            config: Arc::new(config),
            rows,
            letters: letters.into(),
        }
    }
}

impl SourceFactory for DatagenSource {
    fn splits(&self, parallelism: u32) -> Vec<Split> {
        split_ids(parallelism)
    }

    fn create_reader(
        &self,
        splits: Vec<Split>,
        ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>> {
        let start = restored_position(ctx)?;
        let (owned, total) = parse_splits("datagen", &splits)?;
        // Split k holds rows k, k + n, ...: ⌈(rows − k) / n⌉ of them.
        let count = self.rows.map(|rows| {
            owned
                .iter()
                .map(|&k| rows.saturating_sub(k).div_ceil(total))
                .sum()
        });
        Ok(Box::new(DatagenReader {
            config: self.config.clone(),
            letters: self.letters.clone(),
            owned,
            total,
            count,
            position: start,
            start,
            started: Instant::now(),
        }))
    }
}

struct DatagenReader {
    config: Arc<DatagenConfig>,
    letters: Arc<str>,
    owned: Vec<u64>,
    total: u64,
    count: Option<u64>,
    /// Rows emitted so far.
    position: u64,
    /// Where this reader started (a restored position): the rate limit counts from there.
    start: u64,
    started: Instant,
}

impl DatagenReader {
    /// The table row number of this reader's `m`-th row.
    fn row(&self, m: u64) -> u64 {
        let per = self.owned.len() as u64;
        m / per * self.total + self.owned[(m % per) as usize]
    }
}

impl SourceReader for DatagenReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        if self.owned.is_empty() {
            return Ok(SourcePoll::End);
        }
        let mut rows = MAX_BATCH_ROWS;
        if let Some(count) = self.count {
            if self.position >= count {
                return Ok(SourcePoll::End);
            }
            rows = rows.min(count - self.position);
        }
        let allowed = self.start
            + (self.started.elapsed().as_secs_f64() * self.config.rows_per_second as f64) as u64;
        if self.position >= allowed {
            return Ok(SourcePoll::Idle);
        }
        rows = rows.min(allowed - self.position);
        let numbers: Vec<u64> = (self.position..self.position + rows)
            .map(|m| self.row(m))
            .collect();
        let now = now_millis();
        let columns = self
            .config
            .fields
            .iter()
            .map(|f| f.array(&numbers, now, &self.letters))
            .collect();
        self.position += rows;
        Ok(SourcePoll::Batch(RecordBatch::try_new(
            self.config.schema.clone(),
            columns,
        )?))
    }

    fn snapshot_positions(&mut self) -> Result<Vec<StateEntry>> {
        Ok(position_entries(self.position))
    }
}
