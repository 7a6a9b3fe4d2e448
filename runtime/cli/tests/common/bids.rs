//! Nexmark bid jobs in SQL with a CSV file sink, and a comparison of their committed output.

use std::collections::BTreeMap;
use std::path::Path;

use super::{nexmark_bids, nexmark_bids_at, ts};

/// A bid table of `events` Nexmark events at `rate` events per second per source subtask.
pub fn bid_table(events: u64, rate: u64) -> String {
    format!(
        "CREATE TABLE bid (
            auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3),
            WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
        ) WITH (
            'connector' = 'nexmark', 'nexmark.table' = 'bid',
            'events' = '{events}', 'rate' = '{rate}', 'batch-size' = '500'
        );\n"
    )
}

/// A CSV table `out` of `columns` written under `out`.
pub fn sink(out: &Path, columns: &str) -> String {
    format!(
        "CREATE TABLE out ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n",
        out.display()
    )
}

/// `got` and `want` are sorted; on a difference, says how many rows are missing and extra.
pub fn assert_same(got: &[Vec<String>], want: &[Vec<String>]) {
    let missing = want
        .iter()
        .filter(|w| got.binary_search(w).is_err())
        .count();
    let extra = got.len() as i64 - want.len() as i64 + missing as i64;
    assert!(
        got == want,
        "committed output differs from the reference: {} rows, want {}; {missing} missing, {extra} extra or duplicated",
        got.len(),
        want.len()
    );
}

/// (auction, bidder, price) of the first `events` events' bids whose price is a multiple of 3,
/// sorted: the reference of a stateless filter job.
pub fn bids_priced_in_threes(events: u64) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = nexmark_bids(events)
        .iter()
        .filter(|b| b.price % 3 == 0)
        .map(|b| {
            vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                b.price.to_string(),
            ]
        })
        .collect();
    rows.sort();
    rows
}

/// (auction, window start, count, max price) per auction in 10-second windows sliding by 2
/// seconds, by brute force (every bid into every window it belongs to), sorted.
pub fn hop_counts(events: u64) -> Vec<Vec<String>> {
    let (slide, size) = (2_000i64, 10_000i64);
    let mut windows: BTreeMap<(i64, i64), (u64, i64)> = BTreeMap::new();
    for b in nexmark_bids(events) {
        let mut start = b.date_time - b.date_time.rem_euclid(slide);
        while start > b.date_time - size {
            let w = windows.entry((b.auction, start)).or_insert((0, i64::MIN));
            w.0 += 1;
            w.1 = w.1.max(b.price);
            start -= slide;
        }
    }
    let mut rows: Vec<Vec<String>> = windows
        .into_iter()
        .map(|((auction, start), (n, max))| {
            vec![
                auction.to_string(),
                ts(start),
                n.to_string(),
                max.to_string(),
            ]
        })
        .collect();
    rows.sort();
    rows
}

/// Nexmark q5 by brute force, over `events` events at `first_event_rate` events per second of
/// event time: per window of 10 seconds sliding by 2 (by its start), each auction whose bid
/// count is the window's highest, with that count. Rows (start, auction, count), sorted.
pub fn hot_items(events: u64, first_event_rate: u64) -> Vec<(i64, i64, i64)> {
    let (slide, size) = (2_000, 10_000);
    let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for b in nexmark_bids_at(events, first_event_rate) {
        let mut start = b.date_time - b.date_time.rem_euclid(slide);
        while start > b.date_time - size {
            *counts.entry((start, b.auction)).or_default() += 1;
            start -= slide;
        }
    }
    let mut highest: BTreeMap<i64, i64> = BTreeMap::new();
    for (&(start, _), &n) in &counts {
        let best = highest.entry(start).or_default();
        *best = (*best).max(n);
    }
    counts
        .into_iter()
        .filter(|((start, _), n)| *n == highest[start])
        .map(|((start, auction), n)| (start, auction, n))
        .collect()
}
