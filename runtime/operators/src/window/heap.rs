//! Windows on the heap backend stay in the operator's own structures (panes, sessions, columnar
//! accumulators): a generic backend would serialize every window's accumulators on each update,
//! which costs most of the operator's throughput. A checkpoint writes them in the heap backend's
//! snapshot format, as the entries and timers a `WindowStore` would hold, so checkpoints of
//! either kind restore into the other.

use std::path::PathBuf;

use spate_api::{
    KeyGroupRange, KeyedSnapshot, OperatorContext, OperatorError, Result, StateContext, Timestamp,
};
use spate_state::{HeapSnapshotBuilder, Key, for_each_restored_map_entry};

use super::aggregate::Accumulators;
use super::operator::Bundle;
use super::store::{self, Bounds};
use crate::keyed::table::KeyTable;

/// Where an operator instance writes snapshots, and which key groups it owns.
#[derive(Debug, Clone)]
pub(super) struct HeapWindows {
    dir: PathBuf,
    key_groups: KeyGroupRange,
    max_parallelism: u32,
}

impl HeapWindows {
    pub(super) fn of(ctx: &OperatorContext) -> Self {
        HeapWindows {
            dir: ctx.state.dir.clone(),
            key_groups: ctx.state.key_groups,
            max_parallelism: ctx.max_parallelism,
        }
    }

    /// Writes the open windows for checkpoint `id`.
    pub(super) fn snapshot(
        &self,
        id: u64,
        bundle: &Bundle,
        table: &KeyTable,
        accumulators: &Accumulators,
    ) -> Result<KeyedSnapshot> {
        let mut builder =
            HeapSnapshotBuilder::create(&self.dir, id, self.key_groups, self.max_parallelism)?;
        let open: Box<dyn Iterator<Item = (u32, Bounds, u32)>> = match bundle {
            Bundle::Aligned(_, panes) => Box::new(
                panes
                    .open_windows()
                    .map(|(key, start, end, slot)| (key, Bounds { start, end }, slot)),
            ),
            Bundle::Session(sessions) => Box::new(sessions.open_windows()),
        };
        let mut value = Vec::new();
        for (key, bounds, slot) in open {
            let key = Key::new(table.bytes(key), self.max_parallelism);
            value.clear();
            accumulators.encode(slot, &mut value);
            builder.map_entry(store::STATE, key, &store::encode(bounds), &value)?;
            builder.event_time_timer(key, bounds.end - 1)?;
        }
        Ok(builder.finish()?)
    }

    /// Reopens the windows of this instance's key groups from the snapshots `state` is restored
    /// from, whichever backend wrote them.
    pub(super) fn restore(
        &self,
        state: &StateContext,
        watermark: Timestamp,
        bundle: &mut Bundle,
        table: &mut KeyTable,
        accumulators: &mut Accumulators,
    ) -> Result<()> {
        let mut restore = |key: Key<'_>, window: &[u8], value: &[u8]| -> Result<()> {
            let bounds = store::decode(window).map_err(OperatorError::invalid)?;
            let id = table.intern(key.bytes());
            let slot = match bundle {
                Bundle::Aligned(_, panes) => {
                    panes.slot(bounds.start, bounds.end, id, watermark, accumulators, table)
                }
                Bundle::Session(sessions) => {
                    let slot = accumulators.alloc();
                    table.retain(id);
                    sessions.restore(id, bounds, slot);
                    slot
                }
            };
            accumulators.decode(slot, value).map_err(|reason| {
                OperatorError::invalid(format!(
                    "cannot restore window [{}, {}) in key group {}: {reason}",
                    bounds.start,
                    bounds.end,
                    key.group()
                ))
            })
        };
        let mut failed = None;
        for_each_restored_map_entry(
            state,
            self.max_parallelism,
            store::STATE,
            &mut |key, window, value| {
                if failed.is_none() {
                    failed = restore(key, window, value).err();
                }
                Ok(())
            },
        )?;
        if let Bundle::Session(sessions) = bundle {
            sessions.index_changes();
        }
        failed.map_or(Ok(()), Err)
    }

    pub(super) fn release_older_than(&self, checkpoint_id: u64) -> Result<()> {
        Ok(spate_state::release_older_than(&self.dir, checkpoint_id)?)
    }
}
