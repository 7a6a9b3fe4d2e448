use std::cmp::Reverse;
use std::collections::BinaryHeap;

use spate_api::Timestamp;

use super::aggregate::{Accumulators, Updates};
use super::assigner::is_late;
use super::store::Bounds;
use crate::keyed::table::KeyTable;

/// Session windows per key in memory, merged as Flink's `MergingWindowSet` merges them: a record
/// opens `[ts, ts + gap)`, and every session that window intersects (bounds inclusive, so
/// sessions exactly `gap` apart join) merges with it into one.
///
/// On the heap backend these are all open sessions, fired from here. In front of a store they
/// are the sessions of the keys touched since the last flush: a key's stored sessions are loaded
/// whole before its first record (`load`), so merging and lateness see every open session of
/// the key, and a flush (`drain`) writes the key's sessions back.
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
    /// Keys loaded from a store since the last flush; each holds a reference on its key.
    loaded: Vec<u32>,
}

#[derive(Debug, Default)]
struct KeySessions {
    sessions: Vec<Session>,
    dirty: bool,
    loaded: bool,
    /// The sessions as the store held them when the key was loaded.
    stored: Vec<Bounds>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    pub(crate) bounds: Bounds,
    pub(crate) slot: u32,
    /// The end under which the session is in the index.
    indexed_end: Option<Timestamp>,
}

/// A session the watermark has passed.
#[derive(Debug)]
pub(crate) struct Fired {
    pub(crate) key: u32,
    pub(crate) bounds: Bounds,
    pub(crate) slot: u32,
}

/// A key's sessions at a flush.
#[derive(Debug)]
pub(crate) struct Flushed<'a> {
    pub(crate) key: u32,
    pub(crate) sessions: &'a [Session],
    pub(crate) stored: &'a [Bounds],
}

impl Sessions {
    pub(crate) fn new(gap: i64) -> Self {
        Sessions {
            gap,
            per_key: Vec::new(),
            index: BinaryHeap::new(),
            dirty: Vec::new(),
            loaded: Vec::new(),
        }
    }

    fn entry(&mut self, key: u32) -> &mut KeySessions {
        if self.per_key.len() <= key as usize {
            self.per_key
                .resize_with(key as usize + 1, KeySessions::default);
        }
        &mut self.per_key[key as usize]
    }

    pub(crate) fn is_loaded(&self, key: u32) -> bool {
        self.per_key.get(key as usize).is_some_and(|k| k.loaded)
    }

    /// Marks `key` (interned, not loaded yet) as loaded from a store, taking a reference on it.
    /// `stored` hands each stored session to the callback it gets, its accumulators decoded
    /// into a fresh slot.
    pub(crate) fn load<E>(
        &mut self,
        key: u32,
        keys: &mut KeyTable,
        stored: impl FnOnce(&mut dyn FnMut(Bounds, u32)) -> Result<(), E>,
    ) -> Result<(), E> {
        keys.retain(key);
        self.loaded.push(key);
        self.entry(key).loaded = true;
        let mut found = Vec::new();
        let outcome = stored(&mut |bounds, slot| found.push((bounds, slot)));
        for (bounds, slot) in found {
            keys.retain(key);
            self.entry(key).stored.push(bounds);
            self.restore(key, bounds, slot);
        }
        outcome
    }

    /// Places a record: returns the slot of the session it belongs to, or `None` if it is late
    /// (its window merges with no open session and is already past the watermark). Call
    /// `index_changes` after the batch.
    pub(crate) fn add(
        &mut self,
        key: u32,
        ts: Timestamp,
        watermark: Timestamp,
        keys: &mut KeyTable,
        accumulators: &mut Accumulators,
        updates: &mut Updates,
    ) -> Option<u32> {
        let end = ts.saturating_add(self.gap);
        let sessions = &mut self.entry(key).sessions;
        let intersects = |s: &Session| s.bounds.start <= end && s.bounds.end >= ts;
        let Some(first) = sessions.iter().position(intersects) else {
            if is_late(end, watermark) {
                return None;
            }
            let slot = accumulators.alloc();
            keys.retain(key);
            sessions.push(Session {
                bounds: Bounds { start: ts, end },
                slot,
                indexed_end: None,
            });
            self.touch(key);
            return Some(slot);
        };
        let mut merged = sessions[first];
        merged.bounds.start = merged.bounds.start.min(ts);
        merged.bounds.end = merged.bounds.end.max(end);
        if sessions[first + 1..].iter().any(intersects) {
            // Slots are about to be merged and freed; records already routed to them this batch
            // must be folded in first.
            updates.apply(accumulators);
            for i in (first + 1..sessions.len()).rev() {
                if !intersects(&sessions[i]) {
                    continue;
                }
                let other = sessions.swap_remove(i);
                merged.bounds.start = merged.bounds.start.min(other.bounds.start);
                merged.bounds.end = merged.bounds.end.max(other.bounds.end);
                accumulators.merge(merged.slot, other.slot);
                accumulators.free(&[other.slot]);
                keys.release(key);
            }
        }
        sessions[first] = merged;
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
                if session.indexed_end != Some(session.bounds.end) {
                    self.index.push(Reverse((session.bounds.end, key)));
                    session.indexed_end = Some(session.bounds.end);
                }
            }
        }
    }

    /// At most the earliest end of an open session (stale index entries are earlier).
    pub(crate) fn earliest_end(&self) -> Option<Timestamp> {
        self.index.peek().map(|Reverse((end, _))| *end)
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
            if let Some(at) = sessions.iter().position(|s| s.bounds.end == end) {
                let session = sessions.swap_remove(at);
                return Some(Fired {
                    key,
                    bounds: session.bounds,
                    slot: session.slot,
                });
            }
        }
        None
    }

    /// Every (key, bounds, slot) of an open session.
    pub(crate) fn open_windows(&self) -> impl Iterator<Item = (u32, Bounds, u32)> {
        self.per_key
            .iter()
            .zip(0u32..)
            .flat_map(|(entry, key)| entry.sessions.iter().map(move |s| (key, s.bounds, s.slot)))
    }

    /// Reopens a session of `key` from a snapshot or a store; the caller has interned and
    /// retained `key` and decoded the accumulators into `slot`. Call `index_changes` after the
    /// last.
    pub(crate) fn restore(&mut self, key: u32, bounds: Bounds, slot: u32) {
        self.entry(key).sessions.push(Session {
            bounds,
            slot,
            indexed_end: None,
        });
        self.touch(key);
    }

    /// Hands each loaded key's sessions to `flush` and forgets them. `flush` takes over the
    /// sessions' key references and slots, and the load's reference on the key.
    pub(crate) fn drain<E>(
        &mut self,
        mut flush: impl FnMut(Flushed<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut outcome = Ok(());
        for key in self.loaded.drain(..) {
            let entry = &mut self.per_key[key as usize];
            let flushed = flush(Flushed {
                key,
                sessions: &entry.sessions,
                stored: &entry.stored,
            });
            outcome = outcome.and(flushed);
            *entry = KeySessions::default();
        }
        self.index.clear();
        self.dirty.clear();
        outcome
    }
}
