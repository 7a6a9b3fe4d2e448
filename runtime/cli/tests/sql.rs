//! The SQL examples on real processes: Nexmark q0, q1, q2 and the window examples, as written in
//! `examples/` (with fewer events and a CSV sink), checked against references computed by brute
//! force from the same generated events, at parallelism 1 and 4.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use spate_connectors::nexmark::{Bid, NexmarkConfig, NexmarkEvent};

const EVENTS: u64 = 200_000;

fn bids() -> Vec<Bid> {
    let config = NexmarkConfig {
        events: Some(EVENTS),
        ..NexmarkConfig::default()
    };
    (0..EVENTS)
        .filter_map(|n| match config.event(n) {
            NexmarkEvent::Bid(bid) => Some(bid),
            _ => None,
        })
        .collect()
}

/// An example job with fewer events and its blackhole sink turned into CSV files under `out`.
fn example(name: &str, out: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains("'events' = '10000000'") && text.contains("'connector' = 'blackhole'"));
    text.replace("'events' = '10000000'", &format!("'events' = '{EVENTS}'"))
        .replace(
            "'connector' = 'blackhole'",
            &format!(
                "'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv'",
                out.display()
            ),
        )
}

/// Runs an example and returns its output rows, sorted.
async fn run_example(name: &str, parallelism: u32) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = spec(
        "sql",
        &dir.path().join("cluster"),
        parallelism.div_ceil(2),
        2,
    )
    .arg("sql", example(name, &out))
    .arg("parallelism", parallelism);
    run_to_end(spec).await;
    let mut rows = read_rows(&out);
    rows.sort();
    rows
}

/// Flink's timestamp text, `yyyy-MM-dd HH:mm:ss.SSS`, for epoch milliseconds.
fn ts(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let ms = millis.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// CSV text of a string field as the filesystem sink writes it (quoted only when needed).
fn text(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

fn assert_rows(got: &[Vec<String>], want: &[Vec<String>]) {
    assert_eq!(
        got.len(),
        want.len(),
        "row count; first rows got {:?}, want {:?}",
        got.first(),
        want.first()
    );
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w);
    }
}

async fn q0(parallelism: u32) {
    let want = sorted(
        bids()
            .iter()
            .map(|b| {
                vec![
                    b.auction.to_string(),
                    b.bidder.to_string(),
                    b.price.to_string(),
                    ts(b.date_time),
                    text(&b.extra),
                ]
            })
            .collect(),
    );
    assert_rows(&run_example("q0.sql", parallelism).await, &want);
}

async fn q1(parallelism: u32) {
    let got = run_example("q1.sql", parallelism).await;
    let mut want: Vec<(i64, i64, f64, String)> = bids()
        .iter()
        .map(|b| (b.auction, b.bidder, 0.908 * b.price as f64, ts(b.date_time)))
        .collect();
    want.sort_by(|a, b| {
        (a.0, a.1, a.3.clone())
            .cmp(&(b.0, b.1, b.3.clone()))
            .then(a.2.total_cmp(&b.2))
    });
    let mut got: Vec<(i64, i64, f64, String)> = got
        .iter()
        .map(|r| {
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[2].parse().unwrap(),
                r[3].clone(),
            )
        })
        .collect();
    got.sort_by(|a, b| {
        (a.0, a.1, a.3.clone())
            .cmp(&(b.0, b.1, b.3.clone()))
            .then(a.2.total_cmp(&b.2))
    });
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, g.1, &g.3), (w.0, w.1, &w.3));
        assert_eq!(
            g.2.to_bits(),
            w.2.to_bits(),
            "price of {g:?}: exactly 0.908 * price"
        );
    }
}

async fn q2(parallelism: u32) {
    let want = sorted(
        bids()
            .iter()
            .filter(|b| b.auction % 123 == 0)
            .map(|b| vec![b.auction.to_string(), b.price.to_string()])
            .collect(),
    );
    assert!(!want.is_empty());
    assert_rows(&run_example("q2.sql", parallelism).await, &want);
}

async fn hop_count(parallelism: u32) {
    let (slide, size) = (2_000, 10_000);
    let mut counts: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    for b in bids() {
        let mut start = b.date_time - b.date_time.rem_euclid(slide);
        while start > b.date_time - size {
            *counts.entry((b.auction, start)).or_default() += 1;
            start -= slide;
        }
    }
    let want = sorted(
        counts
            .into_iter()
            .map(|((auction, start), n)| {
                vec![
                    auction.to_string(),
                    ts(start),
                    ts(start + size),
                    n.to_string(),
                ]
            })
            .collect(),
    );
    assert_rows(&run_example("q5_hop_count.sql", parallelism).await, &want);
}

async fn tumble_max(parallelism: u32) {
    let size = 10_000;
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in bids() {
        let end = b.date_time - b.date_time.rem_euclid(size) + size;
        let m = max.entry(end).or_insert(i64::MIN);
        *m = (*m).max(b.price);
    }
    let want = sorted(
        max.into_iter()
            .map(|(end, m)| vec![m.to_string(), ts(end)])
            .collect(),
    );
    assert!(want.len() > 1);
    assert_rows(&run_example("q7_tumble_max.sql", parallelism).await, &want);
}

#[tokio::test(flavor = "multi_thread")]
async fn nexmark_q0_at_parallelism_1_and_4() {
    q0(1).await;
    q0(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nexmark_q1_at_parallelism_1_and_4() {
    q1(1).await;
    q1(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nexmark_q2_at_parallelism_1_and_4() {
    q2(1).await;
    q2(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_count_per_auction_at_parallelism_1_and_4() {
    hop_count(1).await;
    hop_count(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tumble_max_price_at_parallelism_1_and_4() {
    tumble_max(1).await;
    tumble_max(4).await;
}
