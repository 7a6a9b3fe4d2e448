use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{
    KeyEncoder, MIN_WATERMARK, Operator, OperatorContext, OperatorMetrics, OperatorSnapshot,
    Output, Result, Timestamp, event_time_column,
};

use super::aggregate::{Accumulators, Aggregate, Updates};
use super::assigner::{Aligned, WindowAssigner, is_late};
use super::checkpoint::Instance;
use super::output::OutputBuilder;
use super::panes::Panes;
use super::session::Sessions;
use super::{Resolved, WindowSpec};
use crate::checkpoint::{FINAL_CHECKPOINT, restored_watermark, watermark_entry};
use crate::keyed::table::KeyTable;

/// Aggregates records per key and event-time window; a window's row is emitted when the
/// watermark passes its end.
#[derive(Debug)]
pub struct WindowOperator {
    keys: Option<KeyEncoder>,
    time_column: usize,
    time_name: String,
    aggregates: Vec<Aggregate>,
    table: KeyTable,
    accumulators: Accumulators,
    updates: Updates,
    windows: Windows,
    output: OutputBuilder,
    watermark: Timestamp,
    late_records_dropped: u64,
    instance: Instance,
}

#[derive(Debug)]
pub(super) enum Windows {
    Aligned(Aligned, Panes),
    Session(Sessions),
}

impl WindowOperator {
    pub fn new(spec: WindowSpec, input: SchemaRef) -> Result<Self> {
        let Resolved {
            keys,
            time_column,
            aggregates,
            schema,
        } = spec.resolve(&input)?;
        let windows = match spec.assigner {
            WindowAssigner::Tumbling { size_ms } => {
                Windows::Aligned(Aligned::new(size_ms, size_ms), Panes::new(size_ms, size_ms))
            }
            WindowAssigner::Hopping { size_ms, slide_ms } => Windows::Aligned(
                Aligned::new(size_ms, slide_ms),
                Panes::new(size_ms, slide_ms),
            ),
            WindowAssigner::Session { gap_ms } => Windows::Session(Sessions::new(gap_ms)),
        };
        Ok(WindowOperator {
            output: OutputBuilder::new(schema, spec.key_columns.len()),
            accumulators: Accumulators::new(&aggregates),
            keys,
            time_column,
            time_name: spec.event_time_column,
            aggregates,
            table: KeyTable::default(),
            updates: Updates::default(),
            windows,
            watermark: MIN_WATERMARK,
            late_records_dropped: 0,
            // Until `open` says otherwise, the single instance of a job owns every key.
            instance: Instance::of(&OperatorContext::single("window")),
        })
    }

    pub fn output_schema(&self) -> SchemaRef {
        self.output.schema()
    }

    /// (keys, accumulator slots, windows, COUNT(DISTINCT) values) held.
    #[cfg(test)]
    pub(crate) fn open_state(&self) -> (usize, usize, usize, usize) {
        let windows = match &self.windows {
            Windows::Aligned(_, panes) => panes.open(),
            Windows::Session(sessions) => sessions.open(),
        };
        (
            self.table.referenced(),
            self.accumulators.live(),
            windows,
            self.accumulators.distinct_values(),
        )
    }
}

impl Operator for WindowOperator {
    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        self.instance = Instance::of(ctx);
        self.watermark = restored_watermark(ctx.state.restored.as_ref())?;
        self.instance.restore(
            &ctx.state,
            self.watermark,
            &mut self.windows,
            &mut self.table,
            &mut self.accumulators,
        )
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = event_time_column(batch.column(self.time_column), &self.time_name)?;
        let rows = self.keys.as_ref().map(|k| k.encode(&batch)).transpose()?;
        let key_of = |row: usize| rows.as_ref().map_or(&[][..], |r| r.row(row).data());
        self.updates.start(&self.aggregates, &batch)?;

        let watermark = self.watermark;
        let table = &mut self.table;
        let accumulators = &mut self.accumulators;
        let updates = &mut self.updates;
        match &mut self.windows {
            Windows::Aligned(aligned, panes) => {
                for (row, &ts) in times.iter().enumerate() {
                    let mut key = None;
                    let mut accepted = false;
                    aligned.for_each(ts, |start, end| {
                        if is_late(end, watermark) {
                            return;
                        }
                        let key = *key.get_or_insert_with(|| table.intern(key_of(row)));
                        let slot = panes.slot(start, end, key, watermark, accumulators, table);
                        updates.push(row, slot);
                        accepted = true;
                    });
                    // As Flink: late is a record no window took, though the watermark covers it.
                    if !accepted && ts <= watermark {
                        self.late_records_dropped += 1;
                    }
                }
            }
            Windows::Session(sessions) => {
                for (row, &ts) in times.iter().enumerate() {
                    match sessions.add(key_of(row), ts, watermark, table, accumulators, updates) {
                        Some(slot) => updates.push(row, slot),
                        None => self.late_records_dropped += 1,
                    }
                }
                sessions.index_changes();
            }
        }
        self.updates.finish(&mut self.accumulators);
        Ok(())
    }

    fn process_watermark(&mut self, watermark: Timestamp, out: &mut Output) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let due = self.watermark;
        let keys = self.keys.as_ref();
        let table = &mut self.table;
        let accumulators = &mut self.accumulators;
        let output = &mut self.output;
        match &mut self.windows {
            Windows::Aligned(_, panes) => {
                while let Some(index) = panes.pop_due(|end| is_late(end, due)) {
                    let pane = panes.get(index);
                    for &(key, slot) in &pane.entries {
                        output.push(key, pane.start, pane.end, slot);
                        if output.is_full() {
                            output.flush(keys, table, accumulators, out)?;
                        }
                    }
                    panes.recycle(index);
                }
            }
            Windows::Session(sessions) => {
                while let Some(fired) = sessions.pop_due(due) {
                    output.push(fired.key, fired.start, fired.end, fired.slot);
                    if output.is_full() {
                        output.flush(keys, table, accumulators, out)?;
                    }
                }
            }
        }
        output.flush(keys, table, accumulators, out)?;
        out.watermark(watermark);
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot> {
        // The watermark goes along so that a replayed record that was late before the
        // checkpoint is late again, instead of reopening a window that has already fired.
        let entries = vec![watermark_entry(self.watermark)];
        let keyed = if checkpoint_id == FINAL_CHECKPOINT {
            None
        } else {
            Some(self.instance.snapshot(
                checkpoint_id,
                &self.windows,
                &self.table,
                &self.accumulators,
            )?)
        };
        Ok(OperatorSnapshot { entries, keyed })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        Ok(spate_state::release_older_than(
            self.instance.dir(),
            checkpoint_id,
        )?)
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            late_records_dropped: self.late_records_dropped,
        }
    }
}
