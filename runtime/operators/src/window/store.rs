//! Open windows in the keyed state backend: one map state whose entries are (key, window) →
//! accumulators, and one event-time timer per window at its last millisecond. The backend
//! snapshots both at checkpoints (incrementally on RocksDB) and moves them with their key groups
//! when the job is rescaled.

use spate_api::{KeyedSnapshot, OperatorError, Result, StateContext, Timestamp};
use spate_state::{Flow, Key, KeyedStateBackend, StateId, StateKind, TimeDomain, open_backend};

use super::aggregate::Accumulators;

/// The map state holding the windows.
pub(super) const STATE: &str = "windows";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bounds {
    pub(super) start: Timestamp,
    pub(super) end: Timestamp,
}

pub(super) struct WindowStore {
    backend: Box<dyn KeyedStateBackend>,
    windows: StateId,
    /// The size of aligned windows; `None` for sessions.
    size: Option<i64>,
    /// Reused for encoding accumulators.
    value: Vec<u8>,
}

impl std::fmt::Debug for WindowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStore")
            .field("backend", &self.backend.kind())
            .finish_non_exhaustive()
    }
}

/// A window fired from the store: its accumulators are in `slot`, which the caller now owns.
#[derive(Debug)]
pub(super) struct Fired {
    pub(super) key: Vec<u8>,
    pub(super) bounds: Bounds,
    pub(super) slot: u32,
}

impl WindowStore {
    /// `size`: that of aligned windows, `None` for sessions.
    pub(super) fn open(
        ctx: &StateContext,
        max_parallelism: u32,
        size: Option<i64>,
    ) -> Result<Self> {
        let mut backend = open_backend(ctx, max_parallelism)?;
        let windows = backend.register(&STATE.into(), StateKind::Map)?;
        Ok(WindowStore {
            backend,
            windows,
            size,
            value: Vec::new(),
        })
    }

    /// Folds the partial accumulators in `slot` into the stored window, creating it (and its
    /// timer) if there is none.
    pub(super) fn fold(
        &mut self,
        key: &[u8],
        bounds: Bounds,
        slot: u32,
        accumulators: &mut Accumulators,
    ) -> Result<()> {
        let key = self.backend.key(key);
        let timers = self.backend.timers();
        // A stored window has a timer, kept in memory: a new window costs no read of the
        // backend (on RocksDB a miss looks through every sorted run).
        if timers.register(TimeDomain::EventTime, key, bounds.end - 1)? {
            return self.write(key, bounds, slot, accumulators);
        }
        let window = encode(bounds);
        if let Some(bytes) = self.backend.map_get(self.windows, key, &window)? {
            let held = accumulators
                .decode_new(bytes)
                .map_err(|reason| corrupt(key, Some(bounds), reason))?;
            accumulators.merge(slot, held);
            accumulators.free(&[held]);
        }
        self.write(key, bounds, slot, accumulators)
    }

    /// Stores the whole state of a window; `is_new` registers its timer.
    pub(super) fn put(
        &mut self,
        key: &[u8],
        bounds: Bounds,
        slot: u32,
        accumulators: &Accumulators,
        is_new: bool,
    ) -> Result<()> {
        let key = self.backend.key(key);
        if is_new {
            self.backend
                .timers()
                .register(TimeDomain::EventTime, key, bounds.end - 1)?;
        }
        self.write(key, bounds, slot, accumulators)
    }

    fn write(
        &mut self,
        key: Key<'_>,
        bounds: Bounds,
        slot: u32,
        accumulators: &Accumulators,
    ) -> Result<()> {
        self.value.clear();
        accumulators.encode(slot, &mut self.value);
        self.backend
            .map_put(self.windows, key, &encode(bounds), &self.value)?;
        Ok(())
    }

    /// Removes a window and its timer.
    pub(super) fn remove(&mut self, key: &[u8], bounds: Bounds) -> Result<()> {
        let key = self.backend.key(key);
        self.backend
            .timers()
            .delete(TimeDomain::EventTime, key, bounds.end - 1);
        self.backend
            .map_remove(self.windows, key, &encode(bounds))?;
        Ok(())
    }

