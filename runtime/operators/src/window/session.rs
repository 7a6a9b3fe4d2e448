use std::cmp::Reverse;
use std::collections::BinaryHeap;

use spate_api::Timestamp;

use super::aggregate::{Accumulators, Updates};
use super::assigner::is_late;
use crate::keyed::table::KeyTable;

/// Session windows per key, merged as Flink's `MergingWindowSet` merges them: a record opens
/// `[ts, ts + gap)`, and every session that window intersects (bounds inclusive, so sessions
/// exactly `gap` apart join) merges with it into one.
#[derive(Debug)]
pub(crate) struct Sessions {
    gap: i64,
    /// Open sessions of each key, indexed by key id.
    per_key: Vec<KeySessions>,
    /// (end, key) of every open session, so a watermark visits only what it fires. Entries of
    /// sessions that since grew or merged away are left in place and skipped when popped: their
    /// ends are behind the session's current end, so the watermark soon passes them, and a
    /// push is much cheaper than finding and removing the old entry.
    index: BinaryHeap<Reverse<(Timestamp, u32)>>,
    /// Keys whose sessions changed in the current batch; their index entries are brought up to
    /// date once per batch rather than once per record.
    dirty: Vec<u32>,
}

#[derive(Debug, Default)]
struct KeySessions {
    sessions: Vec<Session>,
    dirty: bool,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    start: Timestamp,
    end: Timestamp,
    slot: u32,
    /// The end under which the session is in the index.
    indexed_end: Option<Timestamp>,
}

/// A session the watermark has passed.
#[derive(Debug)]
pub(crate) struct Fired {
    pub(crate) key: u32,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) slot: u32,
}

impl Sessions {
    pub(crate) fn new(gap: i64) -> Self {
        Sessions {
            gap,
            per_key: Vec::new(),
            index: BinaryHeap::new(),
            dirty: Vec::new(),
        }
    }

    /// Places a record: returns the slot of the session it belongs to, or `None` if it is late
    /// (its window merges with no open session and is already past the watermark).
    /// Call `index_changes` after the batch.
    pub(crate) fn add(
        &mut self,
        key_bytes: &[u8],
        ts: Timestamp,
        watermark: Timestamp,
        keys: &mut KeyTable,
        accumulators: &mut Accumulators,
        updates: &mut Updates,
    ) -> Option<u32> {
        let end = ts.saturating_add(self.gap);
        let key = match keys.get(key_bytes) {
            Some(key) => key,
            None if is_late(end, watermark) => return None,
            None => keys.intern(key_bytes),
        };
        if self.per_key.len() <= key as usize {
            self.per_key
                .resize_with(key as usize + 1, KeySessions::default);
        }
        let sessions = &mut self.per_key[key as usize].sessions;
        let intersects = |s: &Session| s.start <= end && s.end >= ts;
        let Some(first) = sessions.iter().position(intersects) else {
            if is_late(end, watermark) {
                return None;
            }
            let slot = accumulators.alloc();
            keys.retain(key);
            sessions.push(Session {
                start: ts,
                end,
                slot,
                indexed_end: None,
            });
            self.touch(key);
            return Some(slot);
        };
        let mut merged = Session {
            start: sessions[first].start.min(ts),
            end: sessions[first].end.max(end),
            ..sessions[first]
        };
        if sessions[first + 1..].iter().any(intersects) {
            // Slots are about to be merged and freed; records already routed to them this batch
            // must be folded in first.
            updates.apply(accumulators);
            for i in (first + 1..sessions.len()).rev() {
                if !intersects(&sessions[i]) {
                    continue;
                }
                let other = sessions.swap_remove(i);
                merged.start = merged.start.min(other.start);
                merged.end = merged.end.max(other.end);
                accumulators.merge(merged.slot, other.slot);
                accumulators.free(&[other.slot]);
                keys.release(key);
            }
        }
        self.per_key[key as usize].sessions[first] = merged;
        self.touch(key);
        Some(merged.slot)
    }

    fn touch(&mut self, key: u32) {
        let entry = &mut self.per_key[key as usize];
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Brings the index up to date with the sessions changed since the last call.
    pub(crate) fn index_changes(&mut self) {
        for key in self.dirty.drain(..) {
            let entry = &mut self.per_key[key as usize];
            entry.dirty = false;
            for session in &mut entry.sessions {
                if session.indexed_end != Some(session.end) {
                    self.index.push(Reverse((session.end, key)));
                    session.indexed_end = Some(session.end);
                }
            }
        }
    }

    /// Removes and returns the session with the earliest end if the watermark has passed it.
    pub(crate) fn pop_due(&mut self, watermark: Timestamp) -> Option<Fired> {
        debug_assert!(self.dirty.is_empty(), "index_changes after every batch");
        while let Some(&Reverse((end, key))) = self.index.peek() {
            if !is_late(end, watermark) {
                return None;
            }
            self.index.pop();
            // A stale entry matches no session: sessions of a key are disjoint, so none other
            // than the one that grew past `end` can end there while that one is open.
            let sessions = &mut self.per_key[key as usize].sessions;
            if let Some(at) = sessions.iter().position(|s| s.end == end) {
                let session = sessions.swap_remove(at);
                return Some(Fired {
                    key,
                    start: session.start,
                    end: session.end,
                    slot: session.slot,
                });
            }
        }
        None
    }

    /// Every (key, start, end, slot) of an open session.
    pub(crate) fn open_windows(&self) -> impl Iterator<Item = (u32, Timestamp, Timestamp, u32)> {
        self.per_key.iter().zip(0u32..).flat_map(|(entry, key)| {
            entry
                .sessions
                .iter()
                .map(move |s| (key, s.start, s.end, s.slot))
        })
    }

    /// Reopens a session of `key` from a snapshot; the caller has interned and retained `key`
    /// and allocated `slot` for it. Call `index_changes` after the last.
    pub(crate) fn restore(&mut self, key: u32, start: Timestamp, end: Timestamp, slot: u32) {
        if self.per_key.len() <= key as usize {
            self.per_key
                .resize_with(key as usize + 1, KeySessions::default);
        }
        self.per_key[key as usize].sessions.push(Session {
            start,
            end,
            slot,
            indexed_end: None,
        });
        self.touch(key);
    }

    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.per_key.iter().map(|k| k.sessions.len()).sum()
    }
}
