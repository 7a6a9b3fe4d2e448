//! Shared by the integration tests: start real clusters of the `spate` binary and compute
//! reference results by brute force from the generator's events.

#![allow(dead_code)]

mod bids;
mod changelog;
mod co_process;
mod kafka_upserts;
mod kafka_window;
mod kill;

// Each test binary uses its own part of this module.
#[allow(unused_imports)]
pub use bids::*;
#[allow(unused_imports)]
pub use changelog::*;
#[allow(unused_imports)]
pub use co_process::*;
#[allow(unused_imports)]
pub use kafka_upserts::*;
#[allow(unused_imports)]
pub use kafka_window::*;
#[allow(unused_imports)]
pub use kill::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use spate_cluster::{ClusterOutcome, ClusterSpec, LocalCluster, log_tail};
use spate_connectors::nexmark::{Bid, NexmarkConfig, NexmarkEvent};
use spate_operators::generator::{GeneratedEvent, GeneratorConfig};
use spate_proto::v1::{JobState, JobStatus};

pub fn spate() -> &'static str {
    env!("CARGO_BIN_EXE_spate")
}

pub fn spec(job: &str, work_dir: &Path, workers: u32, slots: u32) -> ClusterSpec {
    let mut spec = ClusterSpec::new(spate(), job, work_dir);
    spec.workers = workers;
    spec.slots_per_worker = slots;
    spec
}

/// The logs of every process of a cluster, for a failing assertion's message.
pub fn logs(work_dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(work_dir.join("logs")) {
        for entry in entries.flatten() {
            text.push_str(&format!(
                "--- {}\n{}\n",
                entry.path().display(),
                log_tail(&entry.path(), 30)
            ));
        }
    }
    text
}

/// The example job `examples/<name>` with `events` events and its blackhole sink turned into CSV
/// files under `out`.
pub fn example_sql(name: &str, out: &Path, events: u64) -> String {
    example_with_sink(
        name,
        events,
        &format!(
            "'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv'",
            out.display()
        ),
    )
}

/// The example job `examples/<name>` with `events` events and, in place of its blackhole
/// sink's `'connector' = 'blackhole'`, the options `sink`.
pub fn example_with_sink(name: &str, events: u64, sink: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains("'events' = '10000000'") && text.contains("'connector' = 'blackhole'"));
    text.replace("'events' = '10000000'", &format!("'events' = '{events}'"))
        .replace("'connector' = 'blackhole'", sink)
}

pub async fn run_to_end(spec: ClusterSpec) -> ClusterOutcome {
    let work_dir = spec.work_dir.clone();
    let cluster = LocalCluster::start(spec).await.expect("cluster starts");
    let outcome = cluster
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&work_dir)));
    assert!(
        outcome.status.state == JobState::Finished as i32,
        "job did not finish: {}\n{}",
        outcome.status.failure,
        logs(&work_dir)
    );
    assert!(
        outcome.jobmaster_exit.success(),
        "JobMaster exit {}",
        outcome.jobmaster_exit
    );
    for (i, exit) in outcome.worker_exits.iter().enumerate() {
        assert!(
            exit.is_some_and(|e| e.success()),
            "worker {i} exit {exit:?}\n{}",
            logs(&work_dir)
        );
    }
    outcome
}

/// Polls the job's status until `done` says so (the test's own timeout bounds it).
pub async fn wait_for(
    cluster: &mut LocalCluster,
    mut done: impl FnMut(&JobStatus) -> bool,
) -> JobStatus {
    loop {
        if let Ok(status) = cluster.status().await
            && done(&status)
        {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two datagen sequences of `events` rows at `rate` rows per second per subtask, `l (seq)` and
/// `r (id, v = id * 3)`, an inner join of them on `seq = id` into a CSV table `out (seq, v)`
/// under `out`, and what it must write: `(n, 3n)` for every n, once.
pub fn join_job(out: &Path, events: u64, rate: u64) -> (String, Vec<Vec<String>>) {
    let sequence = |name: &str, columns: &str, column: &str| {
        format!(
            "CREATE TABLE {name} ({columns}) WITH (
                'connector' = 'datagen', 'rows-per-second' = '{rate}',
                'fields.{column}.kind' = 'sequence', 'fields.{column}.start' = '1',
                'fields.{column}.end' = '{events}'
            );\n"
        )
    };
    let sql = format!(
        "{}{}CREATE TABLE out (seq BIGINT, v BIGINT) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv'
        );
        INSERT INTO out SELECT l.seq, r.v FROM l JOIN r ON l.seq = r.id;",
        sequence("l", "seq BIGINT", "seq"),
        sequence("r", "id BIGINT, v AS id * 3", "id"),
        out.display()
    );
    let mut want: Vec<Vec<String>> = (1..=events as i64)
        .map(|n| vec![n.to_string(), (3 * n).to_string()])
        .collect();
    want.sort();
    (sql, want)
}

/// Every CSV row written under `dir`, as fields.
pub fn read_rows(dir: &Path) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir).expect("output directory").flatten() {
        // Hidden files are in-progress or uncommitted part files, which readers skip.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        rows.extend(read_part_file(&entry.path()));
    }
    rows
}

/// The rows of one part file: CSV fields, or debezium-json changes (`.json`) as rows.
pub fn read_part_file(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("part file");
    match path.extension().is_some_and(|e| e == "json") {
        true => text.lines().map(debezium_row).collect(),
        false => text
            .lines()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect(),
    }
}

