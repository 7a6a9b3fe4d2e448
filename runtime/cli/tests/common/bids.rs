//! Nexmark bid jobs in SQL with a CSV file sink, and a comparison of their committed output.

use std::path::Path;

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
