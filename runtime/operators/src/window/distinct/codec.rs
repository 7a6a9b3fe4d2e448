//! The value set of one COUNT(DISTINCT) slot in a snapshot: the number of values, then each
//! value (a word, or a length-prefixed row-format byte string).

use super::{ByteSet, Distinct, Set, WordSet, hash, stored};
use crate::window::bytes::{Malformed, Reader, put_bytes, put_u64};

impl Distinct<WordSet> {
    pub(crate) fn encode(&self, slot: usize, out: &mut Vec<u8>) {
        let set = &self.sets[slot];
        put_u64(out, set.len() as u64);
        for &word in set {
            put_u64(out, word);
        }
    }

    pub(crate) fn decode(
        &mut self,
        slot: usize,
        reader: &mut Reader<'_>,
        what: &str,
    ) -> Result<(), Malformed> {
        let count = reader.count(8, what)?;
        let mut set = WordSet::with_capacity_and_hasher(count, Default::default());
        for _ in 0..count {
            set.insert(reader.u64(what)?);
        }
        self.sets[slot] = set;
        Ok(())
    }
}

impl Distinct<ByteSet> {
    pub(crate) fn encode(&self, slot: usize, out: &mut Vec<u8>) {
        let set = &self.sets[slot];
        put_u64(out, Set::len(set) as u64);
        for &at in set.by_hash.values() {
            put_bytes(out, stored(&set.bytes, at));
        }
    }

    pub(crate) fn decode(
        &mut self,
        slot: usize,
        reader: &mut Reader<'_>,
        what: &str,
    ) -> Result<(), Malformed> {
        let count = reader.count(8, what)?;
        let mut set = ByteSet::default();
        for _ in 0..count {
            let value = reader.bytes(what)?;
            // The same hash as values read from batches get, so later records find these.
            set.insert(value, hash(value));
        }
        self.sets[slot] = set;
        Ok(())
    }
}
