//! `'connector' = 'nexmark'`: one table per event kind, selected by `nexmark.table`.

use std::sync::Arc;

use spate_api::SourceFactory;

use super::{NexmarkConfig, NexmarkSource, NexmarkTable};
use crate::{Connector, ConnectorError, OptionDoc, TableContext, TableOptions};

pub struct Nexmark;

const OPTIONS: &[OptionDoc] = &[
    OptionDoc::new(
        "nexmark.table",
        None,
        "which events the table holds: bid, auction or person",
    ),
    OptionDoc::new(
        "events",
        None,
        "events of the whole stream, all kinds; absent: unbounded",
    ),
    OptionDoc::new(
        "first-event-rate",
        Some("10000"),
        "events per second of event time",
    ),
    OptionDoc::new(
        "num-event-generators",
        Some("1"),
        "multiplies the inter-event delay, as in the spec",
    ),
    OptionDoc::new("seed", Some("0"), "seed of every generated value"),
    OptionDoc::new(
        "base-time",
        Some("1700000000000"),
        "event time of event 0, ms since the epoch",
    ),
    OptionDoc::new("batch-size", Some("4096"), "rows per batch"),
    OptionDoc::new(
        "rate",
        None,
        "wall-clock limit in events/s per subtask; absent: unlimited",
    ),
    OptionDoc::new("splits", None, "number of splits; absent: one per subtask"),
    OptionDoc::new(
        "person.proportion",
        Some("1"),
        "people per proportion cycle",
    ),
    OptionDoc::new(
        "auction.proportion",
        Some("3"),
        "auctions per proportion cycle",
    ),
    OptionDoc::new("bid.proportion", Some("46"), "bids per proportion cycle"),
    OptionDoc::new(
        "person.avg-size",
        Some("200"),
        "average person size in bytes",
    ),
    OptionDoc::new(
        "auction.avg-size",
        Some("500"),
        "average auction size in bytes",
    ),
    OptionDoc::new("bid.avg-size", Some("100"), "average bid size in bytes"),
    OptionDoc::new(
        "bid.hot-ratio.auctions",
        Some("2"),
        "1 - 1/ratio of bids go to a hot auction",
    ),
    OptionDoc::new(
        "bid.hot-ratio.bidders",
        Some("4"),
        "1 - 1/ratio of bids come from a hot bidder",
    ),
    OptionDoc::new(
        "auction.hot-ratio.sellers",
        Some("4"),
        "1 - 1/ratio of auctions have a hot seller",
    ),
];

impl Connector for Nexmark {
    fn name(&self) -> &'static str {
        "nexmark"
    }

    fn options(&self) -> &'static [OptionDoc] {
        OPTIONS
    }

    fn source(&self, table: TableContext<'_>) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let options = &*table.options;
        let kind_name = options.require("nexmark.table")?;
        let kind: NexmarkTable = kind_name
            .parse()
            .map_err(|e: String| options.bad("nexmark.table", kind_name, e))?;
        let config = parse_config(options)?;
        if let Err(e) = config.validate() {
            let value = options.get(e.setting).unwrap_or_default();
            return Err(options.bad(e.setting, value, e.detail));
        }
        options.finish(self.name(), OPTIONS)?;
        let source = NexmarkSource::new(config, kind)
            .expect("validated above")
            .with_declared_columns(table.schema)
            .map_err(|detail| ConnectorError::Schema {
                table: table.table.to_string(),
                detail,
            })?;
        Ok(Arc::new(source))
    }
}

fn parse_config(o: &TableOptions) -> Result<NexmarkConfig, ConnectorError> {
    let d = NexmarkConfig::default();
    Ok(NexmarkConfig {
        events: o.parse_optional("events")?,
        first_event_rate: o.parse("first-event-rate", d.first_event_rate)?,
        num_event_generators: o.parse("num-event-generators", d.num_event_generators)?,
        seed: o.parse("seed", d.seed)?,
        base_time_ms: o.parse("base-time", d.base_time_ms)?,
        batch_size: o.parse("batch-size", d.batch_size)?,
        rate: o.parse_optional("rate")?,
        splits: o.parse_optional("splits")?,
        person_proportion: o.parse("person.proportion", d.person_proportion)?,
        auction_proportion: o.parse("auction.proportion", d.auction_proportion)?,
        bid_proportion: o.parse("bid.proportion", d.bid_proportion)?,
        avg_person_byte_size: o.parse("person.avg-size", d.avg_person_byte_size)?,
        avg_auction_byte_size: o.parse("auction.avg-size", d.avg_auction_byte_size)?,
        avg_bid_byte_size: o.parse("bid.avg-size", d.avg_bid_byte_size)?,
        hot_auction_ratio: o.parse("bid.hot-ratio.auctions", d.hot_auction_ratio)?,
        hot_bidders_ratio: o.parse("bid.hot-ratio.bidders", d.hot_bidders_ratio)?,
        hot_sellers_ratio: o.parse("auction.hot-ratio.sellers", d.hot_sellers_ratio)?,
        ..d
    })
}