/// A debezium-json change as a row: its op (`c` or `d`), then the values of the row it adds
/// (`after`) or takes back (`before`), in the order of their column names (name the columns
/// so that this is their declared order); NULL is empty.
fn debezium_row(line: &str) -> Vec<String> {
    let change: serde_json::Value = serde_json::from_str(line).expect("a debezium-json line");
    let op = change["op"].as_str().expect("op").to_string();
    let row = match op.as_str() {
        "c" => &change["after"],
        "d" => &change["before"],
        other => panic!("unknown op {other} in {line}"),
    };
    let mut values: Vec<(&String, &serde_json::Value)> =
        row.as_object().expect("a row object").iter().collect();
    values.sort_by_key(|(name, _)| *name);
    std::iter::once(op)
        .chain(values.into_iter().map(|(_, value)| match value {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        }))
        .collect()
}

pub fn generator(events: u64, keys: u64, seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        events: Some(events),
        keys,
        seed,
        ..GeneratorConfig::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowRow {
    pub count: i64,
    pub sum: i64,
    pub min: i64,
    pub max: i64,
    pub avg: f64,
}

/// (key, window_start, window_end) -> aggregates.
pub type Windows = BTreeMap<(i64, i64, i64), WindowRow>;

fn add(windows: &mut Windows, key: i64, start: i64, end: i64, value: i64) {
    let row = windows.entry((key, start, end)).or_insert(WindowRow {
        count: 0,
        sum: 0,
        min: i64::MAX,
        max: i64::MIN,
        avg: 0.0,
    });
    row.count += 1;
    row.sum += value;
    row.min = row.min.min(value);
    row.max = row.max.max(value);
    row.avg = row.sum as f64 / row.count as f64;
}

pub enum Assigner {
    Tumble(i64),
    Hop(i64, i64),
    Session(i64),
}

/// The windows of `events`, computed by brute force: every event into every window it belongs
/// to; sessions by sorting each key's events and splitting at gaps.
pub fn reference(events: &[GeneratedEvent], assigner: &Assigner) -> Windows {
    let mut windows = Windows::new();
    match assigner {
        Assigner::Tumble(size) => {
            for e in events {
                let start = e.ts - e.ts.rem_euclid(*size);
                add(&mut windows, e.key, start, start + size, e.value);
            }
        }
        Assigner::Hop(size, slide) => {
            for e in events {
                let mut start = e.ts - e.ts.rem_euclid(*slide);
                while start > e.ts - size {
                    add(&mut windows, e.key, start, start + size, e.value);
                    start -= slide;
                }
            }
        }
        Assigner::Session(gap) => {
            let mut by_key: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
            for e in events {
                by_key.entry(e.key).or_default().push((e.ts, e.value));
            }
            for (key, mut list) in by_key {
                list.sort_unstable();
                let mut session: Vec<(i64, i64)> = Vec::new();
                let flush = |session: &mut Vec<(i64, i64)>, windows: &mut Windows| {
                    if let (Some(first), Some(last)) = (session.first(), session.last()) {
                        let (start, end) = (first.0, last.0 + gap);
                        for (_, value) in session.iter() {
                            add(windows, key, start, end, *value);
                        }
                    }
                    session.clear();
                };
                // As Flink's TimeWindow.intersects: sessions that touch ([a, b) and [b, c)) merge.
                for (ts, value) in list {
                    if session.last().is_some_and(|(last, _)| ts > last + gap) {
                        flush(&mut session, &mut windows);
                    }
                    session.push((ts, value));
                }
                flush(&mut session, &mut windows);
            }
        }
    }
    windows
}

/// Parses the window-count job's CSV output (key, start, end, count, sum, min, max, avg).
pub fn parse_windows(rows: &[Vec<String>]) -> Windows {
    let mut windows = Windows::new();
    for row in rows {
        assert_eq!(row.len(), 8, "unexpected row {row:?}");
        let n = |i: usize| {
            row[i]
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("field {i} of {row:?}"))
        };
        let previous = windows.insert(
            (n(0), n(1), n(2)),
            WindowRow {
                count: n(3),
                sum: n(4),
                min: n(5),
                max: n(6),
                avg: row[7].parse().expect("avg"),
            },
        );
        assert!(previous.is_none(), "window emitted twice: {row:?}");
    }
    windows
}

/// Equal windows, aggregates exact (the average within floating-point rounding).
pub fn assert_same_windows(got: &Windows, want: &Windows) {
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} windows expected, {} produced; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
        want.len(),
        got.len()
    );
    for (key, w) in want {
        let g = &got[key];
        assert_eq!(
            (g.count, g.sum, g.min, g.max),
            (w.count, w.sum, w.min, w.max),
            "window {key:?}"
        );
        assert!(
            (g.avg - w.avg).abs() <= 1e-9 * w.avg.abs().max(1.0),
            "avg of {key:?}: {} vs {}",
            g.avg,
            w.avg
        );
    }
}

/// The bids among the first `events` events of the default Nexmark stream.
pub fn nexmark_bids(events: u64) -> Vec<Bid> {
    nexmark_bids_at(events, NexmarkConfig::default().first_event_rate)
}

/// The bids among the first `events` events of the Nexmark stream of `first_event_rate` events
/// per second of event time.
pub fn nexmark_bids_at(events: u64, first_event_rate: u64) -> Vec<Bid> {
    let config = NexmarkConfig {
        events: Some(events),
        first_event_rate,
        ..NexmarkConfig::default()
    };
    (0..events)
        .filter_map(|n| match config.event(n) {
            NexmarkEvent::Bid(bid) => Some(bid),
            _ => None,
        })
        .collect()
}

/// Flink's timestamp text, `yyyy-MM-dd HH:mm:ss.SSS`, for epoch milliseconds (by chrono, an
/// implementation independent of Spate's).
pub fn ts(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .expect("in range")
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}
