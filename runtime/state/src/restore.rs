//! Reading the keyed snapshots an instance is restored from, whatever backend wrote them: both
//! store the same key layout and value form, so restoring across backends is a plain copy.

use std::borrow::Cow;
use std::sync::Arc;

use spate_api::{KeyGroupRange, KeyedSnapshot, StateBackendKind, StateContext};

use crate::error::{Result, StateError};
use crate::heap::STATE_FILE;
use crate::heap::snapshot::{HeapSnapshotReader, SnapshotEntry};
use crate::key::MAX_KEY_GROUPS;
use crate::timers::{TIMERS_FILE, TimerService};
use crate::ttl::Clock;
use crate::value::{self, Cleaned};

/// Checks that an instance's context fits its max parallelism.
pub(crate) fn check_context(ctx: &StateContext, max_parallelism: u32) -> Result<()> {
    if max_parallelism == 0 || max_parallelism > MAX_KEY_GROUPS {
        return Err(StateError::Invalid(format!(
            "max parallelism {max_parallelism} is not between 1 and {MAX_KEY_GROUPS}"
        )));
    }
    let range = ctx.key_groups;
    if range.start > range.end || range.end > max_parallelism {
        return Err(StateError::Invalid(format!(
            "key groups {}..{} do not fit max parallelism {max_parallelism}",
            range.start, range.end
        )));
    }
    Ok(())
}

/// The restored snapshots holding key groups of this instance.
pub(crate) fn overlapping(ctx: &StateContext) -> Vec<&KeyedSnapshot> {
    ctx.restored
        .iter()
        .flat_map(|restored| &restored.keyed)
        .filter(|snapshot| snapshot.key_groups.intersects(&ctx.key_groups))
        .collect()
}

/// Adds the timers of `snapshot` that belong to `timers`' key groups.
pub(crate) fn restore_timers(
    snapshot: &KeyedSnapshot,
    timers: &mut TimerService,
    max_parallelism: u32,
) -> Result<()> {
    timers.restore(&snapshot.dir.join(TIMERS_FILE), max_parallelism)
}

/// Calls `apply` with every entry of `snapshot` in `range` that is live now, with expired list
/// elements already removed from its value.
pub(crate) fn for_each_entry(
    snapshot: &KeyedSnapshot,
    range: KeyGroupRange,
    max_parallelism: u32,
    clock: &Arc<dyn Clock>,
    apply: &mut dyn FnMut(SnapshotEntry<'_>) -> Result<()>,
) -> Result<()> {
    let now = clock.now();
    let mut apply_live = |entry: SnapshotEntry<'_>, path: &std::path::Path| -> Result<()> {
        let cleaned = value::clean(entry.value, now, None).map_err(|reason| {
            StateError::corrupt(path, format!("state '{}': {reason}", entry.state))
        })?;
        let value = match cleaned {
            Cleaned::Keep => Cow::Borrowed(entry.value),
            Cleaned::Rewrite(value) => Cow::Owned(value),
            Cleaned::Drop => return Ok(()),
        };
        apply(SnapshotEntry {
            value: &value,
            ..entry
        })
    };
    match snapshot.backend {
        StateBackendKind::Heap => {
            let path = snapshot.dir.join(STATE_FILE);
            let mut reader = HeapSnapshotReader::open(&path)?;
            reader.expect_max_parallelism(max_parallelism)?;
            while let Some(entry) = reader.next_entry()? {
                if range.contains(entry.key_group) {
                    apply_live(entry, &path)?;
                }
            }
            Ok(())
        }
        StateBackendKind::RocksDb => {
            crate::rocks::for_each_stored_entry(&snapshot.dir, range, clock, &mut |entry| {
                apply_live(entry, &snapshot.dir)
            })
        }
    }
}
