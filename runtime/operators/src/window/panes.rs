use std::collections::BTreeMap;

use spate_api::Timestamp;

use super::aggregate::Accumulators;
use super::assigner::is_late;
use crate::keyed::hash::FastMap;
use crate::keyed::table::KeyTable;

/// Tumbling and hopping windows in memory: all open windows (heap backend), or those touched
/// since the last flush to the store with partial accumulators. One pane per window, indexed by
/// end so a watermark visits only the windows it fires.
///
/// Finding a key's slot in a window goes through a small per-key ring of its recent windows
/// rather than a hash map per window: the ring of a key is one or two cache lines, where a hash
/// probe into each of a record's windows would miss the cache once there are many keys.
#[derive(Debug)]
pub(crate) struct Panes {
    slide: i64,
    /// Ring entries per key: the windows a record falls into, plus one for the window after,
    /// which opens while out-of-order records still reach the earlier ones (at most
    /// `MAX_RING`).
    ring: usize,
    /// `ring` (end, slot) entries per key id; the window ending at `end` uses entry
    /// `(end / slide) mod ring`. An entry whose window is past the watermark is free.
    recent: Vec<(Timestamp, u32)>,
    by_end: BTreeMap<Timestamp, usize>,
    panes: Vec<Pane>,
    /// Fired panes, kept for their allocations.
    free: Vec<usize>,
    /// The last pane looked up: consecutive records mostly share windows.
    last: Option<(Timestamp, usize)>,
}

/// Caps the ring's memory per key; windows sliding more finely share ring entries and take
/// the overflow path.
const MAX_RING: usize = 16;

/// No window: the ring entry of a key not seen yet.
const VACANT: (Timestamp, u32) = (Timestamp::MIN, 0);

#[derive(Debug, Default)]
pub(crate) struct Pane {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    /// (key, slot) in order of first record, so output order does not depend on hashing.
    pub(crate) entries: Vec<(u32, u32)>,
    /// Slots of keys whose ring entry another open window holds, which takes a watermark
    /// lagging `ring` slides behind the data.
    overflow: FastMap<u32, u32>,
}

impl Panes {
    pub(crate) fn new(size: i64, slide: i64) -> Self {
        let windows_per_record = ((size - 1) / slide + 1) as usize;
        Panes {
            slide,
            ring: (windows_per_record + 1).min(MAX_RING),
            recent: Vec::new(),
            by_end: BTreeMap::new(),
            panes: Vec::new(),
            free: Vec::new(),
            last: None,
        }
    }

    /// The accumulator slot of `key` in window `[start, end)`, which must not be late at
    /// `watermark`; created on first use.
    #[inline]
    pub(crate) fn slot(
        &mut self,
        start: Timestamp,
        end: Timestamp,
        key: u32,
        watermark: Timestamp,
        accumulators: &mut Accumulators,
        keys: &mut KeyTable,
    ) -> u32 {
        let at = key as usize * self.ring
            + end.div_euclid(self.slide).rem_euclid(self.ring as i64) as usize;
        if self.recent.len() <= at {
            self.recent.resize((key as usize + 1) * self.ring, VACANT);
        }
        let (held_end, held_slot) = self.recent[at];
        if held_end == end {
            return held_slot;
        }
        let index = self.pane(start, end);
        let pane = &mut self.panes[index];
        if let Some(&slot) = pane.overflow.get(&key) {
            return slot;
        }
        let slot = accumulators.alloc();
        keys.retain(key);
        pane.entries.push((key, slot));
        if held_end == VACANT.0 || is_late(held_end, watermark) {
            self.recent[at] = (end, slot);
        } else {
            pane.overflow.insert(key, slot);
        }
        slot
    }

    fn pane(&mut self, start: Timestamp, end: Timestamp) -> usize {
        if let Some((last_end, index)) = self.last
            && last_end == end
        {
            return index;
        }
        let index = match self.by_end.get(&end) {
            Some(&index) => index,
            None => {
                let index = match self.free.pop() {
                    Some(index) => index,
                    None => {
                        self.panes.push(Pane::default());
                        self.panes.len() - 1
                    }
                };
                let pane = &mut self.panes[index];
                pane.start = start;
                pane.end = end;
                self.by_end.insert(end, index);
                index
            }
        };
        self.last = Some((end, index));
        index
    }

    /// Takes the window with the earliest end if `due(end)`; hand it back with `recycle`.
    pub(crate) fn pop_due(&mut self, due: impl Fn(Timestamp) -> bool) -> Option<usize> {
        let (&end, _) = self.by_end.first_key_value()?;
        if !due(end) {
            return None;
        }
        let (_, index) = self.by_end.pop_first().expect("checked above");
        if self.last.is_some_and(|(_, last)| last == index) {
            self.last = None;
        }
        Some(index)
    }

    pub(crate) fn get(&self, index: usize) -> &Pane {
        &self.panes[index]
    }

    pub(crate) fn recycle(&mut self, index: usize) {
        let pane = &mut self.panes[index];
        pane.entries.clear();
        pane.overflow.clear();
        self.free.push(index);
    }

    /// Every (key, start, end, slot) of an open window, windows in order of end.
    pub(crate) fn open_windows(&self) -> impl Iterator<Item = (u32, Timestamp, Timestamp, u32)> {
        self.by_end.values().flat_map(|&index| {
            let pane = &self.panes[index];
            pane.entries
                .iter()
                .map(|&(key, slot)| (key, pane.start, pane.end, slot))
        })
    }

    /// The earliest end of an open window.
    pub(crate) fn earliest_end(&self) -> Option<Timestamp> {
        self.by_end.first_key_value().map(|(&end, _)| end)
    }

    /// Hands every open window to `flush` as (key, start, end, slot), windows in order of end,
    /// and empties the panes. `flush` takes over the window's key reference and slot.
    pub(crate) fn drain<E>(
        &mut self,
        mut flush: impl FnMut(u32, Timestamp, Timestamp, u32) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut outcome = Ok(());
        while let Some((_, index)) = self.by_end.pop_first() {
            let pane = &self.panes[index];
            for &(key, slot) in &pane.entries {
                if outcome.is_ok() {
                    outcome = flush(key, pane.start, pane.end, slot);
                }
            }
            self.recycle(index);
        }
        self.recent.clear();
        self.last = None;
        outcome
    }
}
