//! Time-to-live of state values, measured in processing time from a [`Clock`] the backend is
//! opened with (tests pass a [`ManualClock`] instead of sleeping).

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use spate_api::{Timestamp, now_millis};

/// Processing time in milliseconds since the Unix epoch. Shared with RocksDB's background
/// compaction threads, hence `Send + Sync`.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now_millis()
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(now)))
    }

    pub fn set(&self, now: Timestamp) {
        self.0.store(now, Ordering::Release);
    }

    pub fn advance(&self, by: Duration) {
        let millis = Timestamp::try_from(by.as_millis()).unwrap_or(Timestamp::MAX);
        self.0.fetch_add(millis, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::Acquire)
    }
}

/// How long a state value lives after it was last written (or read, with
/// [`Ttl::refresh_on_read`]). An expired value is invisible at once; its storage is reclaimed
/// lazily: when iteration meets it, when a heap snapshot skips it, when RocksDB compacts it.
/// Each map entry and each list element expires on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    millis: i64,
    refresh_on_read: bool,
}

impl Ttl {
    pub fn new(time_to_live: Duration) -> Self {
        Ttl {
            millis: i64::try_from(time_to_live.as_millis()).unwrap_or(i64::MAX),
            refresh_on_read: false,
        }
    }

    /// Reads also restart the time-to-live (at the cost of a write per read on RocksDB).
    pub fn refresh_on_read(mut self) -> Self {
        self.refresh_on_read = true;
        self
    }

    pub fn time_to_live(&self) -> Duration {
        Duration::from_millis(self.millis.unsigned_abs())
    }

    pub fn refreshes_on_read(&self) -> bool {
        self.refresh_on_read
    }

    pub(crate) fn expires_at(&self, now: Timestamp) -> Timestamp {
        now.saturating_add(self.millis)
    }
}

/// The expiry to write with a value of a state with `ttl`.
pub(crate) fn expiry(ttl: Option<Ttl>, clock: &dyn Clock) -> Option<Timestamp> {
    ttl.map(|ttl| ttl.expires_at(clock.now()))
}

/// The expiry a read moves a value to, if the state refreshes on read.
pub(crate) fn read_refresh(ttl: Option<Ttl>, clock: &dyn Clock) -> Option<Timestamp> {
    ttl.filter(Ttl::refreshes_on_read)
        .map(|ttl| ttl.expires_at(clock.now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_by_clones() {
        let clock = ManualClock::new(10);
        let other = clock.clone();
        other.advance(Duration::from_millis(5));
        assert_eq!(clock.now(), 15);
        clock.set(3);
        assert_eq!(other.now(), 3);
    }

    #[test]
    fn expiry_saturates() {
        let ttl = Ttl::new(Duration::from_secs(u64::MAX));
        assert_eq!(ttl.expires_at(5), i64::MAX);
        assert_eq!(Ttl::new(Duration::from_millis(7)).expires_at(5), 12);
    }
}
