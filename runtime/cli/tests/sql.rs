//! The SQL examples on real processes: the Nexmark queries and the window examples, as written in
//! `examples/` (with fewer events and a CSV or print sink), checked against references computed
//! by brute force from the same generated events, at parallelism 1 and 4.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use common::*;
use spate_connectors::nexmark::{Bid, NexmarkConfig, NexmarkEvent};

const EVENTS: u64 = 200_000;

/// An example job with fewer events and its blackhole sink turned into CSV files under `out`.
fn example(name: &str, out: &Path) -> String {
    example_sql(name, out, EVENTS)
}

/// Runs an example and returns its output rows, sorted.
async fn run_example(name: &str, parallelism: u32) -> Vec<Vec<String>> {
    run_sql(|out| example(name, out), parallelism).await
}

/// Runs the SQL that `job` writes for an output directory; returns the output rows, sorted.
async fn run_sql(job: impl Fn(&Path) -> String, parallelism: u32) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = spec(
        "sql",
        &dir.path().join("cluster"),
        parallelism.div_ceil(2),
        2,
    )
    .arg("sql", job(&out))
    .arg("parallelism", parallelism);
    run_to_end(spec).await;
    let mut rows = read_rows(&out);
    rows.sort();
    rows
}

/// The bid table of the examples, with `EVENTS` events, and a CSV sink `out` of `columns`.
fn bid_job(out: &Path, columns: &str, insert: &str) -> String {
    let example = example("q0.sql", out);
    let bid = &example
        [example.find("CREATE TABLE bid").unwrap()..example.find("CREATE TABLE discard").unwrap()];
    format!(
        "{bid}CREATE TABLE out ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n{insert}",
        out.display()
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
        nexmark_bids(EVENTS)
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
    let mut want: Vec<(i64, i64, f64, String)> = nexmark_bids(EVENTS)
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
        nexmark_bids(EVENTS)
            .iter()
            .filter(|b| b.auction % 123 == 0)
            .map(|b| vec![b.auction.to_string(), b.price.to_string()])
            .collect(),
    );
    assert!(!want.is_empty());
    assert_rows(&run_example("q2.sql", parallelism).await, &want);
}

/// The value of a URL's channel_id parameter where `(&|^)channel_id=([^&]*)` finds it, by
/// string search: at the very start, or else after the first `&channel_id=`.
fn channel_id_parameter(url: &str) -> Option<&str> {
    const KEY: &str = "channel_id=";
    let start = if url.starts_with(KEY) {
        KEY.len()
    } else {
        url.find("&channel_id=")? + 1 + KEY.len()
    };
    url[start..].split('&').next()
}

/// Nexmark q21: the bids of a named channel with its number, the others with the channel id of
/// their URL, those without one dropped.
async fn q21(parallelism: u32) {
    let bids = nexmark_bids(EVENTS);
    let want = sorted(
        bids.iter()
            .filter_map(|b| {
                let id = match b.channel.to_lowercase().as_str() {
                    "apple" => Some("0"),
                    "google" => Some("1"),
                    "facebook" => Some("2"),
                    "baidu" => Some("3"),
                    _ => channel_id_parameter(&b.url),
                }?;
                Some(vec![
                    b.auction.to_string(),
                    b.bidder.to_string(),
                    b.price.to_string(),
                    text(&b.channel),
                    text(id),
                ])
            })
            .collect(),
    );
    // Each way in is taken: a named channel, an id from a URL, and no id at all.
    assert!(want.iter().any(|r| r[4] == "1"));
    assert!(want.iter().any(|r| r[4].len() > 1));
    assert!(want.len() < bids.len());
    assert_rows(&run_example("q21.sql", parallelism).await, &want);
}

/// Nexmark q22: parts 3, 4 and 5 of each bid's URL cut at '/'.
async fn q22(parallelism: u32) {
    let want = sorted(
        nexmark_bids(EVENTS)
            .iter()
            .map(|b| {
                let parts: Vec<&str> = b.url.split('/').collect();
                assert!(parts.len() > 5, "{}", b.url);
                vec![
                    b.auction.to_string(),
                    b.bidder.to_string(),
                    b.price.to_string(),
                    text(&b.channel),
                    text(parts[3]),
                    text(parts[4]),
                    text(parts[5]),
                ]
            })
            .collect(),
    );
    assert_rows(&run_example("q22.sql", parallelism).await, &want);
}

async fn hop_count(parallelism: u32) {
    let (slide, size) = (2_000, 10_000);
    let mut counts: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    for b in nexmark_bids(EVENTS) {
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

/// The window table functions give what the group windows give.
async fn window_table_functions(parallelism: u32) {
    let hop = run_sql(
        |out| {
            bid_job(
                out,
                "auction BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3), num BIGINT",
                "INSERT INTO out SELECT auction, window_start, window_end, COUNT(*) AS num
                 FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
                 GROUP BY auction, window_start, window_end;",
            )
        },
        parallelism,
    )
    .await;
    assert_rows(&hop, &run_example("q5_hop_count.sql", parallelism).await);

    let size = 10_000;
    let mut windows: BTreeMap<(i64, i64), (u64, i64)> = BTreeMap::new();
    for b in nexmark_bids(EVENTS) {
        let start = b.date_time - b.date_time.rem_euclid(size);
        let w = windows.entry((b.bidder % 10, start)).or_insert((0, 0));
        w.0 += 1;
        w.1 += b.price;
    }
    let want = sorted(
        windows
            .into_iter()
            .map(|((k, start), (n, sum))| {
                vec![
                    k.to_string(),
                    ts(start),
                    ts(start + size),
                    n.to_string(),
                    sum.to_string(),
                ]
            })
            .collect(),
    );
    let tumble = run_sql(
        |out| {
            bid_job(
                out,
                "k BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3), n BIGINT, total BIGINT",
                "INSERT INTO out SELECT bidder % 10 AS k, window_start, window_end, COUNT(*), SUM(price)
                 FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) AS t
                 GROUP BY window_start, window_end, bidder % 10;",
            )
        },
        parallelism,
    )
    .await;
    assert_rows(&tumble, &want);
}

/// SESSION group windows per bidder, every aggregate, against sessions cut by brute force.
async fn sessions(parallelism: u32) {
    let events: Vec<spate_operators::generator::GeneratedEvent> = nexmark_bids(EVENTS)
        .iter()
        .enumerate()
        .map(|(i, b)| spate_operators::generator::GeneratedEvent {
            index: i as u64,
            key: b.bidder,
            ts: b.date_time,
            value: b.price,
        })
        .collect();
    let want = reference(&events, &Assigner::Session(500));
    let rows = run_sql(
        |out| {
            bid_job(
                out,
                "bidder BIGINT, s BIGINT, e BIGINT, n BIGINT, total BIGINT, low BIGINT, high BIGINT, mean DOUBLE",
                "INSERT INTO out SELECT bidder,
                   CAST(SESSION_START(dateTime, INTERVAL '0.5' SECOND) AS BIGINT),
                   CAST(SESSION_END(dateTime, INTERVAL '0.5' SECOND) AS BIGINT),
                   COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price)
                 FROM bid GROUP BY bidder, SESSION(dateTime, INTERVAL '0.5' SECOND);",
            )
        },
        parallelism,
    )
    .await;
    assert!(want.len() > 1000, "{} sessions", want.len());
    assert_same_windows(&parse_windows(&rows), &want);
}

