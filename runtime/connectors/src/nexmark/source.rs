//! The Nexmark source: splits of the event stream, and readers that write one table's rows as
//! Arrow batches.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{
    OperatorContext, OperatorError, Result, SourceFactory, SourcePoll, SourceReader, Split,
    StateEntry, position_entries, restored_position,
};

use super::columns::{ColumnBuilder, Row};
use super::schedule::Schedule;
use super::splits::{parse_splits, split_ids};
use super::strings::tables;
use super::{NexmarkConfig, NexmarkTable};

/// Reads one Nexmark table. Split `k` of `n` covers the stream's events numbered ≡ k mod n.
#[derive(Debug, Clone)]
pub struct NexmarkSource {
    config: Arc<NexmarkConfig>,
    table: NexmarkTable,
    /// What batches carry: the declared columns, in their order, under their names.
    schema: SchemaRef,
    /// For each output column, its index among the table's columns.
    columns: Vec<usize>,
}

impl NexmarkSource {
    /// A source of every column of `table`.
    pub fn new(config: NexmarkConfig, table: NexmarkTable) -> Result<Self> {
        config
            .validate()
            .map_err(|e| OperatorError::invalid(format!("nexmark: {e}")))?;
        Ok(NexmarkSource {
            config: Arc::new(config),
            table,
            schema: table.schema(),
            columns: (0..table.columns().len()).collect(),
        })
    }

    /// Emits only the `declared` columns, in that order and under those names. Each must be a
    /// column of the table (case-insensitively) of the same type; the error says which is not.
    pub fn with_declared_columns(mut self, declared: SchemaRef) -> Result<Self, String> {
        self.columns = self.table.resolve(&declared)?;
        self.schema = declared;
        Ok(self)
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl SourceFactory for NexmarkSource {
    fn splits(&self, parallelism: u32) -> Vec<Split> {
        split_ids(self.config.splits.unwrap_or(parallelism))
    }

    fn create_reader(
        &self,
        splits: Vec<Split>,
        ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>> {
        let start = restored_position(ctx)?;
        let (owned, total) = parse_splits("nexmark", &splits)?;
        let schedule = Schedule::new(&self.config, self.table, owned, total)
            .map_err(|e| OperatorError::invalid(format!("nexmark: {e}")))?;
        let rows = self.config.events.map(|events| schedule.rows_below(events));
        Ok(Box::new(NexmarkReader {
            source: self.clone(),
            string_bytes: vec![0; self.columns.len()],
            schedule,
            rows,
            position: start,
            start,
            started: Instant::now(),
        }))
    }
}

struct NexmarkReader {
    source: NexmarkSource,
    schedule: Schedule,
    /// Rows this reader emits in all; `None` when the stream is unbounded.
    rows: Option<u64>,
    /// Rows emitted so far.
    position: u64,
    /// Where this reader started (a restored position): the rate limit counts from there.
    start: u64,
    started: Instant,
    /// String bytes of each column in the previous batch, to size the next one.
    string_bytes: Vec<usize>,
}

impl NexmarkReader {
    /// Rows the next batch may hold: `Some(0)` while the rate limit holds the reader back,
    /// `None` when it is done.
    fn next_rows(&self) -> Option<u64> {
        if self.schedule.is_empty() {
            return None;
        }
        let mut rows = self.source.config.batch_size as u64;
        if let Some(total) = self.rows {
            if self.position >= total {
                return None;
            }
            rows = rows.min(total - self.position);
        }
        if let Some(rate) = self.source.config.rate {
            let events = (self.started.elapsed().as_secs_f64() * rate as f64) as u64;
            let allowed = self.start + self.schedule.rows_below(self.schedule.own_event(events));
            rows = rows.min(allowed.saturating_sub(self.position));
        }
        Some(rows)
    }

    fn build<R: Row>(&mut self, rows: usize, row: impl Fn(u64) -> R) -> Result<RecordBatch> {
        let table_columns = self.source.table.columns();
        let mut builders: Vec<ColumnBuilder> = self
            .source
            .columns
            .iter()
            .zip(&self.string_bytes)
            .map(|(&c, &bytes)| ColumnBuilder::new(table_columns[c].1, rows, bytes))
            .collect();
        for event in self.schedule.events_from(self.position).take(rows) {
            let row = row(event);
            for (builder, &column) in builders.iter_mut().zip(&self.source.columns) {
                builder.push(row.value(column));
            }
        }
        let mut arrays = Vec::with_capacity(builders.len());
        for (builder, bytes) in builders.into_iter().zip(&mut self.string_bytes) {
            let (array, used) = builder.finish();
            arrays.push(array);
            *bytes = used;
        }
        Ok(RecordBatch::try_new(self.source.schema.clone(), arrays)?)
    }
}

impl SourceReader for NexmarkReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        let rows = match self.next_rows() {
            None => return Ok(SourcePoll::End),
            Some(0) => return Ok(SourcePoll::Idle),
            Some(rows) => rows as usize,
        };
        let config = self.source.config.clone();
        let batch = match self.source.table {
            NexmarkTable::Person => self.build(rows, |n| config.person(n))?,
            NexmarkTable::Auction => self.build(rows, |n| config.auction(n))?,
            NexmarkTable::Bid => {
                let tables = tables();
                self.build(rows, |n| config.bid(n, tables))?
            }
        };
        self.position += rows as u64;
        Ok(SourcePoll::Batch(batch))
    }

    fn snapshot_positions(&mut self) -> Result<Vec<StateEntry>> {
        Ok(position_entries(self.position))
    }
}
