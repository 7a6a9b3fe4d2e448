use std::collections::BTreeSet;

use spate_api::Timestamp;

use super::TimeDomain;
use super::table::KeyTable;

/// Timers of all keys, per domain, ordered by (timestamp, key). A set, so registering the same
/// (key, timestamp, domain) twice leaves one timer, as in Flink.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    keys: KeyTable,
    event: BTreeSet<(Timestamp, u32)>,
    processing: BTreeSet<(Timestamp, u32)>,
}

impl Timers {
    fn queue(&mut self, domain: TimeDomain) -> &mut BTreeSet<(Timestamp, u32)> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    pub(crate) fn register(&mut self, domain: TimeDomain, key: &[u8], timestamp: Timestamp) {
        let id = self.keys.intern(key);
        if self.queue(domain).insert((timestamp, id)) {
            self.keys.retain(id);
        }
    }

    pub(crate) fn delete(&mut self, domain: TimeDomain, key: &[u8], timestamp: Timestamp) {
        if let Some(id) = self.keys.get(key)
            && self.queue(domain).remove(&(timestamp, id))
        {
            self.keys.release(id);
        }
    }

    /// Takes the earliest timer due at `time`. Its key stays interned until `fired`, so the
    /// timer's callback may register timers for it without re-creating the key.
    pub(crate) fn pop_due(
        &mut self,
        domain: TimeDomain,
        time: Timestamp,
    ) -> Option<(Timestamp, u32)> {
        let queue = self.queue(domain);
        match queue.first() {
            Some(&(timestamp, _)) if timestamp <= time => queue.pop_first(),
            _ => None,
        }
    }

    pub(crate) fn fired(&mut self, id: u32) {
        self.keys.release(id);
    }

    pub(crate) fn key(&self, id: u32) -> &[u8] {
        self.keys.bytes(id)
    }

    pub(crate) fn next(&self, domain: TimeDomain) -> Option<Timestamp> {
        let queue = match domain {
            TimeDomain::EventTime => &self.event,
            TimeDomain::ProcessingTime => &self.processing,
        };
        queue.first().map(|&(timestamp, _)| timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_deduplicated_per_domain_and_fire_in_time_order() {
        let mut timers = Timers::default();
        timers.register(TimeDomain::EventTime, b"b", 20);
        timers.register(TimeDomain::EventTime, b"a", 20);
        timers.register(TimeDomain::EventTime, b"a", 20);
        timers.register(TimeDomain::EventTime, b"a", 10);
        timers.register(TimeDomain::ProcessingTime, b"a", 10);
        timers.delete(TimeDomain::EventTime, b"b", 20);
        timers.delete(TimeDomain::EventTime, b"zzz", 20);

        let mut fired = Vec::new();
        while let Some((timestamp, id)) = timers.pop_due(TimeDomain::EventTime, 20) {
            fired.push((timestamp, timers.key(id).to_vec()));
            timers.fired(id);
        }
        assert_eq!(fired, vec![(10, b"a".to_vec()), (20, b"a".to_vec())]);
        assert_eq!(timers.next(TimeDomain::EventTime), None);
        assert_eq!(timers.next(TimeDomain::ProcessingTime), Some(10));
        assert_eq!(timers.keys.referenced(), 1, "only a still has a timer");
    }
}
