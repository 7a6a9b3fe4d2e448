//! Properties of the generated stream and of the connector, checked against the spec's rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use spate_api::{OperatorContext, SourceFactory, SourcePoll};

use super::strings::{HOT_CHANNELS, US_STATES};
use super::*;
use crate::{Connector, ConnectorError, TableContext, TableOptions};

const EVENTS: u64 = 100_000;

fn events(config: &NexmarkConfig) -> Vec<NexmarkEvent> {
    (0..EVENTS).map(|n| config.event(n)).collect()
}

fn bids(config: &NexmarkConfig) -> Vec<Bid> {
    events(config)
        .into_iter()
        .filter_map(|e| match e {
            NexmarkEvent::Bid(b) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn proportions_and_ids_follow_the_spec() {
    let config = NexmarkConfig::default();
    let (mut people, mut auctions, mut bid_count) = (Vec::new(), Vec::new(), 0);
    let (mut last_person, mut last_auction) = (FIRST_PERSON_ID - 1, FIRST_AUCTION_ID - 1);
    for event in events(&config) {
        match event {
            NexmarkEvent::Person(p) => {
                assert_eq!(p.id, last_person + 1, "people are numbered densely");
                assert!(US_STATES.contains(&p.state.as_str()));
                last_person = p.id;
                people.push(p);
            }
            NexmarkEvent::Auction(a) => {
                assert_eq!(a.id, last_auction + 1, "auctions are numbered densely");
                assert!((FIRST_PERSON_ID..=last_person + 10).contains(&a.seller));
                assert!((10..15).contains(&a.category));
                assert!(a.expires > a.date_time);
                assert!(a.reserve > a.initial_bid);
                last_auction = a.id;
                auctions.push(a);
            }
            NexmarkEvent::Bid(b) => {
                assert!((FIRST_AUCTION_ID..=last_auction + 10).contains(&b.auction));
                assert!(b.auction >= last_auction - 100, "in flight: {b:?}");
                assert!((FIRST_PERSON_ID..=last_person + 10).contains(&b.bidder));
                bid_count += 1;
            }
        }
    }
    assert_eq!(people.len(), 2_000);
    assert_eq!(auctions.len(), 6_000);
    assert_eq!(bid_count, 92_000);
    assert_eq!(people[0].id, 1000);
    assert_eq!(auctions[0].id, 1000);
    let categories: std::collections::BTreeSet<i64> = auctions.iter().map(|a| a.category).collect();
    assert_eq!(
        categories.into_iter().collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
}

#[test]
fn same_config_same_events() {
    let a = NexmarkConfig {
        seed: 7,
        ..Default::default()
    };
    for n in [0, 1, 5, 49, 50, 12_345, 1 << 40] {
        assert_eq!(a.event(n), a.clone().event(n));
    }
    let b = NexmarkConfig {
        seed: 8,
        ..a.clone()
    };
    assert_ne!(a.event(10), b.event(10));
}

#[test]
fn hot_keys_are_skewed() {
    let bids = bids(&NexmarkConfig::default());
    let share =
        |f: &dyn Fn(&Bid) -> bool| bids.iter().filter(|b| f(b)).count() as f64 / bids.len() as f64;
    // Hot auctions are the first of each block of 100: half the bids, plus a few random ones.
    let hot_auction = share(&|b| (b.auction - FIRST_AUCTION_ID) % 100 == 0);
    assert!((0.49..0.53).contains(&hot_auction), "{hot_auction}");
    // Hot bidders are the second person of each block of 100: three quarters of the bids.
    let hot_bidder = share(&|b| (b.bidder - FIRST_PERSON_ID) % 100 == 1);
    assert!((0.74..0.77).contains(&hot_bidder), "{hot_bidder}");
    let hot_channel = share(&|b| HOT_CHANNELS.contains(&b.channel.as_str()));
    assert!((0.49..0.51).contains(&hot_channel), "{hot_channel}");
    let mut per_auction: HashMap<i64, usize> = HashMap::new();
    for b in &bids {
        *per_auction.entry(b.auction).or_default() += 1;
    }
    let top = per_auction.values().max().unwrap();
    assert!(
        *top > 20 * bids.len() / per_auction.len(),
        "top auction has {top} bids"
    );

    let sellers: Vec<i64> = events(&NexmarkConfig::default())
        .into_iter()
        .filter_map(|e| match e {
            NexmarkEvent::Auction(a) => Some(a.seller),
            _ => None,
        })
        .collect();
    let hot_seller = sellers
        .iter()
        .filter(|s| (*s - FIRST_PERSON_ID) % 100 == 0)
        .count() as f64
        / sellers.len() as f64;
    assert!((0.73..0.78).contains(&hot_seller), "{hot_seller}");
}

#[test]
fn prices_are_log_uniform() {
    let bids = bids(&NexmarkConfig::default());
    assert!(bids.iter().all(|b| (100..=100_000_000).contains(&b.price)));
    // log10(price / 100) is uniform in [0, 6): one sixth of the prices per decade.
    let mut decades = [0usize; 6];
    for b in &bids {
        decades[((b.price as f64 / 100.0).log10().floor() as usize).min(5)] += 1;
    }
    for count in decades {
        let share = count as f64 / bids.len() as f64;
        assert!((0.16..0.175).contains(&share), "{decades:?}");
    }
}

#[test]
fn sizes_average_as_specified() {
    let bids = bids(&NexmarkConfig::default());
    let mean = bids.iter().map(|b| 32 + b.extra.len()).sum::<usize>() as f64 / bids.len() as f64;
    assert!((99.0..101.0).contains(&mean), "{mean}");
    let person = NexmarkConfig::default().person(0);
    let size = 8
        + person.name.len()
        + person.email_address.len()
        + person.credit_card.len()
        + person.city.len()
        + person.state.len()
        + person.extra.len();
    assert!((160..240).contains(&size), "{person:?}");
}

#[test]
fn event_times_advance_by_the_inter_event_delay() {
    let config = NexmarkConfig::default();
    assert_eq!(config.inter_event_delay_us(), 100.0);
    for n in [0u64, 9, 10, 12_345, 1 << 33] {
        assert_eq!(config.event_time(n), DEFAULT_BASE_TIME_MS + (n / 10) as i64);
    }
    let slow = NexmarkConfig {
        first_event_rate: 1000,
        num_event_generators: 2,
        base_time_ms: 5,
        ..Default::default()
    };
    for n in 0..1000u64 {
        assert_eq!(slow.event_time(n), 5 + 2 * n as i64);
    }
    let NexmarkEvent::Bid(bid) = slow.event(4) else {
        panic!("event 4 is a bid")
    };
    assert_eq!(bid.date_time, 13);
}

// --- the source ---

fn read(source: &NexmarkSource, parallelism: u32) -> Vec<Vec<RecordBatch>> {
    let splits = source.splits(parallelism);
    (0..parallelism as usize)
        .map(|s| {
            let mine = splits
                .iter()
                .skip(s)
                .step_by(parallelism as usize)
                .cloned()
                .collect();
            let mut reader = source
                .create_reader(mine, &OperatorContext::single("nexmark"))
                .unwrap();
            let mut batches = Vec::new();
            loop {
                match reader.poll_next().unwrap() {
                    SourcePoll::Batch(b) => batches.push(b),
                    SourcePoll::End => break,
                    SourcePoll::Idle => panic!("no rate limit"),
                }
            }
            batches
        })
        .collect()
}

/// Rows of batches as display strings, for comparing multisets.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| arrow_cast::display::ArrayFormatter::try_new(c, &Default::default()).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

#[test]
fn any_split_layout_reads_the_same_rows() {
    for table in NexmarkTable::ALL {
        let config = NexmarkConfig {
            events: Some(20_011),
            batch_size: 333,
            ..Default::default()
        };
        let one = NexmarkSource::new(config.clone(), table).unwrap();
        let mut want = rows(&read(&one, 1).concat());
        let many = NexmarkSource::new(
            NexmarkConfig {
                splits: Some(7),
                ..config.clone()
            },
            table,
        )
        .unwrap();
        let per_subtask = read(&many, 3);
        let mut got: Vec<String> = per_subtask.iter().flat_map(|b| rows(b)).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{table:?}");
        let expected = (0..20_011).filter(|&n| config.kind(n) == table).count();
        assert_eq!(want.len(), expected, "{table:?}");
    }
}

#[test]
fn batches_match_the_events() {
    let config = NexmarkConfig {
        events: Some(5_000),
        batch_size: 1000,
        ..Default::default()
    };
    let source = NexmarkSource::new(config.clone(), NexmarkTable::Bid).unwrap();
    let batches = read(&source, 1).concat();
    let want: Vec<Bid> = (0..5_000)
        .filter_map(|n| match config.event(n) {
            NexmarkEvent::Bid(b) => Some(b),
            _ => None,
        })
        .collect();
    let mut got = Vec::new();
    for b in &batches {
        assert_eq!(b.schema(), NexmarkTable::Bid.schema());
        let int = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let text = |i: usize| b.column(i).as_string::<i32>().clone();
        let (auction, bidder, price) = (int(0), int(1), int(2));
        let (channel, url, extra) = (text(3), text(4), text(6));
        let time = b.column(5).as_primitive::<TimestampMillisecondType>();
        for r in 0..b.num_rows() {
            got.push(Bid {
                auction: auction.value(r),
                bidder: bidder.value(r),
                price: price.value(r),
                channel: channel.value(r).to_string(),
                url: url.value(r).to_string(),
                date_time: time.value(r),
                extra: extra.value(r).to_string(),
            });
        }
    }
    assert_eq!(got, want);
    let times: Vec<i64> = got.iter().map(|b| b.date_time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn a_split_without_rows_of_its_kind_ends_at_once() {
    let source = NexmarkSource::new(
        NexmarkConfig {
            splits: Some(50),
            ..Default::default()
        },
        NexmarkTable::Person,
    )
    .unwrap();
    let splits = source.splits(50);
    let ctx = OperatorContext::single("nexmark");
    let mut idle_split = source.create_reader(vec![splits[3].clone()], &ctx).unwrap();
    assert!(matches!(idle_split.poll_next().unwrap(), SourcePoll::End));
    let mut people = source.create_reader(vec![splits[0].clone()], &ctx).unwrap();
    let SourcePoll::Batch(b) = people.poll_next().unwrap() else {
        panic!("split 0 holds every person")
    };
    assert_eq!(b.num_rows(), 4096);
}

#[test]
fn the_rate_limit_idles_a_reader_ahead_of_the_clock() {
    let source = NexmarkSource::new(
        NexmarkConfig {
            rate: Some(1),
            ..Default::default()
        },
        NexmarkTable::Bid,
    )
    .unwrap();
    let mut reader = source
        .create_reader(source.splits(1), &OperatorContext::single("nexmark"))
        .unwrap();
    assert!(matches!(reader.poll_next().unwrap(), SourcePoll::Idle));
}

// --- the connector ---

fn context_source(
    declared: Vec<Field>,
    options: &[(&str, &str)],
) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
    let values: BTreeMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("connector".to_string(), "nexmark".to_string())])
        .collect();
    let mut options = TableOptions::new("t", values);
    let schema: SchemaRef = Arc::new(Schema::new(declared));
    Nexmark.source(TableContext {
        table: "t",
        schema,
        options: &mut options,
        primary_key: &[],
    })
}

fn field(name: &str, ty: DataType) -> Field {
    Field::new(name, ty, true)
}

#[test]
fn declared_columns_pick_a_subset_in_their_order() {
    let declared = vec![
        field("PRICE", DataType::Int64),
        field("dateTime", DataType::Timestamp(TimeUnit::Millisecond, None)),
        field("auction", DataType::Int64),
    ];
    let source = context_source(
        declared.clone(),
        &[("nexmark.table", "bid"), ("events", "1000"), ("seed", "3")],
    )
    .unwrap();
    let batches = read_dyn(&*source);
    let schema = batches[0].schema();
    assert_eq!(schema.fields().len(), 3);
    assert_eq!(schema.field(0).name(), "PRICE");
    assert_eq!(schema.field(1).name(), "dateTime");
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, (0..1000).filter(|n| n % 50 >= 4).count());
    let config = NexmarkConfig {
        seed: 3,
        ..Default::default()
    };
    let NexmarkEvent::Bid(first) = config.event(4) else {
        panic!("event 4 is a bid")
    };
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        first.price
    );
    assert_eq!(
        batches[0].column(2).as_primitive::<Int64Type>().value(0),
        first.auction
    );
}

fn read_dyn(source: &dyn SourceFactory) -> Vec<RecordBatch> {
    let mut reader = source
        .create_reader(source.splits(1), &OperatorContext::single("nexmark"))
        .unwrap();
    let mut batches = Vec::new();
    while let SourcePoll::Batch(b) = reader.poll_next().unwrap() {
        batches.push(b);
    }
    batches
}

#[test]
fn mismatched_columns_are_named() {
    let err = context_source(
        vec![field("price", DataType::Utf8)],
        &[("nexmark.table", "bid")],
    )
    .err()
    .unwrap();
    assert!(matches!(err, ConnectorError::Schema { .. }), "{err}");
    assert!(
        err.to_string().contains("'price'") && err.to_string().contains("BIGINT"),
        "{err}"
    );

    let err = context_source(
        vec![field("ts", DataType::Int64)],
        &[("nexmark.table", "person")],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("'ts'") && err.contains("available: id BIGINT, name VARCHAR"),
        "{err}"
    );
}

#[test]
fn bad_options_are_refused() {
    let price = || vec![field("price", DataType::Int64)];
    let err = context_source(price(), &[("nexmark.table", "bid"), ("evnets", "10")])
        .err()
        .unwrap();
    assert!(
        matches!(err, ConnectorError::UnknownOptions { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("evnets"), "{err}");

    let err = context_source(price(), &[]).err().unwrap();
    assert!(matches!(err, ConnectorError::MissingOption { .. }), "{err}");

    let err = context_source(price(), &[("nexmark.table", "bids")])
        .err()
        .unwrap();
    assert!(err.to_string().contains("bid, auction, person"), "{err}");

    let err = context_source(
        price(),
        &[("nexmark.table", "bid"), ("first-event-rate", "0")],
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("'first-event-rate' = '0'"),
        "{err}"
    );
}
