//! Which event numbers a reader emits, in order: those of its splits (split `k` of `n` owns the
//! numbers ≡ k mod n) whose kind is the reader's table.
//!
//! Both the split residues and the kinds repeat, so the whole pattern repeats every
//! `lcm(n, total proportion)` events. The schedule keeps one period's matching offsets and finds
//! the m-th event number, or counts those below a bound, without scanning the stream.

use super::{NexmarkConfig, NexmarkTable};

/// Bounds the memory of one period's offsets.
const MAX_PERIOD: u64 = 1 << 24;

pub(crate) struct Schedule {
    period: u64,
    /// Offsets within a period of the event numbers emitted, ascending.
    hits: Vec<u64>,
    splits: u64,
    /// The split numbers owned, ascending (as `parse_splits` gives them).
    owned: Vec<u64>,
}

impl Schedule {
    pub(crate) fn new(
        config: &NexmarkConfig,
        table: NexmarkTable,
        owned: Vec<u64>,
        splits: u64,
    ) -> Result<Self, String> {
        let total = config.total_proportion();
        let period = splits / gcd(splits, total) * total;
        if period > MAX_PERIOD {
            return Err(format!(
                "{splits} splits with proportions adding up to {total} repeat only every \
                 {period} events; use fewer splits"
            ));
        }
        let hits = (0..period)
            .filter(|&e| owned.binary_search(&(e % splits)).is_ok() && config.kind(e) == table)
            .collect();
        Ok(Schedule {
            period,
            hits,
            splits,
            owned,
        })
    }

    /// True when the reader would never emit a row, however long the stream.
    pub(crate) fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// The event numbers of rows `from`, `from + 1`, ... (the schedule must not be empty).
    pub(crate) fn events_from(&self, from: u64) -> impl Iterator<Item = u64> + '_ {
        let per = self.hits.len() as u64;
        let (mut base, mut i) = (from / per * self.period, (from % per) as usize);
        std::iter::from_fn(move || {
            let event = base + self.hits[i];
            i += 1;
            if i == self.hits.len() {
                i = 0;
                base += self.period;
            }
            Some(event)
        })
    }

    /// How many rows have event numbers below `event`.
    pub(crate) fn rows_below(&self, event: u64) -> u64 {
        let within = event % self.period;
        event / self.period * self.hits.len() as u64
            + self.hits.partition_point(|&h| h < within) as u64
    }

    /// The event number of the reader's `k`-th event of any kind (counting from 0), for the
    /// rate limit: the rate counts the whole stream's events, not just the table's rows.
    pub(crate) fn own_event(&self, k: u64) -> u64 {
        let per = self.owned.len() as u64;
        k / per * self.splits + self.owned[(k % per) as usize]
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_rows_without_scanning() {
        let config = NexmarkConfig::default();
        let s = Schedule::new(&config, NexmarkTable::Auction, vec![1, 3], 4).unwrap();
        let want: Vec<u64> = (0..10_000u64)
            .filter(|e| [1, 3].contains(&(e % 4)) && config.kind(*e) == NexmarkTable::Auction)
            .collect();
        let got: Vec<u64> = s.events_from(0).take(want.len()).collect();
        assert_eq!(got, want);
        assert_eq!(s.events_from(7).next(), Some(want[7]));
        assert_eq!(s.rows_below(10_000), want.len() as u64);
        assert_eq!(s.own_event(0), 1);
        assert_eq!(s.own_event(3), 7);
    }

    #[test]
    fn a_split_may_never_see_a_kind() {
        // With 50 splits, split 7 holds events 7, 57, ...: always bids, never people.
        let config = NexmarkConfig::default();
        assert!(
            Schedule::new(&config, NexmarkTable::Person, vec![7], 50)
                .unwrap()
                .is_empty()
        );
        assert!(
            !Schedule::new(&config, NexmarkTable::Bid, vec![7], 50)
                .unwrap()
                .is_empty()
        );
    }
}
