//! Restart strategies (Flink's `restart-strategy.*`): how long to wait before a restart, and when
//! to give up and fail the job.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Which tasks restart after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverScope {
    /// The pipelined regions of the failed tasks; the rest of the job keeps running.
    Region,
    /// Every task of the job.
    Full,
}

impl FailoverScope {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "region" => Ok(FailoverScope::Region),
            "full" => Ok(FailoverScope::Full),
            other => Err(format!(
                "unknown failover strategy '{other}' (region, full)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum RestartStrategy {
    /// The first failure fails the job.
    #[default]
    None,
    /// Up to `attempts` restarts, each after `delay`.
    FixedDelay { attempts: u32, delay: Duration },
    /// Up to `attempts` restarts; the delay starts at `initial` and grows by `multiplier` up to
    /// `max`, and falls back to `initial` after `reset_after` without a failure.
    ExponentialDelay {
        attempts: u32,
        initial: Duration,
        max: Duration,
        multiplier: f64,
        reset_after: Duration,
    },
    /// Restarts after `delay` while at most `max_failures` failures fall within `interval`.
    FailureRate {
        max_failures: u32,
        interval: Duration,
        delay: Duration,
    },
}

impl RestartStrategy {
    /// A strategy from its name and the command line's numbers: `attempts` is the restart limit
    /// (failures per interval for failure-rate), `delay` the (initial) delay.
    pub fn parse(
        name: &str,
        attempts: u32,
        delay: Duration,
        max_delay: Duration,
        interval: Duration,
    ) -> Result<Self, String> {
        match name {
            "none" => Ok(RestartStrategy::None),
            "fixed-delay" => Ok(RestartStrategy::FixedDelay { attempts, delay }),
            "exponential-delay" => Ok(RestartStrategy::ExponentialDelay {
                attempts,
                initial: delay,
                max: max_delay.max(delay),
                multiplier: 2.0,
                reset_after: interval,
            }),
            "failure-rate" => Ok(RestartStrategy::FailureRate {
                max_failures: attempts,
                interval,
                delay,
            }),
            other => Err(format!(
                "unknown restart strategy '{other}' (none, fixed-delay, exponential-delay, failure-rate)"
            )),
        }
    }
}

/// A strategy applied to the failures of one job.
#[derive(Debug)]
pub struct RestartBackoff {
    strategy: RestartStrategy,
    restarts: u32,
    next_delay: Duration,
    last_failure: Option<Instant>,
    recent: VecDeque<Instant>,
}

impl RestartBackoff {
    pub fn new(strategy: RestartStrategy) -> Self {
        RestartBackoff {
            strategy,
            restarts: 0,
            next_delay: Duration::ZERO,
            last_failure: None,
            recent: VecDeque::new(),
        }
    }

    /// A failure happened at `now`: the delay before restarting, or why the job must fail.
    pub fn on_failure(&mut self, now: Instant) -> Result<Duration, String> {
        let since_last = self.last_failure.map(|last| now.duration_since(last));
        self.last_failure = Some(now);
        let delay = match &self.strategy {
            RestartStrategy::None => return Err("the restart strategy is 'none'".into()),
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.restarts >= *attempts {
                    return Err(format!("all {attempts} restarts used (fixed-delay)"));
                }
                *delay
            }
            RestartStrategy::ExponentialDelay {
                attempts,
                initial,
                max,
                multiplier,
                reset_after,
            } => {
                if self.restarts >= *attempts {
                    return Err(format!("all {attempts} restarts used (exponential-delay)"));
                }
                self.next_delay = match since_last {
                    Some(quiet) if quiet < *reset_after && !self.next_delay.is_zero() => {
                        self.next_delay.mul_f64(*multiplier).min(*max)
                    }
                    _ => *initial,
                };
                self.next_delay
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.recent.push_back(now);
                while self
                    .recent
                    .front()
                    .is_some_and(|&t| now.duration_since(t) > *interval)
                {
                    self.recent.pop_front();
                }
                if self.recent.len() as u32 > *max_failures {
                    return Err(format!(
                        "{} failures within {interval:?} (failure-rate allows {max_failures})",
                        self.recent.len()
                    ));
                }
                *delay
            }
        };
        self.restarts += 1;
        Ok(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fixed_delay_allows_its_attempts_then_names_the_limit() {
        let mut backoff = RestartBackoff::new(RestartStrategy::FixedDelay {
            attempts: 2,
            delay: 7 * MS,
        });
        let now = Instant::now();
        assert_eq!(backoff.on_failure(now), Ok(7 * MS));
        assert_eq!(backoff.on_failure(now), Ok(7 * MS));
        let err = backoff.on_failure(now).unwrap_err();
        assert!(err.contains("all 2 restarts"), "{err}");
    }

    #[test]
    fn exponential_delay_doubles_up_to_its_cap_and_resets_after_a_quiet_spell() {
        let mut backoff = RestartBackoff::new(RestartStrategy::ExponentialDelay {
            attempts: 10,
            initial: 100 * MS,
            max: 300 * MS,
            multiplier: 2.0,
            reset_after: 1000 * MS,
        });
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..4)
            .map(|i| backoff.on_failure(t0 + i * 10 * MS).unwrap())
            .collect();
        assert_eq!(delays, vec![100 * MS, 200 * MS, 300 * MS, 300 * MS]);
        assert_eq!(backoff.on_failure(t0 + 5000 * MS), Ok(100 * MS));
    }

    #[test]
    fn failure_rate_counts_only_failures_inside_its_interval() {
        let mut backoff = RestartBackoff::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: 1000 * MS,
            delay: 5 * MS,
        });
        let t0 = Instant::now();
        assert!(backoff.on_failure(t0).is_ok());
        assert!(backoff.on_failure(t0 + 600 * MS).is_ok());
        assert!(
            backoff.on_failure(t0 + 1200 * MS).is_ok(),
            "the first fell out"
        );
        let err = backoff.on_failure(t0 + 1300 * MS).unwrap_err();
        assert!(err.contains("3 failures"), "{err}");
    }

    #[test]
    fn none_never_restarts_and_names_unknown_strategies() {
        let mut backoff = RestartBackoff::new(RestartStrategy::None);
        assert!(backoff.on_failure(Instant::now()).is_err());
        let err = RestartStrategy::parse("sometimes", 1, MS, MS, MS).unwrap_err();
        assert!(err.contains("'sometimes'"), "{err}");
        assert!(FailoverScope::parse("half").is_err());
    }
}
