//! A small, fast, seedable random number generator (SplitMix64).
//!
//! Generators here draw a fresh `Rng` per event or per row, seeded from `(seed, index)`, instead of
//! sharing one sequential generator: then every value is a pure function of its index, so parallel
//! subtasks, re-reads and tests all see the same data whatever the split layout. SplitMix64 mixes
//! well enough that consecutive indices give unrelated streams. (Shared with `datagen`.)

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finalizer: a bijective mix of all 64 bits.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// The generator of item `index` of the stream `seed`.
    pub(crate) fn for_index(seed: u64, index: u64) -> Self {
        Rng {
            state: mix64(seed ^ mix64(index.wrapping_add(GAMMA))),
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// Uniform in `[0, bound)`; `bound` must be positive. Lemire's multiply-shift: no division,
    /// and a bias below 2^-64 × bound, far under anything a benchmark could notice.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut seen = [0u32; 7];
        for i in 0..7000 {
            let v = Rng::for_index(1, i).below(7);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }

    #[test]
    fn same_index_same_stream() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_index(9, 5).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_index(9, 5).next_u64(),
            Rng::for_index(9, 6).next_u64()
        );
        assert_ne!(
            Rng::for_index(9, 5).next_u64(),
            Rng::for_index(8, 5).next_u64()
        );
    }
}