async fn tumble_max(parallelism: u32) {
    let size = 10_000;
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in nexmark_bids(EVENTS) {
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
async fn nexmark_q21_at_parallelism_1_and_4() {
    q21(1).await;
    q21(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nexmark_q22_at_parallelism_1_and_4() {
    q22(1).await;
    q22(4).await;
}

/// Nexmark q3, a regular join: every auction of category 10 with its seller, if the seller
/// lives in OR, ID or CA; by brute force over the same events (a hash join of all of them).
async fn q3(parallelism: u32) {
    let config = NexmarkConfig {
        events: Some(EVENTS),
        ..NexmarkConfig::default()
    };
    let mut people = HashMap::new();
    let mut auctions = Vec::new();
    for n in 0..EVENTS {
        match config.event(n) {
            NexmarkEvent::Person(person) => {
                people.insert(person.id, person);
            }
            NexmarkEvent::Auction(auction) => auctions.push(auction),
            NexmarkEvent::Bid(_) => {}
        }
    }
    let want: Vec<Vec<String>> = auctions
        .iter()
        .filter(|a| a.category == 10)
        .filter_map(|a| {
            let seller = people.get(&a.seller)?;
            ["OR", "ID", "CA"]
                .contains(&seller.state.as_str())
                .then(|| {
                    vec![
                        text(&seller.name),
                        text(&seller.city),
                        seller.state.clone(),
                        a.id.to_string(),
                    ]
                })
        })
        .collect();
    assert!(want.len() > 100, "the reference has rows: {}", want.len());
    assert_rows(&run_example("q3.sql", parallelism).await, &sorted(want));
}

#[tokio::test(flavor = "multi_thread")]
async fn nexmark_q3_at_parallelism_1_and_4() {
    q3(1).await;
    q3(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_count_per_auction_at_parallelism_1_and_4() {
    hop_count(1).await;
    hop_count(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn window_table_functions_at_parallelism_1_and_4() {
    window_table_functions(1).await;
    window_table_functions(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn session_windows_at_parallelism_1_and_4() {
    sessions(1).await;
    sessions(4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tumble_max_price_at_parallelism_1_and_4() {
    tumble_max(1).await;
    tumble_max(4).await;
}

#[test]
fn bad_sql_is_refused_with_its_position_before_any_process_starts() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("bad.sql");
    let cases = [
        (
            "CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO t\nSELECT a FROM t WHERE;",
            "line 3, column 22",
        ),
        (
            "CREATE TABLE t (a BIGINT) WITH ('connector' = 'hbase');\nINSERT INTO t SELECT 1;",
            "unknown connector 'hbase'",
        ),
        (
            "CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO t SELECT a FROM t;",
            "cannot be read (it is sink-only)",
        ),
    ];
    for (sql, expected) in cases {
        std::fs::write(&job, sql).unwrap();
        let work_dir = dir.path().join("work");
        let out = std::process::Command::new(spate())
            .arg("run")
            .arg(&job)
            .arg("--work-dir")
            .arg(&work_dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected '{expected}' in: {stderr}"
        );
        assert_eq!(
            stderr.matches("SQL error at").count(),
            1,
            "said once: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!work_dir.join("logs").exists(), "a process was started");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expression_900_terms_deep_runs_on_the_workers() {
    // Operators evaluate expressions recursively on the task threads: near the depth limit
    // that must neither overflow a stack nor give another answer.
    let terms = vec!["price"; 900].join(" + ");
    let rows = run_sql(
        |out| {
            bid_job(
                out,
                "auction BIGINT, p BIGINT",
                &format!("INSERT INTO out SELECT auction, {terms} FROM bid;"),
            )
        },
        2,
    )
    .await;
    let want = sorted(
        nexmark_bids(EVENTS)
            .iter()
            .map(|b| vec![b.auction.to_string(), (900 * b.price).to_string()])
            .collect(),
    );
    assert_rows(&rows, &want);
}

#[test]
fn bad_flags_are_refused_before_any_process_starts() {
    let dir = tempfile::tempdir().unwrap();
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/q5_hop_count.sql");
    for (flags, expected) in [
        (&["--slots", "0"][..], "--slots"),
        (&["--workers", "0"][..], "--workers"),
        (&["--state-backend", "hep"][..], "--state-backend"),
    ] {
        let work_dir = dir.path().join("work");
        let out = std::process::Command::new(spate())
            .arg("run")
            .args(flags)
            .arg("--work-dir")
            .arg(&work_dir)
            .arg(&job)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!work_dir.exists(), "{flags:?}: a process was started");
    }
}

#[test]
fn spate_run_removes_its_temporary_directory_when_the_job_finishes_unless_asked_to_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("small.sql");
    std::fs::write(
        &job,
        "CREATE TABLE t (seq BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100', \
         'fields.seq.kind' = 'sequence', 'fields.seq.start' = '1', 'fields.seq.end' = '100');\n\
         CREATE TABLE out (seq BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT seq FROM t;",
    )
    .unwrap();
    let run_dirs = |tmp: &Path| -> Vec<String> {
        std::fs::read_dir(tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("spate-run-"))
            .collect()
    };
    for (keep, expected_dirs) in [(false, 0), (true, 1)] {
        let tmp = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(spate());
        command
            .args(["run", "--quiet"])
            .arg(&job)
            .env("TMPDIR", tmp.path());
        if keep {
            command.arg("--keep-work-dir");
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(
            run_dirs(tmp.path()).len(),
            expected_dirs,
            "keep {keep}: {stderr}"
        );
    }
}

#[test]
fn explain_shows_the_vertices_and_exchanges_of_a_sql_job() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/q5_hop_count.sql");
    let out = std::process::Command::new(spate())
        .args(["explain", "-p", "3"])
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[parallelism 3]: bid -> window keys and arguments"),
        "{stdout}"
    );
    assert!(
        stdout.contains("window Hopping { size_ms: 10000, slide_ms: 2000 }"),
        "{stdout}"
    );
    assert!(stdout.contains("(hash[__k0])"), "{stdout}");
}

/// The seed's gift job (two INSERTs over a view of a datagen table whose event time is a computed
/// column), with its print sinks turned into CSV and a third INSERT keeping the raw gifts: both
/// window results must equal aggregates computed by brute force from those raw gifts.
#[tokio::test(flavor = "multi_thread")]
async fn gift_room_windows_equal_aggregates_of_the_raw_gifts() {
    let dir = tempfile::tempdir().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gift_room.sql");
    let mut sql = std::fs::read_to_string(path).unwrap();
    for (id, sub) in [("1m", "minute"), ("5m", "five")] {
        let print = format!("'connector' = 'print', 'print-identifier' = '{id}'");
        assert!(sql.contains(&print));
        let csv = format!(
            "'connector' = 'filesystem', 'format' = 'csv', 'path' = '{}'",
            dir.path().join(sub).display()
        );
        sql = sql.replace(&print, &csv);
    }
    sql.push_str(&format!(
        "CREATE TABLE raw (seq BIGINT, pf INT, type_id INT, room_id BIGINT, gift_cost BIGINT, gift_count INT, dateline TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'format' = 'csv', 'path' = '{}');
         INSERT INTO raw SELECT seq, pf, type_id, room_id, gift_cost, gift_count, dateline FROM gift;",
        dir.path().join("raw").display()
    ));
    let spec = spec("sql", &dir.path().join("cluster"), 1, 2)
        .arg("sql", sql)
        .arg("parallelism", 2);
    run_to_end(spec).await;

    let raw = read_rows(&dir.path().join("raw"));
    assert_eq!(raw.len(), 60_000, "every generated gift");
    let gifts: Vec<(String, i64, i64, i64)> = raw
        .iter()
        .map(|r| {
            let seq: i64 = r[0].parse().unwrap();
            let (cost, count): (i64, i64) = (r[4].parse().unwrap(), r[5].parse().unwrap());
            assert_eq!(
                r[6],
                ts(1_700_000_000_000 + seq * 20),
                "the computed event time"
            );
            (
                format!("{},{},{}", r[1], r[2], r[3]),
                1_700_000_000_000 + seq * 20,
                count,
                cost * count,
            )
        })
        .collect();
    let windows = |size: i64, slide: i64| {
        let mut out: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
        for (key, time, count, spent) in &gifts {
            let mut start = time - time.rem_euclid(slide);
            while start > time - size {
                let w = out.entry((key.clone(), start)).or_default();
                w.0 += count;
                w.1 += spent;
                start -= slide;
            }
        }
        sorted(
            out.into_iter()
                .map(|((key, start), (n, spent))| {
                    let mut row: Vec<String> = key.split(',').map(str::to_string).collect();
                    row.extend([
                        ts(start),
                        ts(start + size),
                        n.to_string(),
                        spent.to_string(),
                    ]);
                    row
                })
                .collect(),
        )
    };
    let mut minute = read_rows(&dir.path().join("minute"));
    minute.sort();
    assert_rows(&minute, &windows(60_000, 60_000));
    let mut five = read_rows(&dir.path().join("five"));
    five.sort();
    assert_rows(&five, &windows(300_000, 60_000));
}

/// CASE, CAST, arithmetic, string functions and a compound WHERE, against the same computed in
/// Rust from the bids.
#[tokio::test(flavor = "multi_thread")]
async fn expressions_and_filters_equal_their_rust_reference() {
    let want = sorted(
        nexmark_bids(EVENTS)
            .iter()
            .filter(|b| b.bidder % 2 == 0 && b.channel != "Google")
            .map(|b| {
                let band = if b.price > 10_000_000 {
                    "high"
                } else if b.price > 100_000 {
                    "mid"
                } else {
                    "low"
                };
                let prefix: String = b.channel.chars().take(3).collect::<String>().to_uppercase();
                vec![
                    b.auction.to_string(),
                    band.to_string(),
                    (b.price as f64 / 100.0).to_string(),
                    text(&prefix),
                    b.url.chars().count().to_string(),
                    b.date_time.to_string(),
                ]
            })
            .collect(),
    );
    let got = run_sql(
        |out| {
            bid_job(
                out,
                "auction BIGINT, band VARCHAR, dollars DOUBLE, ch VARCHAR, url_length INT, millis BIGINT",
                "INSERT INTO out SELECT auction,
                   CASE WHEN price > 10000000 THEN 'high' WHEN price > 100000 THEN 'mid' ELSE 'low' END,
                   CAST(price AS DOUBLE) / 100,
                   UPPER(SUBSTR(channel, 1, 3)),
                   CHARACTER_LENGTH(url),
                   CAST(dateTime AS BIGINT)
                 FROM bid WHERE MOD(bidder, 2) = 0 AND channel <> 'Google';",
            )
        },
        2,
    )
    .await;
    let got: Vec<Vec<String>> = sorted(
        got.into_iter()
            .map(|mut r| {
                // Floats are compared by value, not by their text.
                r[2] = r[2].parse::<f64>().unwrap().to_string();
                r
            })
            .collect(),
    );
    assert!(!want.is_empty());
    assert_rows(&got, &want);
}

/// A JSON-lines file read through SQL, filtered and projected into CSV.
#[tokio::test(flavor = "multi_thread")]
async fn a_json_file_source_feeds_a_csv_sink() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut lines = String::new();
    for i in 0..1000 {
        lines.push_str(&format!(
            "{{\"id\": {i}, \"name\": \"n{i}\", \"score\": {}, \"at\": \"2024-01-01 00:00:{:02}.000\"}}\n",
            i % 7,
            i % 60
        ));
    }
    std::fs::write(input.join("part-0.json"), lines).unwrap();
    let out = dir.path().join("out");
    let sql = format!(
        "CREATE TABLE people (id BIGINT, name VARCHAR, score INT, at TIMESTAMP(3))
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         CREATE TABLE result (id BIGINT, label VARCHAR, at TIMESTAMP(3))
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO result SELECT id, CONCAT(name, '-', CAST(score AS VARCHAR)), at FROM people WHERE score >= 5;",
        input.display(),
        out.display()
    );
    let spec = spec("sql", &dir.path().join("cluster"), 1, 2)
        .arg("sql", sql)
        .arg("parallelism", 2);
    run_to_end(spec).await;
    let mut got = read_rows(&out);
    got.sort();
    let want = sorted(
        (0..1000i64)
            .filter(|i| i % 7 >= 5)
            .map(|i| {
                vec![
                    i.to_string(),
                    format!("n{i}-{}", i % 7),
                    format!("2024-01-01 00:00:{:02}.000", i % 60),
                ]
            })
            .collect(),
    );
    assert_rows(&got, &want);
}

/// COUNT(DISTINCT) per auction and window, against sets built in Rust.
#[tokio::test(flavor = "multi_thread")]
async fn count_distinct_in_windows_equals_its_reference() {
    let size = 10_000;
    let mut bidders: BTreeMap<(i64, i64), std::collections::BTreeSet<i64>> = BTreeMap::new();
    for b in nexmark_bids(EVENTS) {
        let start = b.date_time - b.date_time.rem_euclid(size);
        bidders
            .entry((b.auction, start))
            .or_default()
            .insert(b.bidder);
    }
    let want = sorted(
        bidders
            .into_iter()
            .map(|((auction, start), set)| {
                vec![auction.to_string(), ts(start), set.len().to_string()]
            })
            .collect(),
    );
    let got = run_sql(
        |out| {
            bid_job(
                out,
                "auction BIGINT, ws TIMESTAMP(3), bidders BIGINT",
                "INSERT INTO out SELECT auction, TUMBLE_START(dateTime, INTERVAL '10' SECOND), COUNT(DISTINCT bidder)
                 FROM bid GROUP BY auction, TUMBLE(dateTime, INTERVAL '10' SECOND);",
            )
        },
        4,
    )
    .await;
    assert_rows(&got, &want);
}

/// Issue 16: `print` lost rows at the end of a job (`spate run` exited before the workers'
/// output was copied to its own). A bounded job at parallelism 2 prints every row, each once,
/// in 20 runs in a row.
#[test]
fn print_shows_every_row_of_a_bounded_job_in_twenty_runs() {
    const ROWS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("print.sql");
    std::fs::write(
        &job,
        format!(
            "CREATE TABLE t (seq BIGINT) WITH ('connector' = 'datagen', \
             'rows-per-second' = '1000000', 'fields.seq.kind' = 'sequence', \
             'fields.seq.start' = '1', 'fields.seq.end' = '{ROWS}');\n\
             CREATE TABLE out (seq BIGINT) WITH ('connector' = 'print');\n\
             INSERT INTO out SELECT seq FROM t;"
        ),
    )
    .unwrap();
    let want: Vec<u64> = (1..=ROWS).collect();
    for run in 1..=20 {
        let out = std::process::Command::new(spate())
            .args(["run", "--quiet", "-p", "2"])
            .arg(&job)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {run}: {stderr}");
        // `2> +I[17]`: the subtask, then the row.
        let mut got: Vec<u64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_once("> +I[")?.1.strip_suffix(']')?.parse().ok())
            .collect();
        got.sort_unstable();
        assert!(
            got == want,
            "run {run}: {} rows printed, {} distinct, of {ROWS}\n{stderr}",
            got.len(),
            {
                let mut distinct = got.clone();
                distinct.dedup();
                distinct.len()
            }
        );
    }
}

/// Issue 16: a GROUP BY without a window updates its results as a retract changelog, and `print`
/// shows each row's kind as Flink does (`+I[..]`, `-U[..]`, `+U[..]`). Each subtask prints its
/// keys' changes in order, so applied line by line to a table by key, every retraction must
/// name the row the table holds, and the table left behind must be the brute-force result of
/// the same bids: per auction, the number of bids and the highest price.
#[test]
fn print_shows_the_changes_of_an_updating_aggregate() {
    const EVENTS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("updates.sql");
    std::fs::write(
        &job,
        format!(
            "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3)) \
             WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events' = '{EVENTS}');\n\
             CREATE TABLE out (auction BIGINT, bids BIGINT, top BIGINT) WITH ('connector' = 'print');\n\
             INSERT INTO out SELECT auction, COUNT(*), MAX(price) FROM bid GROUP BY auction;"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(spate())
        .args(["run", "--quiet", "-p", "2"])
        .arg(&job)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for bid in nexmark_bids(EVENTS) {
        let (bids, top) = want.entry(bid.auction).or_insert((0, i64::MIN));
        *bids += 1;
        *top = (*top).max(bid.price);
    }
    let mut table: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `2> -U[1007, 3, 8812]`: the subtask, the kind, the row; the job's summary is not a row.
        let change = line.split_once("> ").map_or(line, |(_, change)| change);
        let Some((kind, row)) = change.split_once('[') else {
            continue;
        };
        let fields: Vec<i64> = row
            .strip_suffix(']')
            .unwrap_or_else(|| panic!("not a printed row: {line}"))
            .split(", ")
            .map(|f| f.parse().unwrap())
            .collect();
        let (auction, result) = (fields[0], (fields[1], fields[2]));
        *kinds.entry(kind.to_string()).or_default() += 1;
        match kind {
            "+I" | "+U" => assert_eq!(
                table.insert(auction, result),
                None,
                "{line}: the key has a row"
            ),
            "-U" => assert_eq!(
                table.remove(&auction),
                Some(result),
                "{line}: not the key's row"
            ),
            other => panic!("{line}: unexpected kind {other}"),
        }
    }
    assert_eq!(table, want);
    assert_eq!(kinds.get("+I"), Some(&want.len()), "{kinds:?}");
    assert_eq!(kinds.get("-U"), kinds.get("+U"), "{kinds:?}");
    assert!(kinds.get("-U").is_some_and(|&n| n > 0), "{kinds:?}");
}

/// The rows a printed changelog leaves behind, as a multiset: `+I`/`+U` add their row,
/// `-U`/`-D` take away exactly the row they name, which must be there (else a change was lost
/// or duplicated). Also counts the lines of each kind.
fn printed_table(stdout: &str) -> (BTreeMap<Vec<String>, usize>, BTreeMap<String, usize>) {
    let mut table: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for line in stdout.lines() {
        // `2> -U[10, 1234.5]`: the subtask, the kind, the row; the job's summary is not a row.
        let change = line.split_once("> ").map_or(line, |(_, change)| change);
        let Some((kind, row)) = change.split_once('[') else {
            continue;
        };
        let row: Vec<String> = row
            .strip_suffix(']')
            .unwrap_or_else(|| panic!("not a printed row: {line}"))
            .split(", ")
            .map(str::to_string)
            .collect();
        *kinds.entry(kind.to_string()).or_default() += 1;
        match kind {
            "+I" | "+U" => *table.entry(row).or_default() += 1,
            "-U" | "-D" => match table.get_mut(&row) {
                Some(1) => {
                    table.remove(&row);
                }
                Some(copies) => *copies -= 1,
                None => panic!("{line}: retracts a row the table does not hold"),
            },
            other => panic!("{line}: unexpected kind {other}"),
        }
    }
    (table, kinds)
}

/// Runs `sql` with `spate run -p parallelism`; returns what it printed.
fn spate_run_printing(sql: &str, parallelism: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sql");
    std::fs::write(&job, sql).unwrap();
    let out = std::process::Command::new(spate())
        .args(["run", "--quiet", "-p", &parallelism.to_string()])
        .arg(&job)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nexmark q20, a regular join with a filter: every bid of an auction in category 10 with the
/// auction's columns; by brute force over the same events.
async fn q20(parallelism: u32) {
    let config = NexmarkConfig {
        events: Some(EVENTS),
        ..NexmarkConfig::default()
    };
    let mut auctions = HashMap::new();
    for n in 0..EVENTS {
        if let NexmarkEvent::Auction(auction) = config.event(n) {
            auctions.insert(auction.id, auction);
        }
    }
    let want: Vec<Vec<String>> = nexmark_bids(EVENTS)
        .iter()
        .filter_map(|b| {
            let a = auctions.get(&b.auction).filter(|a| a.category == 10)?;
            Some(vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                b.price.to_string(),
                text(&b.channel),
                text(&b.url),
                ts(b.date_time),
                text(&b.extra),
                text(&a.item_name),
                text(&a.description),
                a.initial_bid.to_string(),
                a.reserve.to_string(),
                ts(a.date_time),
                ts(a.expires),
                a.seller.to_string(),
                a.category.to_string(),
                text(&a.extra),
            ])
        })
        .collect();
    assert!(want.len() > 100, "the reference has rows: {}", want.len());
    assert_rows(&run_example("q20.sql", parallelism).await, &sorted(want));
}

#[tokio::test(flavor = "multi_thread")]
async fn nexmark_q20_at_parallelism_1_and_4() {
    q20(1).await;
    q20(4).await;
}

/// An example job with fewer events and its blackhole sink turned into `print`.
fn printing_example(name: &str, events: u64) -> String {
    example_with_sink(name, events, "'connector' = 'print'")
}

/// The one row per key a printed changelog leaves, checked to be there once.
fn printed_rows(stdout: &str) -> Vec<Vec<String>> {
    let (table, kinds) = printed_table(stdout);
    assert!(
        kinds.get("-U").is_some_and(|&n| n > 0),
        "results are updated: {kinds:?}"
    );
    table
        .into_iter()
        .map(|(row, copies)| {
            assert_eq!(copies, 1, "{row:?} is in the table {copies} times");
            row
        })
        .collect()
}

/// The day of a Nexmark timestamp as DATE_FORMAT(t, 'yyyy-MM-dd') writes it (by chrono).
fn day(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .expect("a timestamp in range")
        .format("%Y-%m-%d")
        .to_string()
}

/// The price range q15 and q17 count a bid in: 1, 2 or 3.
fn price_rank(price: i64) -> usize {
    match price {
        ..10_000 => 1,
        10_000..1_000_000 => 2,
        _ => 3,
    }
}

/// Bids, distinct bidders and distinct auctions, in all and per price range, as q15 and q16
/// count them by brute force.
#[derive(Default)]
struct RangeCounts {
    bids: [i64; 4],
    bidders: [BTreeSet<i64>; 4],
    auctions: [BTreeSet<i64>; 4],
}

impl RangeCounts {
    fn add(&mut self, bid: &Bid) {
        for rank in [0, price_rank(bid.price)] {
            self.bids[rank] += 1;
            self.bidders[rank].insert(bid.bidder);
            self.auctions[rank].insert(bid.auction);
        }
    }

    /// The twelve counts, in the queries' column order.
    fn columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = self.bids.iter().map(i64::to_string).collect();
        columns.extend(self.bidders.iter().map(|s| s.len().to_string()));
        columns.extend(self.auctions.iter().map(|s| s.len().to_string()));
        columns
    }
}

/// CONCAT, REGEXP_REPLACE, COALESCE and IFNULL give Flink's results, by brute force over the
/// same bids: CONCAT is NULL when an argument is (DataFusion's skips it), REGEXP_REPLACE
/// replaces every match (DataFusion's the first) and reads `$n` as Java does, COALESCE and
/// IFNULL take the first value that is not NULL.
#[test]
fn flink_string_functions_give_flinks_results() {
    const EVENTS: u64 = 3_000;
    let sql = format!(
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, \
             url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR) \
         WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events' = '{EVENTS}');
         CREATE TABLE out (auction BIGINT, joined VARCHAR, vowels VARCHAR, swapped VARCHAR, \
             chosen VARCHAR, kept VARCHAR) WITH ('connector' = 'print');
         INSERT INTO out SELECT auction,
             CONCAT(NULLIF(channel, 'Google'), '|', url),
             REGEXP_REPLACE(url, '[aeiou]', '_'),
             REGEXP_REPLACE(url, '([a-z_]+)=([0-9]+)', '$2=$1'),
             COALESCE(NULLIF(channel, 'Apple'), CAST(NULL AS VARCHAR), 'none'),
             IFNULL(NULLIF(channel, 'Baidu'), 'was baidu')
         FROM bid;"
    );
    // `name=digits` pairs of the query string swapped, as `$2=$1` does to each.
    let swapped = |url: &str| match url.split_once('?') {
        None => url.to_string(),
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| {
                    let (name, value) = pair.split_once('=').expect("name=value");
                    assert!(value.chars().all(|c| c.is_ascii_digit()), "{url}");
                    format!("{value}={name}")
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
    };
    let mut want: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for bid in nexmark_bids(EVENTS) {
        let or = |keep: bool, value: String, other: &str| {
            if keep { value } else { other.to_string() }
        };
        let row = vec![
            bid.auction.to_string(),
            or(
                bid.channel != "Google",
                format!("{}|{}", bid.channel, bid.url),
                "null",
            ),
            bid.url
                .chars()
                .map(|c| if "aeiou".contains(c) { '_' } else { c })
                .collect(),
            swapped(&bid.url),
            or(bid.channel != "Apple", bid.channel.clone(), "none"),
            or(bid.channel != "Baidu", bid.channel.clone(), "was baidu"),
        ];
        *want.entry(row).or_default() += 1;
    }
    let rows = || want.keys();
    assert!(rows().any(|r| r[1] == "null") && rows().any(|r| r[1] != "null"));
    assert!(
        rows().any(|r| r[3].contains("=channel_id")),
        "two pairs swapped"
    );
    assert!(rows().any(|r| r[4] == "none") && rows().any(|r| r[5] == "was baidu"));
    assert_prints_inserts(&sql, 2, &want);
}

/// Nexmark q15 as written in `examples/q15.sql` (fewer events, a print sink): per day, bids,
/// distinct bidders and distinct auctions, in all and per price range (COUNT and
/// COUNT(DISTINCT) with FILTER). The table its changes leave must be the brute-force counts.
fn q15(parallelism: u32) {
    const EVENTS: u64 = 30_000;
    let mut days: BTreeMap<String, RangeCounts> = BTreeMap::new();
    for bid in nexmark_bids(EVENTS) {
        days.entry(day(bid.date_time)).or_default().add(&bid);
    }
    let want: Vec<Vec<String>> = days
        .iter()
        .map(|(day, counts)| [vec![day.clone()], counts.columns()].concat())
        .collect();
    assert!(
        want.iter().all(|row| row[1..].iter().all(|n| n != "0")),
        "every range has bids: {want:?}"
    );
    let got = printed_rows(&spate_run_printing(
        &printing_example("q15.sql", EVENTS),
        parallelism,
    ));
    assert_eq!(got, want, "p={parallelism}");
}

#[test]
fn nexmark_q15_at_parallelism_1_and_4() {
    q15(1);
    q15(4);
}

/// Nexmark q16 as written in `examples/q16.sql` (fewer events, a print sink): q15's counts per
/// channel and day, and the day's latest minute (MAX of a string), against brute force. At 4
/// events per second of event time the bids span two hours and cross midnight.
fn q16(parallelism: u32) {
    const EVENTS: u64 = 30_000;
    const RATE: u64 = 4;
    let mut groups: BTreeMap<(String, String), (String, RangeCounts)> = BTreeMap::new();
    for bid in nexmark_bids_at(EVENTS, RATE) {
        let (latest, counts) = groups
            .entry((bid.channel.to_string(), day(bid.date_time)))
            .or_default();
        let minute = minute(bid.date_time);
        if minute > *latest {
            *latest = minute;
        }
        counts.add(&bid);
    }
    let want: Vec<Vec<String>> = groups
        .into_iter()
        .map(|((channel, day), (latest, counts))| {
            [vec![channel, day, latest], counts.columns()].concat()
        })
        .collect();
    let days: BTreeSet<&String> = want.iter().map(|row| &row[1]).collect();
    let minutes: BTreeSet<&String> = want.iter().map(|row| &row[2]).collect();
    assert!(
        days.len() == 2 && minutes.len() > 10,
        "days and latest minutes differ: {days:?} {minutes:?}"
    );
    let got = printed_rows(&spate_run_printing(
        &printing_example_at_rate("q16.sql", EVENTS, RATE),
        parallelism,
    ));
    assert_eq!(got, want, "p={parallelism}");
}

#[test]
fn nexmark_q16_at_parallelism_1_and_4() {
    q16(1);
    q16(4);
}

/// The minute of a Nexmark timestamp as DATE_FORMAT(t, 'HH:mm') writes it (by chrono).
fn minute(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .expect("a timestamp in range")
        .format("%H:%M")
        .to_string()
}

/// Nexmark q17 as written in `examples/q17.sql` (fewer events, a print sink): per auction and
/// day, bids per price range (COUNT with FILTER) and the least, greatest, average and total
/// price, against the same by brute force.
fn q17(parallelism: u32) {
    const EVENTS: u64 = 30_000;
    let mut groups: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
    for bid in nexmark_bids(EVENTS) {
        groups
            .entry((bid.auction, day(bid.date_time)))
            .or_default()
            .push(bid.price);
    }
    let got = printed_rows(&spate_run_printing(
        &printing_example("q17.sql", EVENTS),
        parallelism,
    ));
    assert_eq!(got.len(), groups.len(), "groups (p={parallelism})");
    for row in &got {
        let key = (row[0].parse::<i64>().unwrap(), row[1].clone());
        let prices = groups
            .get(&key)
            .unwrap_or_else(|| panic!("{row:?}: no such group"));
        let mut ranks = [0i64; 4];
        for &price in prices {
            ranks[0] += 1;
            ranks[price_rank(price)] += 1;
        }
        let sum: i64 = prices.iter().sum();
        let mut want: Vec<String> = ranks.iter().map(i64::to_string).collect();
        want.push(prices.iter().min().unwrap().to_string());
        want.push(prices.iter().max().unwrap().to_string());
        assert_eq!(row[2..8], want[..], "{row:?} (p={parallelism})");
        let mean: f64 = row[8].parse().unwrap();
        let want_mean = sum as f64 / prices.len() as f64;
        assert!(
            (mean - want_mean).abs() <= 1e-9 * want_mean.abs(),
            "{row:?}: average, want {want_mean}"
        );
        assert_eq!(row[9], sum.to_string(), "{row:?}");
    }
}

#[test]
fn nexmark_q17_at_parallelism_1_and_4() {
    q17(1);
    q17(4);
}

/// The best a key has seen (by some measure) and every printed row that has it: rows that tie.
type Best<M> = (M, Vec<Vec<String>>);

/// A timestamp as `print` shows it (by chrono).
fn printed_time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .expect("a timestamp in range")
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

/// Nexmark q9 as written in `examples/q9.sql` (fewer events, a print sink): the table its
/// changes leave holds, per auction with a bid while it was open, the auction joined with its
/// highest such bid (the earliest of equal ones; bids equal in both tie).
fn q9(parallelism: u32) {
    const EVENTS: u64 = 40_000;
    let config = NexmarkConfig {
        events: Some(EVENTS),
        ..NexmarkConfig::default()
    };
    let mut auctions = HashMap::new();
    for n in 0..EVENTS {
        if let NexmarkEvent::Auction(auction) = config.event(n) {
            auctions.insert(auction.id, auction);
        }
    }
    // Per auction: the best (price, earliest time) and the rows that have it.
    let mut winners: BTreeMap<i64, Best<(i64, i64)>> = BTreeMap::new();
    for bid in nexmark_bids(EVENTS) {
        let Some(a) = auctions.get(&bid.auction) else {
            continue;
        };
        if !(a.date_time..=a.expires).contains(&bid.date_time) {
            continue;
        }
        let row = vec![
            a.id.to_string(),
            a.item_name.clone(),
            a.description.clone(),
            a.initial_bid.to_string(),
            a.reserve.to_string(),
            printed_time(a.date_time),
            printed_time(a.expires),
            a.seller.to_string(),
            a.category.to_string(),
            a.extra.clone(),
            bid.auction.to_string(),
            bid.bidder.to_string(),
            bid.price.to_string(),
            printed_time(bid.date_time),
            bid.extra.clone(),
        ];
        // Higher prices first, then earlier times: compare (price, -time).
        let rank = (bid.price, -bid.date_time);
        let (best, rows) = winners.entry(a.id).or_insert((rank, Vec::new()));
        if rank > *best {
            (*best, *rows) = (rank, Vec::new());
        }
        if rank == *best {
            rows.push(row);
        }
    }
    assert!(winners.len() > 10, "auctions with bids: {}", winners.len());
    let (table, kinds) = printed_table(&spate_run_printing(
        &printing_example("q9.sql", EVENTS),
        parallelism,
    ));
    assert!(
        kinds.get("-U").is_some_and(|&n| n > 0),
        "higher bids replace winners: {kinds:?}"
    );
    assert_eq!(table.len(), winners.len(), "one winner per auction");
    for (row, copies) in &table {
        assert_eq!(*copies, 1, "{row:?}");
        let (_, rows) = &winners[&row[0].parse::<i64>().unwrap()];
        assert!(rows.contains(row), "{row:?} is not a winning bid: {rows:?}");
    }
}

#[test]
fn nexmark_q9_at_parallelism_1_and_4() {
    q9(1);
    q9(4);
}

/// A bid as `print` shows its columns.
fn printed_bid(bid: &spate_connectors::nexmark::Bid) -> Vec<String> {
    let time = printed_time(bid.date_time);
    vec![
        bid.auction.to_string(),
        bid.bidder.to_string(),
        bid.price.to_string(),
        bid.channel.clone(),
        bid.url.clone(),
        time,
        bid.extra.clone(),
    ]
}

/// Nexmark q18 as written in `examples/q18.sql` (fewer events, a print sink): the table its
/// changes leave holds, per bidder and auction, one of their bids with the latest time (bids
/// of one time tie), and nothing else.
fn q18(parallelism: u32) {
    const EVENTS: u64 = 30_000;
    let mut latest: BTreeMap<(i64, i64), Best<i64>> = BTreeMap::new();
    for bid in nexmark_bids(EVENTS) {
        let (time, rows) = latest
            .entry((bid.bidder, bid.auction))
            .or_insert((i64::MIN, Vec::new()));
        if bid.date_time > *time {
            (*time, *rows) = (bid.date_time, Vec::new());
        }
        if bid.date_time == *time {
            rows.push(printed_bid(&bid));
        }
    }
    let (table, kinds) = printed_table(&spate_run_printing(
        &printing_example("q18.sql", EVENTS),
        parallelism,
    ));
    assert!(
        kinds.get("-U").is_some_and(|&n| n > 0),
        "later bids replace earlier ones: {kinds:?}"
    );
    assert_eq!(table.len(), latest.len(), "one row per bidder and auction");
    for (row, copies) in &table {
        assert_eq!(*copies, 1, "{row:?}");
        let key = (row[1].parse().unwrap(), row[0].parse().unwrap());
        let (_, rows) = &latest[&key];
        assert!(rows.contains(row), "{row:?} is not a latest bid: {rows:?}");
    }
}

#[test]
fn nexmark_q18_at_parallelism_1_and_4() {
    q18(1);
    q18(4);
}

/// Nexmark q19 as written in `examples/q19.sql` (fewer events, a print sink): per auction,
/// ranks 1 to 10 (or as many as it has bids) hold bids of that auction whose prices are its ten
/// highest, in order (bids of one price tie, so which of them holds a rank is not checked).
fn q19(parallelism: u32) {
    const EVENTS: u64 = 30_000;
    let mut bids: BTreeMap<i64, Vec<Vec<String>>> = BTreeMap::new();
    for bid in nexmark_bids(EVENTS) {
        bids.entry(bid.auction).or_default().push(printed_bid(&bid));
    }
    let (table, kinds) = printed_table(&spate_run_printing(
        &printing_example("q19.sql", EVENTS),
        parallelism,
    ));
    assert!(
        kinds.get("-U").is_some_and(|&n| n > 0),
        "new bids move others down: {kinds:?}"
    );
    let mut ranked: BTreeMap<i64, BTreeMap<u64, Vec<String>>> = BTreeMap::new();
    for (row, copies) in table {
        assert_eq!(copies, 1, "{row:?}");
        let (bid, rank) = (row[..7].to_vec(), row[7].parse().unwrap());
        let auction = row[0].parse().unwrap();
        assert!(
            ranked
                .entry(auction)
                .or_default()
                .insert(rank, bid)
                .is_none(),
            "auction {auction} has two rows of rank {rank}"
        );
    }
    assert_eq!(
        ranked.len(),
        bids.len(),
        "every auction with bids is ranked"
    );
    for (auction, ranks) in &ranked {
        let all = &bids[auction];
        let mut prices: Vec<i64> = all.iter().map(|b| b[2].parse().unwrap()).collect();
        prices.sort_unstable_by(|a, b| b.cmp(a));
        prices.truncate(10);
        let got: Vec<i64> = ranks.values().map(|b| b[2].parse().unwrap()).collect();
        assert_eq!(
            ranks.keys().copied().collect::<Vec<_>>(),
            (1..=prices.len() as u64).collect::<Vec<_>>(),
            "auction {auction}: ranks"
        );
        assert_eq!(got, prices, "auction {auction}: prices by rank");
        for bid in ranks.values() {
            assert!(all.contains(bid), "{bid:?} is no bid of auction {auction}");
        }
    }
}

#[test]
fn nexmark_q19_at_parallelism_1_and_4() {
    q19(1);
    q19(4);
}

/// Nexmark q4 as written in `examples/q4.sql` (fewer events, a print sink): a join of auctions
/// and bids, the highest bid per auction, averaged per category by a GROUP BY over that
/// changelog. The table its printed changes leave must be the brute-force average per category
/// of every auction's highest bid between its start and its end.
fn q4(parallelism: u32) {
    const EVENTS: u64 = 60_000;
    let sql = printing_example("q4.sql", EVENTS);
    let config = NexmarkConfig {
        events: Some(EVENTS),
        ..NexmarkConfig::default()
    };
    let (mut auctions, mut bids) = (HashMap::new(), Vec::new());
    for n in 0..EVENTS {
        match config.event(n) {
            NexmarkEvent::Auction(auction) => {
                auctions.insert(auction.id, auction);
            }
            NexmarkEvent::Bid(bid) => bids.push(bid),
            NexmarkEvent::Person(_) => {}
        }
    }
    let mut finals: HashMap<i64, (i64, i64)> = HashMap::new();
    for bid in &bids {
        let Some(auction) = auctions.get(&bid.auction) else {
            continue;
        };
        if (auction.date_time..=auction.expires).contains(&bid.date_time) {
            let last = finals
                .entry(auction.id)
                .or_insert((auction.category, bid.price));
            last.1 = last.1.max(bid.price);
        }
    }
    let mut per_category: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (category, price) in finals.values() {
        let (sum, count) = per_category.entry(*category).or_default();
        *sum += price;
        *count += 1;
    }
    assert!(per_category.len() >= 3, "categories: {per_category:?}");

    let (table, kinds) = printed_table(&spate_run_printing(&sql, parallelism));
    let got: BTreeMap<i64, f64> = table
        .iter()
        .map(|(row, copies)| {
            assert_eq!(*copies, 1, "{row:?} is in the table {copies} times");
            (row[0].parse().unwrap(), row[1].parse().unwrap())
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        per_category.keys().collect::<Vec<_>>(),
        "categories (p={parallelism})"
    );
    for (category, (sum, count)) in &per_category {
        let want = *sum as f64 / *count as f64;
        let got = got[category];
        assert!(
            (got - want).abs() <= 1e-9 * want.abs(),
            "category {category}: {got}, want {want} (p={parallelism})"
        );
    }
    assert!(
        kinds.get("-U").is_some_and(|&n| n > 0),
        "higher bids take old averages back: {kinds:?}"
    );
}

#[test]
fn nexmark_q4_at_parallelism_1_and_4() {
    q4(1);
    q4(4);
}

/// SELECT DISTINCT and COUNT(DISTINCT) without a window, over the bids: the distinct
/// (auction, bidder) pairs and each auction's number of distinct bidders, by brute force.
#[test]
fn distinct_rows_and_distinct_counts_equal_their_reference() {
    const EVENTS: u64 = 20_000;
    let bid = format!(
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3)) \
         WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events' = '{EVENTS}');\n"
    );
    let pairs = format!(
        "{bid}CREATE TABLE out (auction BIGINT, bidder BIGINT) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT DISTINCT auction, bidder FROM bid;"
    );
    let bidders = format!(
        "{bid}CREATE TABLE out (auction BIGINT, bidders BIGINT) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT auction, COUNT(DISTINCT bidder) FROM bid GROUP BY auction;"
    );
    let mut want_pairs: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut per_auction: BTreeMap<i64, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for bid in nexmark_bids(EVENTS) {
        want_pairs.insert(vec![bid.auction.to_string(), bid.bidder.to_string()], 1);
        per_auction
            .entry(bid.auction)
            .or_default()
            .insert(bid.bidder);
    }
    let want_bidders: BTreeMap<Vec<String>, usize> = per_auction
        .iter()
        .map(|(auction, bidders)| (vec![auction.to_string(), bidders.len().to_string()], 1))
        .collect();
    assert!(
        want_pairs.len() < nexmark_bids(EVENTS).len(),
        "bids repeat pairs"
    );

    let (table, kinds) = printed_table(&spate_run_printing(&pairs, 2));
    assert_eq!(table, want_pairs);
    assert_eq!(
        kinds.keys().collect::<Vec<_>>(),
        ["+I"],
        "a pair is inserted once"
    );
    let (table, _) = printed_table(&spate_run_printing(&bidders, 2));
    assert_eq!(table, want_bidders);
}

/// A LEFT JOIN on real processes: every person with each auction they sell, or padded with a
/// NULL auction while they sell none. A person comes before their auctions, so their padded
/// row goes out first and is taken back when the first auction comes; the table the changes
/// leave must be the brute-force left join of all people and auctions.
#[test]
fn a_left_join_pads_people_until_they_sell_and_ends_as_the_reference() {
    const EVENTS: u64 = 20_000;
    let sql = format!(
        "CREATE TABLE person (id BIGINT, name VARCHAR) \
         WITH ('connector' = 'nexmark', 'nexmark.table' = 'person', 'events' = '{EVENTS}');\n\
         CREATE TABLE auction (id BIGINT, seller BIGINT) \
         WITH ('connector' = 'nexmark', 'nexmark.table' = 'auction', 'events' = '{EVENTS}');\n\
         CREATE TABLE out (person BIGINT, name VARCHAR, auction BIGINT) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT P.id, P.name, A.id FROM person AS P LEFT JOIN auction AS A ON P.id = A.seller;"
    );
    let config = NexmarkConfig {
        events: Some(EVENTS),
        ..NexmarkConfig::default()
    };
    let (mut people, mut auctions) = (Vec::new(), Vec::new());
    for n in 0..EVENTS {
        match config.event(n) {
            NexmarkEvent::Person(person) => people.push(person),
            NexmarkEvent::Auction(auction) => auctions.push(auction),
            NexmarkEvent::Bid(_) => {}
        }
    }
    let mut want: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for person in &people {
        let sold: Vec<String> = auctions
            .iter()
            .filter(|a| a.seller == person.id)
            .map(|a| a.id.to_string())
            .collect();
        let sold = if sold.is_empty() {
            vec!["null".to_string()]
        } else {
            sold
        };
        for auction in sold {
            *want
                .entry(vec![person.id.to_string(), person.name.clone(), auction])
                .or_default() += 1;
        }
    }
    assert!(
        want.keys().any(|row| row[2] == "null") && want.keys().any(|row| row[2] != "null"),
        "people with and without auctions"
    );
    let (table, kinds) = printed_table(&spate_run_printing(&sql, 2));
    assert_eq!(table, want);
    assert!(
        kinds.get("-D").is_some_and(|&n| n > 0),
        "padded rows are taken back: {kinds:?}"
    );
}

/// An example job as `printing_example` makes it, with `rate` events per second of event time:
/// fewer events then span more windows.
fn printing_example_at_rate(name: &str, events: u64, rate: u64) -> String {
    let sql = printing_example(name, events);
    let bounded = format!("'events' = '{events}'");
    assert!(sql.contains(&bounded));
    sql.replace(
        &bounded,
        &format!("{bounded}, 'first-event-rate' = '{rate}'"),
    )
}

/// Runs `sql` printing; its changes must be inserts only, and their rows `want`.
fn assert_prints_inserts(sql: &str, parallelism: u32, want: &BTreeMap<Vec<String>, usize>) {
    let (table, kinds) = printed_table(&spate_run_printing(sql, parallelism));
    assert_eq!(&table, want, "p={parallelism}");
    assert_eq!(kinds.keys().collect::<Vec<_>>(), ["+I"], "insert-only");
}

/// The events of a Nexmark stream of `events` events at `rate` events per second of event time.
fn nexmark_events(events: u64, rate: u64) -> Vec<NexmarkEvent> {
    let config = NexmarkConfig {
        events: Some(events),
        first_event_rate: rate,
        ..NexmarkConfig::default()
    };
    (0..events).map(|n| config.event(n)).collect()
}

/// The start of the 10-second tumbling window holding `millis`.
fn ten_second_window(millis: i64) -> i64 {
    millis - millis.rem_euclid(10_000)
}

/// Nexmark q5 as written in `examples/q5.sql` (fewer, slower events; a print sink): per
/// 10-second window sliding by 2 seconds, every auction whose bid count is the window's
/// highest, with that count, inserted and never taken back (as Flink: the window's highest
/// count is a window aggregation, and the join a window join).
fn q5(parallelism: u32) {
    const EVENTS: u64 = 40_000;
    const RATE: u64 = 2_000;
    let mut want: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let rows = hot_items(EVENTS, RATE);
    for &(_, auction, n) in &rows {
        *want
            .entry(vec![auction.to_string(), n.to_string()])
            .or_default() += 1;
    }
    assert!(rows.len() > 10, "rows: {}", rows.len());
    let sql = printing_example_at_rate("q5.sql", EVENTS, RATE);
    assert_prints_inserts(&sql, parallelism, &want);
}

#[test]
fn nexmark_q5_at_parallelism_1_and_4() {
    q5(1);
    q5(4);
}

/// Nexmark q7 as written in `examples/q7.sql` (fewer, slower events; a print sink): every bid
/// whose price is the highest of a 10-second window ending at most 10 seconds after it, once
/// per such window, inserted and never taken back.
fn q7(parallelism: u32) {
    const EVENTS: u64 = 40_000;
    const RATE: u64 = 400;
    let bids = nexmark_bids_at(EVENTS, RATE);
    let mut highest: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        let best = highest
            .entry(ten_second_window(b.date_time) + 10_000)
            .or_insert(i64::MIN);
        *best = (*best).max(b.price);
    }
    let mut want: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for (&end, &price) in &highest {
        for b in &bids {
            if b.price == price && (end - 10_000..=end).contains(&b.date_time) {
                *want
                    .entry(vec![
                        b.auction.to_string(),
                        b.bidder.to_string(),
                        b.price.to_string(),
                        printed_time(b.date_time),
                        b.extra.clone(),
                    ])
                    .or_default() += 1;
            }
        }
    }
    assert!(highest.len() > 5, "windows: {}", highest.len());
    let sql = printing_example_at_rate("q7.sql", EVENTS, RATE);
    assert_prints_inserts(&sql, parallelism, &want);
}

#[test]
fn nexmark_q7_at_parallelism_1_and_4() {
    q7(1);
    q7(4);
}

/// Nexmark q8 as written in `examples/q8.sql` (fewer, slower events; a print sink): each person
/// who joined in a 10-second window and opened an auction in the same window, once per window,
/// inserted and never taken back.
fn q8(parallelism: u32) {
    const EVENTS: u64 = 40_000;
    const RATE: u64 = 1_000;
    let (mut people, mut sellers) = (BTreeSet::new(), BTreeSet::new());
    for event in nexmark_events(EVENTS, RATE) {
        match event {
            NexmarkEvent::Person(p) => {
                people.insert((p.id, p.name, ten_second_window(p.date_time)));
            }
            NexmarkEvent::Auction(a) => {
                sellers.insert((a.seller, ten_second_window(a.date_time)));
            }
            NexmarkEvent::Bid(_) => {}
        }
    }
    let want: BTreeMap<Vec<String>, usize> = people
        .into_iter()
        .filter(|(id, _, start)| sellers.contains(&(*id, *start)))
        .map(|(id, name, start)| (vec![id.to_string(), name, printed_time(start)], 1))
        .collect();
    assert!(want.len() > 10, "new sellers: {}", want.len());
    let sql = printing_example_at_rate("q8.sql", EVENTS, RATE);
    assert_prints_inserts(&sql, parallelism, &want);
}

#[test]
fn nexmark_q8_at_parallelism_1_and_4() {
    q8(1);
    q8(4);
}

/// UNION ALL of two filters of the bids (inserts), of a GROUP BY's changelog with a filter's
/// inserts, and UNION (distinct): the tables their printed changes leave, by brute force.
#[test]
fn unions_of_inserts_and_of_changelogs_equal_their_reference() {
    const EVENTS: u64 = 20_000;
    let bid = format!(
        "CREATE TABLE bid (auction BIGINT, price BIGINT) \
         WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events' = '{EVENTS}');\n\
         CREATE TABLE out (auction BIGINT, n BIGINT) WITH ('connector' = 'print');\n"
    );
    let bids = nexmark_bids(EVENTS);
    let cheap = |b: &&spate_connectors::nexmark::Bid| b.price < 1_000;
    let row = |auction: i64, n: i64| vec![auction.to_string(), n.to_string()];
    let multiset = |rows: Vec<Vec<String>>| {
        let mut table: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        for row in rows {
            *table.entry(row).or_default() += 1;
        }
        table
    };

    let both = spate_run_printing(
        &format!(
            "{bid}INSERT INTO out SELECT auction, price FROM bid WHERE price < 1000 \
             UNION ALL SELECT auction, price FROM bid WHERE auction % 2 = 0;"
        ),
        2,
    );
    let want = multiset(
        bids.iter()
            .filter(cheap)
            .chain(bids.iter().filter(|b| b.auction % 2 == 0))
            .map(|b| row(b.auction, b.price))
            .collect(),
    );
    assert!(want.len() > 100, "rows: {}", want.len());
    let (table, kinds) = printed_table(&both);
    assert_eq!(table, want, "UNION ALL of inserts");
    assert_eq!(kinds.keys().collect::<Vec<_>>(), ["+I"], "insert-only");

    let with_changes = spate_run_printing(
        &format!(
            "{bid}INSERT INTO out SELECT auction, COUNT(*) FROM bid GROUP BY auction \
             UNION ALL SELECT auction, price FROM bid WHERE price < 1000;"
        ),
        2,
    );
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        *counts.entry(b.auction).or_default() += 1;
    }
    let want = multiset(
        counts
            .iter()
            .map(|(&auction, &n)| row(auction, n))
            .chain(bids.iter().filter(cheap).map(|b| row(b.auction, b.price)))
            .collect(),
    );
    let (table, kinds) = printed_table(&with_changes);
    assert_eq!(table, want, "UNION ALL of a changelog and inserts");
    assert!(kinds.get("-U").is_some_and(|&n| n > 0), "{kinds:?}");

    let distinct = spate_run_printing(
        &format!(
            "{bid}INSERT INTO out SELECT auction, 0 FROM bid WHERE price < 1000 \
             UNION SELECT auction, 0 FROM bid WHERE auction % 2 = 0;"
        ),
        2,
    );
    let want = multiset(
        bids.iter()
            .filter(|b| b.price < 1_000 || b.auction % 2 == 0)
            .map(|b| row(b.auction, 0))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    );
    let (table, _) = printed_table(&distinct);
    assert_eq!(table, want, "UNION");
}
