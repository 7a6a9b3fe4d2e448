use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map for keyed state on the per-record path. Keys there are short row-format byte
/// strings or dense ids that never come from an untrusted peer, so the DoS resistance of SipHash
/// buys nothing and costs a large share of the per-record budget.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A word-at-a-time hash built on the folded multiply (as in foldhash and aHash): the high half
/// of the 128-bit product folds back onto the low half, so every input bit reaches the low bits
/// hashbrown picks buckets with. Plain FxHash only carries bits upwards, and row-format keys are
/// big-endian, so their varying bytes would never reach the bucket index.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        let product = ((self.hash ^ word) as u128) * (SEED as u128);
        self.hash = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("chunk of 8")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn spreads_dense_ids_and_short_keys_over_buckets() {
        let build = BuildHasherDefault::<FastHasher>::default();
        let buckets = |hashes: Vec<u64>| {
            let mut seen = std::collections::HashSet::new();
            hashes.into_iter().filter(|h| seen.insert(h & 1023)).count()
        };
        // Uniform hashing fills about 1 - 1/e of the buckets, 647.
        let ids = (0u32..1024).map(|i| build.hash_one(i)).collect();
        assert!(buckets(ids) > 580);
        // Row-format BIGINT keys: a validity byte, then the big-endian value with its sign
        // flipped.
        let keys = (0i64..1024)
            .map(|i| {
                let mut key = vec![1u8];
                key.extend_from_slice(&(i ^ i64::MIN).to_be_bytes());
                build.hash_one(key.as_slice())
            })
            .collect();
        assert!(buckets(keys) > 580);
    }
}
