//! The job's recent source rate, from the record totals the heartbeats carry.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the rate looks: long enough to smooth heartbeat jitter, short enough to show a
/// change within a status poll or two.
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Throughput {
    /// (when, records the sources emitted in all by then), oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl Throughput {
    pub fn record(&mut self, now: Instant, total: u64) {
        // Totals start again from zero when tasks restart: the older samples no longer compare.
        if self.samples.back().is_some_and(|&(_, last)| total < last) {
            self.samples.clear();
        }
        self.samples.push_back((now, total));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(at, _)| now.duration_since(at) >= WINDOW)
        {
            self.samples.pop_front();
        }
    }

    pub fn per_second(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(first_at, first)), Some(&(last_at, last))) if last_at > first_at => {
                (last - first) as f64 / last_at.duration_since(first_at).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window_and_restart_after_a_failover() {
        let start = Instant::now();
        let mut rate = Throughput::default();
        assert_eq!(rate.per_second(), 0.0, "no rate from a single sample");
        for second in 0..30u64 {
            rate.record(start + Duration::from_secs(second), second * 1000);
        }
        assert_eq!(rate.per_second(), 1000.0);
        assert!(
            rate.samples.len() <= 12,
            "old samples are dropped: {}",
            rate.samples.len()
        );
        rate.record(start + Duration::from_secs(30), 10);
        rate.record(start + Duration::from_secs(32), 510);
        assert_eq!(rate.per_second(), 250.0, "counted again from the restart");
    }
}
