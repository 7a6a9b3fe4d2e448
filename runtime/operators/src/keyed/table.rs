use std::sync::Arc;

use super::hash::FastMap;

/// Interns row-format keys as dense `u32` ids, so state can be indexed by id and a key's bytes
/// are stored once however many windows or timers refer to it.
///
/// Every holder of an id (a window's state, a timer, a pending output row) owns one reference;
/// when the last is released the key is forgotten and its id reused, so state for keys that went
/// quiet does not accumulate.
#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    ids: FastMap<Arc<[u8]>, u32>,
    keys: Vec<Entry>,
    free: Vec<u32>,
}

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

    /// The id of `key`, creating it with no references if unknown; the caller must `retain` it
    /// before the next call that could release keys.
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
            let bytes = entry.bytes.take().expect("a referenced key has bytes");
            self.ids.remove(&bytes);
            self.free.push(id);
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
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
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
        assert_eq!(table.get(b"a"), Some(a));
        table.release(a);
        assert_eq!(table.get(b"a"), None);
        assert_eq!(table.len(), 1);

        let c = table.intern(b"c");
        assert_eq!(c, a, "freed ids are reused");
        assert_eq!(table.bytes(c), b"c");
        assert_eq!(table.get(b"b"), Some(b));
    }
}