    /// Calls `found` with every stored window of `key` and its encoded accumulators, in order
    /// of end.
    pub(super) fn visit(
        &mut self,
        key: &[u8],
        mut found: impl FnMut(Bounds, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let key = self.backend.key(key);
        let mut failed = None;
        self.backend
            .map_visit(self.windows, key, &mut |window, value| {
                let outcome = decode(window)
                    .map_err(|reason| corrupt(key, None, reason))
                    .and_then(|bounds| found(bounds, value));
                Ok(match outcome {
                    Ok(()) => Flow::Continue(()),
                    Err(error) => {
                        failed = Some(error);
                        Flow::Break(())
                    }
                })
            })?;
        failed.map_or(Ok(()), Err)
    }

    /// The earliest end of a stored window, less one: the watermark that fires it.
    pub(super) fn next_due(&mut self) -> Option<Timestamp> {
        self.backend.timers().next_timestamp(TimeDomain::EventTime)
    }

    /// Takes the window with the earliest end if the watermark has reached it, its accumulators
    /// decoded into a fresh slot.
    pub(super) fn pop_due(
        &mut self,
        watermark: Timestamp,
        accumulators: &mut Accumulators,
    ) -> Result<Option<Fired>> {
        let Some(timer) = self
            .backend
            .timers()
            .pop_due(TimeDomain::EventTime, watermark)
        else {
            return Ok(None);
        };
        let end = timer.timestamp + 1;
        let key = self.backend.key(&timer.key.bytes);
        let window = match self.size {
            // Aligned windows end `size` after they start (unless the end saturated).
            Some(size) if end < Timestamp::MAX => {
                let bounds = Bounds {
                    start: end - size,
                    end,
                };
                let value = self.backend.map_get(self.windows, key, &encode(bounds))?;
                value.map(|value| (bounds, value.to_vec()))
            }
            _ => self.first_window(key)?,
        };
        let (bounds, value) = window.filter(|(bounds, _)| bounds.end == end).ok_or_else(|| {
            OperatorError::invalid(format!(
                "window state of key group {} has a timer at {} without a window ending at {end}",
                key.group(),
                timer.timestamp
            ))
        })?;
        let slot = accumulators
            .decode_new(&value)
            .map_err(|reason| corrupt(key, Some(bounds), reason))?;
        self.backend
            .map_remove(self.windows, key, &encode(bounds))?;
        Ok(Some(Fired {
            key: timer.key.bytes,
            bounds,
            slot,
        }))
    }

    /// The stored window of `key` with the earliest end. A key's timers fire in order of end,
    /// so when one fires its window is that one.
    fn first_window(&mut self, key: Key<'_>) -> Result<Option<(Bounds, Vec<u8>)>> {
        let mut first = None;
        self.backend
            .map_visit(self.windows, key, &mut |bytes, value| {
                first = Some((decode(bytes), value.to_vec()));
                Ok(Flow::Break(()))
            })?;
        first
            .map(|(bounds, value)| Ok((bounds.map_err(|r| corrupt(key, None, r))?, value)))
            .transpose()
    }

    /// Windows stored.
    #[cfg(test)]
    pub(super) fn open_windows(&mut self) -> usize {
        self.backend.timers().len(TimeDomain::EventTime)
    }

    pub(super) fn snapshot(&mut self, checkpoint_id: u64) -> Result<KeyedSnapshot> {
        Ok(self.backend.snapshot(checkpoint_id)?)
    }

    pub(super) fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        Ok(self.backend.notify_checkpoint_complete(checkpoint_id)?)
    }
}

/// Window bounds as a map key that sorts by end, then start: each an i64 with its sign bit
/// flipped, big-endian.
pub(super) fn encode(bounds: Bounds) -> [u8; 16] {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&sortable(bounds.end));
    bytes[8..].copy_from_slice(&sortable(bounds.start));
    bytes
}

fn sortable(time: Timestamp) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn decode(bytes: &[u8]) -> Result<Bounds, String> {
    let (end, start) = bytes
        .split_first_chunk::<8>()
        .and_then(|(end, rest)| Some((end, <&[u8; 8]>::try_from(rest).ok()?)))
        .ok_or_else(|| format!("window bounds have {} bytes, expected 16", bytes.len()))?;
    let time = |b: &[u8; 8]| (u64::from_be_bytes(*b) ^ (1 << 63)) as Timestamp;
    Ok(Bounds {
        start: time(start),
        end: time(end),
    })
}

fn corrupt(key: Key<'_>, bounds: Option<Bounds>, reason: impl std::fmt::Display) -> OperatorError {
    let window = bounds.map_or(String::new(), |b| format!(" [{}, {})", b.start, b.end));
    OperatorError::invalid(format!(
        "corrupt window state{window} in key group {}: {reason}",
        key.group()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_bounds_sort_by_end_then_start_and_decode_back() {
        let cases = [
            (i64::MIN, i64::MIN + 1),
            (-20, -10),
            (-15, -10),
            (-1, 0),
            (0, 10),
            (5, 10),
            (i64::MAX - 3, i64::MAX),
        ];
        let mut encoded: Vec<_> = cases
            .iter()
            .map(|&(start, end)| encode(Bounds { start, end }))
            .collect();
        let before = encoded.clone();
        encoded.sort();
        assert_eq!(encoded, before);
        for (bytes, &(start, end)) in encoded.iter().zip(&cases) {
            assert_eq!(decode(bytes).unwrap(), Bounds { start, end });
        }
        assert!(decode(&[0; 15]).unwrap_err().contains("15 bytes"));
    }
}
