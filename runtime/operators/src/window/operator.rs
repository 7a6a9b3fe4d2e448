use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{
    KeyEncoder, MIN_WATERMARK, Operator, OperatorContext, OperatorError, OperatorMetrics,
    OperatorSnapshot, Output, Result, StateBackendKind, Timestamp, event_time_column,
};

use super::aggregate::{Accumulators, Aggregate, Updates};
use super::assigner::{Aligned, WindowAssigner, assigner_entry, check_restored_assigner, is_late};
use super::heap::HeapWindows;
use super::output::OutputBuilder;
use super::panes::Panes;
use super::session::{Flushed, Sessions};
use super::store::{Bounds, WindowStore};
use super::{Resolved, WindowSpec};
use crate::checkpoint::{FINAL_CHECKPOINT, restored_watermark, watermark_entry};
use crate::keyed::table::KeyTable;

/// Open windows at which the bundle is flushed to the store after a batch: bounds the memory
/// of the bundle (about 100 bytes per window without COUNT(DISTINCT)).
const BUNDLE_WINDOWS: usize = 1 << 16;

/// Aggregates records per key and event-time window; a window's row is emitted when the
/// watermark passes its end.
///
/// Records go to an in-memory bundle of windows (panes or sessions with columnar accumulators).
/// On the heap backend the bundle holds every open window and fires them itself (`HeapWindows`
/// writes it to checkpoints). On RocksDB open windows live in the backend (`WindowStore`), so
/// they are checkpointed incrementally and need not fit in memory; the bundle gathers the
/// updates, as Blink's mini-batch aggregation does, and is folded into the store when a window
/// in it is due, when it grows past `BUNDLE_WINDOWS`, and at each checkpoint, so the store sees
/// one read and write per window and flush instead of one per record.
#[derive(Debug)]
pub struct WindowOperator {
    keys: Option<KeyEncoder>,
    time_column: usize,
    time_name: String,
    assigner: WindowAssigner,
    aggregates: Vec<Aggregate>,
    table: KeyTable,
    accumulators: Accumulators,
    updates: Updates,
    bundle: Bundle,
    windows: Windows,
    output: OutputBuilder,
    watermark: Timestamp,
    late_records_dropped: u64,
    /// `BUNDLE_WINDOWS`, or less in tests.
    pub(super) bundle_windows: usize,
}

#[derive(Debug)]
pub(super) enum Bundle {
    Aligned(Aligned, Panes),
    Session(Sessions),
}

impl Bundle {
    fn earliest_end(&self) -> Option<Timestamp> {
        match self {
            Bundle::Aligned(_, panes) => panes.earliest_end(),
            Bundle::Session(sessions) => sessions.earliest_end(),
        }
    }
}

/// Where open windows live.
#[derive(Debug)]
enum Windows {
    Heap(HeapWindows),
    Store(WindowStore),
}

impl WindowOperator {
    /// Until `open` gives it the instance's state, the operator keeps its windows in memory and
    /// owns every key, as the single instance of a job (for tests and tools).
    pub fn new(spec: WindowSpec, input: SchemaRef) -> Result<Self> {
        let Resolved {
            keys,
            time_column,
            aggregates,
            schema,
        } = spec.resolve(&input)?;
        let bundle = match spec.assigner {
            WindowAssigner::Tumbling { size_ms } => {
                Bundle::Aligned(Aligned::new(size_ms, size_ms), Panes::new(size_ms, size_ms))
            }
            WindowAssigner::Hopping { size_ms, slide_ms } => Bundle::Aligned(
                Aligned::new(size_ms, slide_ms),
                Panes::new(size_ms, slide_ms),
            ),
            WindowAssigner::Session { gap_ms } => Bundle::Session(Sessions::new(gap_ms)),
        };
        Ok(WindowOperator {
            output: OutputBuilder::new(schema, spec.key_columns.len()),
            accumulators: Accumulators::new(&aggregates),
            keys,
            time_column,
            time_name: spec.event_time_column,
            assigner: spec.assigner,
            aggregates,
            table: KeyTable::default(),
            updates: Updates::default(),
            bundle,
            windows: Windows::Heap(HeapWindows::of(&OperatorContext::single("window"))),
            watermark: MIN_WATERMARK,
            late_records_dropped: 0,
            bundle_windows: BUNDLE_WINDOWS,
        })
    }

    pub fn output_schema(&self) -> SchemaRef {
        self.output.schema()
    }

