//! Event `n` of the stream, following the Nexmark generators (`PersonGenerator`,
//! `AuctionGenerator`, `BidGenerator`). Every value is drawn from a generator seeded by
//! `(seed, n)`, so event `n` is the same whichever subtask produces it and in whatever order.

use std::f64::consts::LN_10;

use super::config::{FIRST_AUCTION_ID, FIRST_CATEGORY_ID, FIRST_PERSON_ID, NUM_CATEGORIES};
use super::model::{Auction, BidRef, NexmarkEvent, Person};
use super::rng::Rng;
use super::strings::{
    FIRST_NAMES, LAST_NAMES, Tables, US_CITIES, US_STATES, extra_len, push_random_word,
    random_word, tables,
};
use super::{NexmarkConfig, NexmarkTable};

/// Hot sellers, bidders and auctions are the first (bidders: second) of each block of this many
/// ids, so the hot one moves on as the stream goes.
const HOT_BLOCK: u64 = 100;
/// How many not-yet-created people or auctions a random pick may reach, so that some bids and
/// auctions refer to entities that appear slightly later (as in the spec).
const ID_LEAD: u64 = 10;

impl NexmarkConfig {
    /// Event number `n` of the stream.
    pub fn event(&self, n: u64) -> NexmarkEvent {
        match self.kind(n) {
            NexmarkTable::Person => NexmarkEvent::Person(self.person(n)),
            NexmarkTable::Auction => NexmarkEvent::Auction(self.auction(n)),
            NexmarkTable::Bid => NexmarkEvent::Bid(self.bid(n, tables()).to_owned()),
        }
    }

    /// The person of event `n`, which must be a person event.
    pub(crate) fn person(&self, n: u64) -> Person {
        let mut rng = Rng::for_index(self.seed, n);
        let id = self.last_base0_person_id(n) as i64 + FIRST_PERSON_ID;
        let name = format!(
            "{} {}",
            pick(&mut rng, FIRST_NAMES),
            pick(&mut rng, LAST_NAMES)
        );
        let mut email_address = random_word(&mut rng, 7);
        email_address.push('@');
        push_random_word(&mut email_address, &mut rng, 5, ' ');
        email_address.push_str(".com");
        let card: Vec<String> = (0..4)
            .map(|_| format!("{:04}", rng.below(10_000)))
            .collect();
        let credit_card = card.join(" ");
        let city = pick(&mut rng, US_CITIES).to_string();
        let state = pick(&mut rng, US_STATES).to_string();
        let current =
            8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let extra = self.extra(&mut rng, current, self.avg_person_byte_size);
        Person {
            id,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time: self.event_time(n),
            extra,
        }
    }

    /// The auction of event `n`, which must be an auction event.
    pub(crate) fn auction(&self, n: u64) -> Auction {
        let mut rng = Rng::for_index(self.seed, n);
        let id = self.last_base0_auction_id(n) + FIRST_AUCTION_ID;
        let seller = if rng.below(self.hot_sellers_ratio) > 0 {
            self.last_base0_person_id(n) / HOT_BLOCK * HOT_BLOCK
        } else {
            self.random_base0_person_id(n, &mut rng)
        } as i64
            + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64;
        let initial_bid = price(&mut rng);
        let date_time = self.event_time(n);
        let expires = date_time + self.auction_length_ms(n, date_time, &mut rng);
        let item_name = random_word(&mut rng, 20);
        let description = random_word(&mut rng, 100);
        let reserve = initial_bid + price(&mut rng);
        let current = 8 + item_name.len() + description.len() + 5 * 8;
        let extra = self.extra(&mut rng, current, self.avg_auction_byte_size);
        Auction {
            id,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time,
            expires,
            seller,
            category,
            extra,
        }
    }

    /// The bid of event `n`, which must be a bid event; its strings borrow `tables`.
    pub(crate) fn bid<'t>(&self, n: u64, tables: &'t Tables) -> BidRef<'t> {
        let mut rng = Rng::for_index(self.seed, n);
        let auction = if rng.below(self.hot_auction_ratio) > 0 {
            self.last_base0_auction_id(n) as u64 / HOT_BLOCK * HOT_BLOCK
        } else {
            self.random_base0_auction_id(n, &mut rng)
        } as i64
            + FIRST_AUCTION_ID;
        let bidder = if rng.below(self.hot_bidders_ratio) > 0 {
            // The second of the block, so hot bidders and hot sellers differ.
            self.last_base0_person_id(n) / HOT_BLOCK * HOT_BLOCK + 1
        } else {
            self.random_base0_person_id(n, &mut rng)
        } as i64
            + FIRST_PERSON_ID;
        let price = price(&mut rng);
        let (channel, url) = tables.channel(&mut rng);
        let len = extra_len(&mut rng, 4 * 8, self.avg_bid_byte_size);
        BidRef {
            auction,
            bidder,
            price,
            channel,
            url,
            date_time: self.event_time(n),
            extra: tables.letters(&mut rng, len),
        }
    }

    fn extra(&self, rng: &mut Rng, current: usize, average: u64) -> String {
        let len = extra_len(rng, current as u64, average);
        tables().letters(rng, len).to_string()
    }

    /// One of the last `num_active_people` people, or one of the next few.
    fn random_base0_person_id(&self, n: u64, rng: &mut Rng) -> u64 {
        let people = self.last_base0_person_id(n) + 1;
        let active = people.min(self.num_active_people);
        people - active + rng.below(active + ID_LEAD)
    }

    /// One of the last `num_in_flight_auctions` auctions, or one of the next few. Only called
    /// for auctions and bids, after the first auction exists.
    fn random_base0_auction_id(&self, n: u64, rng: &mut Rng) -> u64 {
        let last = self.last_base0_auction_id(n) as u64;
        let first = last.saturating_sub(self.num_in_flight_auctions);
        first + rng.below(last - first + 1 + ID_LEAD)
    }

    /// An auction lasts on average until `num_in_flight_auctions` more auctions have been
    /// created, so about that many are open at any time.
    fn auction_length_ms(&self, n: u64, date_time: i64, rng: &mut Rng) -> i64 {
        let events_ahead =
            self.num_in_flight_auctions * self.total_proportion() / self.auction_proportion;
        let horizon = self.event_time(n + events_ahead) - date_time;
        1 + rng.below((horizon * 2).max(1) as u64) as i64
    }
}

/// Log-uniform between 1 and 1,000,000 (× 100: prices are in cents).
fn price(rng: &mut Rng) -> i64 {
    ((rng.unit_f64() * 6.0 * LN_10).exp() * 100.0).round() as i64
}

fn pick<'a>(rng: &mut Rng, words: &[&'a str]) -> &'a str {
    words[rng.below(words.len() as u64) as usize]
}
