use std::collections::BTreeMap;

use spate_api::Timestamp;

use super::aggregate::Accumulators;
use crate::keyed::hash::FastMap;
use crate::keyed::table::KeyTable;

/// State of tumbling and hopping windows: one pane per window, indexed by end so a watermark
/// visits only the windows it fires.
#[derive(Debug, Default)]
pub(crate) struct Panes {
    by_end: BTreeMap<Timestamp, usize>,
    panes: Vec<Pane>,
    /// Fired panes, kept for their allocations.
    free: Vec<usize>,
    /// The last pane looked up: consecutive records mostly share windows.
    last: Option<(Timestamp, usize)>,
}

#[derive(Debug, Default)]
pub(crate) struct Pane {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    slots: FastMap<u32, u32>,
    /// (key, slot) in order of first record, so output order does not depend on hashing.
    pub(crate) entries: Vec<(u32, u32)>,
}

impl Panes {
    /// The accumulator slot of `key` in window `[start, end)`, created on first use.
    #[inline]
    pub(crate) fn slot(
        &mut self,
        start: Timestamp,
        end: Timestamp,
        key: u32,
        accumulators: &mut Accumulators,
        keys: &mut KeyTable,
    ) -> u32 {
        let index = match self.last {
            Some((last_end, index)) if last_end == end => index,
            _ => {
                let index = self.pane(start, end);
                self.last = Some((end, index));
                index
            }
        };
        let pane = &mut self.panes[index];
        *pane.slots.entry(key).or_insert_with(|| {
            let slot = accumulators.alloc();
            keys.retain(key);
            pane.entries.push((key, slot));
            slot
        })
    }

    fn pane(&mut self, start: Timestamp, end: Timestamp) -> usize {
        if let Some(&index) = self.by_end.get(&end) {
            return index;
        }
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
        pane.slots.clear();
        pane.entries.clear();
        self.free.push(index);
    }

    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.by_end.len()
    }
}