    /// (keys, accumulator slots, windows, COUNT(DISTINCT) values) held; windows are counted in
    /// the store if there is one, the rest in memory.
    #[cfg(test)]
    pub(crate) fn open_state(&mut self) -> (usize, usize, usize, usize) {
        let windows = match (&mut self.windows, &self.bundle) {
            (Windows::Store(store), _) => store.open_windows(),
            (Windows::Heap(_), Bundle::Aligned(_, panes)) => panes.open_windows().count(),
            (Windows::Heap(_), Bundle::Session(sessions)) => sessions.open_windows().count(),
        };
        (
            self.table.referenced(),
            self.accumulators.live(),
            windows,
            self.accumulators.distinct_values(),
        )
    }

    /// Folds the bundle into the store and empties it.
    fn flush(&mut self) -> Result<()> {
        let Windows::Store(store) = &mut self.windows else {
            return Ok(());
        };
        let table = &mut self.table;
        let accumulators = &mut self.accumulators;
        match &mut self.bundle {
            Bundle::Aligned(_, panes) => panes.drain(|key, start, end, slot| {
                let folded =
                    store.fold(table.bytes(key), Bounds { start, end }, slot, accumulators);
                accumulators.free(&[slot]);
                table.release(key);
                folded
            }),
            Bundle::Session(sessions) => sessions.drain(|flushed| {
                let key = table.bytes(flushed.key).to_vec();
                let written = write_sessions(store, &key, &flushed, accumulators);
                for session in flushed.sessions {
                    accumulators.free(&[session.slot]);
                    table.release(flushed.key);
                }
                table.release(flushed.key);
                written
            }),
        }
    }

    /// Emits every window the watermark has passed, in order of end.
    fn fire(&mut self, out: &mut Output) -> Result<()> {
        let due = self.watermark;
        let keys = self.keys.as_ref();
        let table = &mut self.table;
        let accumulators = &mut self.accumulators;
        let output = &mut self.output;
        let mut emit = |key, bounds: Bounds, slot, table: &mut KeyTable, accumulators: &mut _| {
            output.push(key, bounds.start, bounds.end, slot);
            if output.is_full() {
                output.flush(keys, table, accumulators, out)?;
            }
            Ok::<_, OperatorError>(())
        };
        match (&mut self.windows, &mut self.bundle) {
            (Windows::Store(store), _) => {
                while let Some(fired) = store.pop_due(due, accumulators)? {
                    let key = table.intern(&fired.key);
                    table.retain(key);
                    emit(key, fired.bounds, fired.slot, table, accumulators)?;
                }
            }
            (Windows::Heap(_), Bundle::Aligned(_, panes)) => {
                while let Some(index) = panes.pop_due(|end| is_late(end, due)) {
                    let pane = panes.get(index);
                    let bounds = Bounds {
                        start: pane.start,
                        end: pane.end,
                    };
                    for &(key, slot) in &pane.entries {
                        emit(key, bounds, slot, table, accumulators)?;
                    }
                    panes.recycle(index);
                }
            }
            (Windows::Heap(_), Bundle::Session(sessions)) => {
                while let Some(fired) = sessions.pop_due(due) {
                    emit(fired.key, fired.bounds, fired.slot, table, accumulators)?;
                }
            }
        }
        output.flush(keys, table, accumulators, out)
    }

    /// Whether the store holds a window the watermark has passed.
    fn store_due(&mut self) -> bool {
        match &mut self.windows {
            Windows::Store(store) => store.next_due().is_some_and(|due| due <= self.watermark),
            Windows::Heap(_) => false,
        }
    }

    fn process_aligned<'k>(&mut self, times: &[Timestamp], key_of: impl Fn(usize) -> &'k [u8]) {
        let Bundle::Aligned(aligned, panes) = &mut self.bundle else {
            unreachable!("called for aligned windows")
        };
        let watermark = self.watermark;
        let table = &mut self.table;
        let accumulators = &mut self.accumulators;
        let updates = &mut self.updates;
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

    fn process_sessions<'k>(
        &mut self,
        times: &[Timestamp],
        key_of: impl Fn(usize) -> &'k [u8],
    ) -> Result<()> {
        let Bundle::Session(sessions) = &mut self.bundle else {
            unreachable!("called for session windows")
        };
        let table = &mut self.table;
        let accumulators = &mut self.accumulators;
        let mut store = match &mut self.windows {
            Windows::Store(store) => Some(store),
            Windows::Heap(_) => None,
        };
        for (row, &ts) in times.iter().enumerate() {
            let bytes = key_of(row);
            let key = table.intern(bytes);
            if let Some(store) = store.as_mut()
                && !sessions.is_loaded(key)
            {
                sessions.load(key, table, |add| {
                    store.visit(bytes, |bounds, value| {
                        let slot = accumulators.decode_new(value).map_err(|reason| {
                            OperatorError::invalid(format!(
                                "corrupt session [{}, {}): {reason}",
                                bounds.start, bounds.end
                            ))
                        })?;
                        add(bounds, slot);
                        Ok(())
                    })
                })?;
            }
            let placed = sessions.add(
                key,
                ts,
                self.watermark,
                table,
                accumulators,
                &mut self.updates,
            );
            match placed {
                Some(slot) => self.updates.push(row, slot),
                None => self.late_records_dropped += 1,
            }
        }
        sessions.index_changes();
        Ok(())
    }
}

