//! The three kinds of Nexmark events, as owned values (for tests, references and tools; the
//! batch reader writes columns without building these).

/// Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: String,
    pub state: String,
    pub date_time: i64,
    pub extra: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
    pub extra: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: String,
    pub url: String,
    pub date_time: i64,
    pub extra: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NexmarkEvent {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

/// A bid whose strings borrow the process-wide tables, so generating one allocates nothing.
pub(crate) struct BidRef<'a> {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: &'a str,
    pub url: &'a str,
    pub date_time: i64,
    pub extra: &'a str,
}

impl BidRef<'_> {
    pub(crate) fn to_owned(&self) -> Bid {
        Bid {
            auction: self.auction,
            bidder: self.bidder,
            price: self.price,
            channel: self.channel.to_string(),
            url: self.url.to_string(),
            date_time: self.date_time,
            extra: self.extra.to_string(),
        }
    }
}
