//! The generator's parameters and the arithmetic of the Nexmark event stream: which kind event
//! `n` is, which person and auction ids exist at that point, and when it happened.

use super::NexmarkTable;

/// Ids start here so that queries find matches even on tiny streams (as in the spec).
pub const FIRST_PERSON_ID: i64 = 1000;
pub const FIRST_AUCTION_ID: i64 = 1000;
pub const FIRST_CATEGORY_ID: i64 = 10;
pub const NUM_CATEGORIES: u64 = 5;

/// A fixed default event time of event 0 (2023-11-14T22:13:20Z), so runs are reproducible; the
/// spec defaults to the wall clock instead.
pub const DEFAULT_BASE_TIME_MS: i64 = 1_700_000_000_000;

/// A configuration the generator cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{setting}' {detail}")]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkConfig {
    /// Events of the whole stream (all kinds); `None` generates forever.
    pub events: Option<u64>,
    /// Events per second of event time (the spec's `firstEventRate`).
    pub first_event_rate: u64,
    /// The spec's `numEventGenerators`: multiplies the inter-event delay.
    pub num_event_generators: u64,
    pub seed: u64,
    /// Event time of event 0, in milliseconds since the epoch.
    pub base_time_ms: i64,
    /// Rows per batch a reader emits.
    pub batch_size: usize,
    /// Wall-clock limit in events per second per subtask; `None`: as fast as downstream takes.
    pub rate: Option<u64>,
    /// Number of splits; `None`: one per subtask.
    pub splits: Option<u32>,
    /// Out of every `person + auction + bid` events, the first `person` are people, the next
    /// `auction` auctions and the rest bids.
    pub person_proportion: u64,
    pub auction_proportion: u64,
    pub bid_proportion: u64,
    /// Average event sizes in bytes; `extra` pads each event to about this.
    pub avg_person_byte_size: u64,
    pub avg_auction_byte_size: u64,
    pub avg_bid_byte_size: u64,
    /// A bid goes to a hot auction with probability 1 − 1/ratio (likewise hot bidders of bids
    /// and hot sellers of auctions).
    pub hot_auction_ratio: u64,
    pub hot_bidders_ratio: u64,
    pub hot_sellers_ratio: u64,
    /// Bids pick among the last this many auctions (plus a few not yet created).
    pub num_in_flight_auctions: u64,
    /// Bids and auctions pick among the last this many people (plus a few not yet created).
    pub num_active_people: u64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            events: None,
            first_event_rate: 10_000,
            num_event_generators: 1,
            seed: 0,
            base_time_ms: DEFAULT_BASE_TIME_MS,
            batch_size: 4096,
            rate: None,
            splits: None,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            avg_person_byte_size: 200,
            avg_auction_byte_size: 500,
            avg_bid_byte_size: 100,
            hot_auction_ratio: 2,
            hot_bidders_ratio: 4,
            hot_sellers_ratio: 4,
            num_in_flight_auctions: 100,
            num_active_people: 1000,
        }
    }
}

impl NexmarkConfig {
    /// Refuses settings the arithmetic cannot work with, naming the setting (by its table
    /// option where it has one).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let positive = [
            ("first-event-rate", self.first_event_rate),
            ("num-event-generators", self.num_event_generators),
            ("batch-size", self.batch_size as u64),
            ("person.proportion", self.person_proportion),
            ("auction.proportion", self.auction_proportion),
            ("bid.proportion", self.bid_proportion),
            ("bid.hot-ratio.auctions", self.hot_auction_ratio),
            ("bid.hot-ratio.bidders", self.hot_bidders_ratio),
            ("auction.hot-ratio.sellers", self.hot_sellers_ratio),
            ("num_in_flight_auctions", self.num_in_flight_auctions),
            ("num_active_people", self.num_active_people),
            ("rate", self.rate.unwrap_or(1)),
            ("splits", self.splits.unwrap_or(1) as u64),
        ];
        if let Some(&(setting, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(InvalidSetting {
                setting,
                detail: "must be at least 1".into(),
            });
        }
        // Keeps a split's period (see the reader's schedule) small.
        if self.total_proportion() > 10_000 {
            return Err(InvalidSetting {
                setting: "bid.proportion",
                detail: "the three proportions must add up to at most 10000".into(),
            });
        }
        Ok(())
    }

    pub(crate) fn total_proportion(&self) -> u64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// The kind of event `n`.
    pub fn kind(&self, n: u64) -> NexmarkTable {
        let offset = n % self.total_proportion();
        if offset < self.person_proportion {
            NexmarkTable::Person
        } else if offset < self.person_proportion + self.auction_proportion {
            NexmarkTable::Auction
        } else {
            NexmarkTable::Bid
        }
    }

    /// Microseconds of event time between consecutive events.
    pub fn inter_event_delay_us(&self) -> f64 {
        1_000_000.0 / self.first_event_rate as f64 * self.num_event_generators as f64
    }

    /// Event time of event `n`, in milliseconds (the spec's `timestampForEvent`).
    pub fn event_time(&self, n: u64) -> i64 {
        self.base_time_ms + (n as f64 * self.inter_event_delay_us()) as i64 / 1000
    }

    /// The newest person id (base 0) that exists at event `n`: the person of event `n` itself if
    /// it is one.
    pub(crate) fn last_base0_person_id(&self, n: u64) -> u64 {
        let epoch = n / self.total_proportion();
        let offset = (n % self.total_proportion()).min(self.person_proportion - 1);
        epoch * self.person_proportion + offset
    }

    /// The newest auction id (base 0) that exists at event `n`: the auction of event `n` itself
    /// if it is one. Before the first auction this is −1.
    pub(crate) fn last_base0_auction_id(&self, n: u64) -> i64 {
        let epoch = (n / self.total_proportion()) as i64;
        let offset = (n % self.total_proportion()) as i64;
        let (person, auction) = (
            self.person_proportion as i64,
            self.auction_proportion as i64,
        );
        if offset < person {
            // A person: the last auction is the last one of the previous epoch.
            (epoch - 1) * auction + auction - 1
        } else {
            epoch * auction + (offset - person).min(auction - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_epochs() {
        let c = NexmarkConfig::default();
        // Epoch 0: event 0 is person 0, events 1..=3 auctions 0..=2, 4..=49 bids.
        assert_eq!(c.kind(0), NexmarkTable::Person);
        assert_eq!(c.kind(1), NexmarkTable::Auction);
        assert_eq!(c.kind(3), NexmarkTable::Auction);
        assert_eq!(c.kind(4), NexmarkTable::Bid);
        assert_eq!(c.kind(50), NexmarkTable::Person);
        assert_eq!(c.last_base0_person_id(0), 0);
        assert_eq!(c.last_base0_person_id(49), 0);
        assert_eq!(c.last_base0_person_id(50), 1);
        assert_eq!(c.last_base0_auction_id(0), -1);
        assert_eq!(c.last_base0_auction_id(1), 0);
        assert_eq!(c.last_base0_auction_id(3), 2);
        assert_eq!(c.last_base0_auction_id(10), 2);
        assert_eq!(c.last_base0_auction_id(50), 2);
        assert_eq!(c.last_base0_auction_id(52), 4);
    }

    #[test]
    fn zero_settings_are_refused_by_name() {
        let c = NexmarkConfig {
            bid_proportion: 0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().setting, "bid.proportion");
    }
}