impl Operator for WindowOperator {
    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        check_restored_assigner(ctx.state.restored.as_ref(), self.assigner)?;
        self.watermark = restored_watermark(ctx.state.restored.as_ref())?;
        self.windows = match ctx.state.backend {
            StateBackendKind::Heap => {
                let heap = HeapWindows::of(ctx);
                heap.restore(
                    &ctx.state,
                    self.watermark,
                    &mut self.bundle,
                    &mut self.table,
                    &mut self.accumulators,
                )?;
                Windows::Heap(heap)
            }
            StateBackendKind::RocksDb => {
                let size = match self.assigner {
                    WindowAssigner::Tumbling { size_ms }
                    | WindowAssigner::Hopping { size_ms, .. } => Some(size_ms),
                    WindowAssigner::Session { .. } => None,
                };
                Windows::Store(WindowStore::open(&ctx.state, ctx.max_parallelism, size)?)
            }
        };
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = event_time_column(batch.column(self.time_column), &self.time_name)?;
        let rows = self.keys.as_ref().map(|k| k.encode(&batch)).transpose()?;
        let key_of = |row: usize| rows.as_ref().map_or(&[][..], |r| r.row(row).data());
        self.updates.start(&self.aggregates, &batch)?;
        let placed = match self.bundle {
            Bundle::Aligned(..) => {
                self.process_aligned(&times, key_of);
                Ok(())
            }
            Bundle::Session(_) => self.process_sessions(&times, key_of),
        };
        self.updates.finish(&mut self.accumulators);
        placed?;
        if matches!(self.windows, Windows::Store(_))
            && self.accumulators.live() >= self.bundle_windows
        {
            self.flush()?;
        }
        Ok(())
    }

    fn process_watermark(&mut self, watermark: Timestamp, out: &mut Output) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let bundle_due = self
            .bundle
            .earliest_end()
            .is_some_and(|end| is_late(end, self.watermark));
        let due = match self.windows {
            Windows::Heap(_) => bundle_due,
            Windows::Store(_) => {
                if bundle_due {
                    self.flush()?;
                }
                self.store_due()
            }
        };
        if due {
            self.fire(out)?;
        }
        out.watermark(watermark);
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot> {
        // The watermark goes along so that a replayed record that was late before the
        // checkpoint is late again, instead of reopening a window that has already fired.
        let entries = vec![
            watermark_entry(self.watermark),
            assigner_entry(self.assigner),
        ];
        let keyed = if checkpoint_id == FINAL_CHECKPOINT {
            None
        } else {
            self.flush()?;
            Some(match &mut self.windows {
                Windows::Heap(heap) => {
                    heap.snapshot(checkpoint_id, &self.bundle, &self.table, &self.accumulators)?
                }
                Windows::Store(store) => store.snapshot(checkpoint_id)?,
            })
        };
        Ok(OperatorSnapshot { entries, keyed })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        match &mut self.windows {
            Windows::Heap(heap) => heap.release_older_than(checkpoint_id),
            Windows::Store(store) => store.notify_checkpoint_complete(checkpoint_id),
        }
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            late_records_dropped: self.late_records_dropped,
        }
    }
}

/// Replaces a key's stored sessions with its sessions in the bundle.
fn write_sessions(
    store: &mut WindowStore,
    key: &[u8],
    flushed: &Flushed<'_>,
    accumulators: &Accumulators,
) -> Result<()> {
    for stored in flushed.stored {
        if !flushed.sessions.iter().any(|s| s.bounds == *stored) {
            store.remove(key, *stored)?;
        }
    }
    for session in flushed.sessions {
        let is_new = !flushed.stored.contains(&session.bounds);
        store.put(key, session.bounds, session.slot, accumulators, is_new)?;
    }
    Ok(())
}
