use std::sync::Arc;

use super::hash::FastMap;

/// Interns row-format keys as dense `u32` ids, so state can be indexed by id and a key's bytes
/// are stored once however many windows or timers refer to it.
///
/// Every holder of an id (a window's state, a timer, a pending output row) owns one reference.
/// A key nobody references is kept for a while, because keys usually come back (the next window
/// of the same key), and re-creating it would allocate per record. Such idle keys are forgotten
/// in sweeps once they outnumber the referenced ones, so keys that went quiet for good hold at
/// most about as much memory as the live ones.
#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    ids: FastMap<Arc<[u8]>, u32>,
    keys: Vec<Entry>,
    free: Vec<u32>,
    /// Keys whose last reference went, possibly re-referenced since, or listed more than once.
    idle: Vec<u32>,
}

/// Idle keys kept regardless of how few keys are live.
const MIN_IDLE: usize = 1024;

#[derive(Debug)]
struct Entry {
    /// `None` while the id is free.
    bytes: Option<Arc<[u8]>>,
    refs: u32,
}

impl KeyTable {
    pub(crate) fn get(&self, key: &[u8]) -> Option<u32> {
        self.ids.get(key).copied()
    }

    /// The id of `key`, creating it if unknown. The caller must `retain` it before anything
    /// else releases keys, or a sweep may forget it.
    pub(crate) fn intern(&mut self, key: &[u8]) -> u32 {
        if let Some(id) = self.get(key) {
            return id;
        }
        let bytes: Arc<[u8]> = Arc::from(key);
        let entry = Entry {
            bytes: Some(bytes.clone()),
            refs: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.keys[id as usize] = entry;
                id
            }
            None => {
                self.keys.push(entry);
                u32::try_from(self.keys.len() - 1).expect("fewer than 2^32 live keys")
            }
        };
        self.ids.insert(bytes, id);
        id
    }

    pub(crate) fn retain(&mut self, id: u32) {
        self.keys[id as usize].refs += 1;
    }

    pub(crate) fn release(&mut self, id: u32) {
        let entry = &mut self.keys[id as usize];
        entry.refs -= 1;
        if entry.refs == 0 {
            self.idle.push(id);
            // `idle` may over-count (revived or repeated ids), which only sweeps earlier.
            if self.idle.len() > MIN_IDLE.max(self.ids.len() / 2) {
                self.sweep();
            }
        }
    }

    /// Forgets the keys still unreferenced; their ids are reused.
    fn sweep(&mut self) {
        for id in self.idle.drain(..) {
            let entry = &mut self.keys[id as usize];
            if entry.refs == 0
                && let Some(bytes) = entry.bytes.take()
            {
                self.ids.remove(&bytes);
                self.free.push(id);
            }
        }
    }

    pub(crate) fn bytes(&self, id: u32) -> &[u8] {
        self.keys[id as usize]
            .bytes
            .as_deref()
            .expect("id of a live key")
    }

    /// Keys currently referenced.
    #[cfg(test)]
    pub(crate) fn referenced(&self) -> usize {
        self.keys.iter().filter(|e| e.refs > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_while_referenced_and_ids_are_reused() {
        let mut table = KeyTable::default();
        let a = table.intern(b"a");
        table.retain(a);
        table.retain(a);
        let b = table.intern(b"b");
        table.retain(b);
        assert_eq!(table.intern(b"a"), a);
        assert_eq!(table.bytes(b), b"b");

        table.release(a);
        table.release(a);
        assert_eq!(table.referenced(), 1);
        assert_eq!(table.get(b"a"), Some(a), "an idle key is kept for a while");
        table.retain(a);
        table.release(a);

        table.sweep();
        assert_eq!(table.get(b"a"), None);
        let c = table.intern(b"c");
        assert_eq!(c, a, "freed ids are reused");
        assert_eq!(table.bytes(c), b"c");
        assert_eq!(table.get(b"b"), Some(b));
    }

    #[test]
    fn idle_keys_are_swept_once_they_outnumber_live_ones() {
        let mut table = KeyTable::default();
        for i in 0..100_000u32 {
            let id = table.intern(&i.to_be_bytes());
            table.retain(id);
            table.release(id);
        }
        assert!(table.ids.len() <= 2 * MIN_IDLE + 1, "{}", table.ids.len());
        assert!(table.keys.len() <= 2 * MIN_IDLE + 1);
    }
}
