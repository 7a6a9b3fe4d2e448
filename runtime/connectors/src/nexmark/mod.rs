//! The Nexmark benchmark's event stream (people, auctions, bids), generated as specified by the
//! nexmark/nexmark project's generator, and served as three flat tables.
//!
//! One stream of events numbered 0, 1, 2, ... holds all three kinds; `nexmark.table` picks the
//! kind a table reads. Every field of event `n` is a pure function of the configuration and `n`,
//! so the person, auction and bid tables of one configuration are consistent with each other
//! (bids refer to auctions and people of the same stream) whatever the parallelism.

mod columns;
mod config;
mod connector;
mod generate;
mod model;
pub(crate) mod rng;
mod schedule;
mod source;
pub(crate) mod splits;
mod strings;
mod table;

pub use config::{
    DEFAULT_BASE_TIME_MS, FIRST_AUCTION_ID, FIRST_CATEGORY_ID, FIRST_PERSON_ID, InvalidSetting,
    NUM_CATEGORIES, NexmarkConfig,
};
pub use connector::Nexmark;
pub use model::{Auction, Bid, NexmarkEvent, Person};
pub use source::NexmarkSource;
pub use table::NexmarkTable;

#[cfg(test)]
mod tests;
