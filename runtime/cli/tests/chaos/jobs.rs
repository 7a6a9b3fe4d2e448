//! The matrix of jobs the faults hit: each source (nexmark, datagen with computed columns,
//! filesystem, the generator), the exactly-once file sink, stateless and windowed operators
//! (tumbling, hopping, session), a keyed co-process function on two inputs, SQL's regular join,
//! changelogs (a running count retracting its earlier results, SQL's group aggregate written
//! as debezium-json, a group aggregate over another one's changes, a Top-N and a LEFT JOIN)
//! through a hash exchange, Nexmark q5's cascading window aggregation and window join, Kafka in
//! and out (a topic written while the job reads it, a topic written exactly once, a topic of
//! upserts read, normalized, aggregated and written as upserts exactly once), heap and
//! RocksDB state, region and full failover. Each job's reference is computed here by brute
//! force from the data it reads, independently of Spate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use spate_operators::generator::GeneratedEvent;

use crate::common::{
    Assigner, KAFKA_WINDOW_COLUMNS, KafkaUpserts, KafkaWindow, bid_table, bids_priced_in_threes,
    co_process_reference, counts_per_key, debezium_count_changes, hop_counts, hot_items, join_job,
    reference, running_count_changes, sink, ts,
};

/// How much data a round reads and how fast (rows per second per source subtask).
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub events: u64,
    pub rate: u64,
}

/// Where a round of a job reads and writes.
pub struct RoundDirs {
    pub input: PathBuf,
    pub output: PathBuf,
    /// The suite's Kafka broker (`host:port`) and the topic this round may make there.
    pub kafka: String,
    pub topic: String,
}

/// Committed rows, each a list of CSV fields.
pub type Rows = Vec<Vec<String>>;

/// What a round runs: a job of the catalog with its arguments, and its reference rows (sorted).
pub struct Plan {
    pub job: &'static str,
    pub args: Vec<(&'static str, String)>,
    pub want: Rows,
    /// `want` is the table the committed changes (debezium-json rows) leave, not the changes
    /// themselves: for jobs whose changes depend on the order their inputs interleave in.
    pub table: bool,
    pub output: Output,
}

/// Where a round's committed rows are read from.
#[derive(Clone)]
pub enum Output {
    /// CSV or debezium-json files of the round's output directory.
    Files,
    /// A Kafka topic, with `read_committed`: the values of these columns of each JSON record.
    Topic {
        bootstrap: String,
        topic: String,
        columns: &'static [&'static str],
    },
    /// An upsert topic, with `read_committed`: the table it keeps, as the values of `key`'s
    /// columns then `columns` of each key's last record (a tombstone leaves no row).
    Upserts {
        bootstrap: String,
        topic: String,
        key: &'static [&'static str],
        columns: &'static [&'static str],
    },
}

impl Plan {
    fn sql(sql: String, want: Rows) -> Self {
        Plan {
            job: "sql",
            args: vec![("sql", sql)],
            want,
            table: false,
            output: Output::Files,
        }
    }

    fn sql_table(sql: String, want: Rows) -> Self {
        Plan {
            table: true,
            ..Plan::sql(sql, want)
        }
    }
}

pub struct Job {
    pub name: &'static str,
    pub state_backend: &'static str,
    pub failover: &'static str,
    /// The round's plan; may write input files.
    pub build: fn(&RoundDirs, Scale) -> Plan,
}

pub const PARALLELISM: u32 = 2;

pub fn matrix() -> Vec<Job> {
    vec![
        Job {
            name: "nexmark-filter",
            state_backend: "heap",
            failover: "region",
            build: nexmark_filter,
        },
        Job {
            name: "nexmark-hop",
            state_backend: "rocksdb",
            failover: "region",
            build: nexmark_hop,
        },
        Job {
            name: "datagen-computed-raw",
            state_backend: "heap",
            failover: "region",
            build: datagen_raw,
        },
        Job {
            name: "datagen-computed-tumble",
            state_backend: "heap",
            failover: "full",
            build: datagen_tumble,
        },
        Job {
            name: "files-session",
            state_backend: "rocksdb",
            failover: "full",
            build: files_session,
        },
        Job {
            name: "generated-co-process",
            state_backend: "rocksdb",
            failover: "region",
            build: co_process,
        },
        Job {
            name: "generated-running-count",
            state_backend: "heap",
            failover: "full",
            build: running_count,
        },
        Job {
            name: "datagen-group-count",
            state_backend: "rocksdb",
            failover: "region",
            build: datagen_group_count,
        },
        Job {
            name: "datagen-join",
            state_backend: "heap",
            failover: "full",
            build: datagen_join,
        },
        Job {
            name: "datagen-aggregate-of-changes",
            state_backend: "rocksdb",
            failover: "full",
            build: datagen_aggregate_of_changes,
        },
        Job {
            name: "datagen-top-n",
            state_backend: "rocksdb",
            failover: "region",
            build: datagen_top_n,
        },
        Job {
            name: "datagen-left-join",
            state_backend: "heap",
            failover: "region",
            build: datagen_left_join,
        },
        Job {
            name: "kafka-tumble-kafka",
            state_backend: "heap",
            failover: "region",
            build: kafka_tumble_kafka,
        },
        Job {
            name: "upsert-kafka-aggregate",
            state_backend: "rocksdb",
            failover: "full",
            build: upsert_kafka_aggregate,
        },
        Job {
            name: "nexmark-hot-items",
            state_backend: "rocksdb",
            failover: "region",
            build: nexmark_hot_items,
        },
    ]
}

/// Kafka in and out: a topic of the round's own, written while the job reads it (up to the
/// offsets the writer ends at), aggregated per key and second of event time, and written to
/// another topic exactly once (a Kafka transaction per checkpoint), read back with
/// `read_committed`. The broker itself takes no fault (yet): the faults hit the job's workers,
/// JobMaster and checkpoint storage.
fn kafka_tumble_kafka(dirs: &RoundDirs, scale: Scale) -> Plan {
    let output = format!("{}-out", dirs.topic);
    let job = KafkaWindow {
        bootstrap: &dirs.kafka,
        input: &dirs.topic,
        output: &output,
        partitions: 2,
        per_partition: scale.events / 2,
        // A tenth of a second's records per step, as the other sources' rate.
        step: (scale.rate / 10).max(1),
    };
    // The writer ends on its own; the round's end is the job's.
    drop(job.write_input());
    Plan {
        output: Output::Topic {
            bootstrap: dirs.kafka.clone(),
            topic: output.clone(),
            columns: &KAFKA_WINDOW_COLUMNS,
        },
        ..Plan::sql(job.sql(&dirs.topic), job.want())
    }
}

/// upsert-kafka in and out: a topic of upserts and tombstones of its own, written while the job
/// reads it, normalized into retractions (a keyed operator whose state is each row), grouped
/// into buckets and written as upserts exactly once. Upserts are idempotent, so the check is
/// the table the output topic keeps: a lost or doubled input change shows in the counts.
fn upsert_kafka_aggregate(dirs: &RoundDirs, scale: Scale) -> Plan {
    let output = format!("{}-out", dirs.topic);
    let job = KafkaUpserts {
        bootstrap: &dirs.kafka,
        input: &dirs.topic,
        output: &output,
        per_partition: scale.events / 2,
        step: (scale.rate / 10).max(1),
    };
    drop(job.write_input());
    Plan {
        output: Output::Upserts {
            bootstrap: dirs.kafka.clone(),
            topic: output.clone(),
            key: &["b"],
            columns: &["n", "total"],
        },
        ..Plan::sql(job.sql(&dirs.topic), job.want())
    }
}

/// SQL's LEFT JOIN: a sequence joined with the even numbers another sequence makes; an odd
/// number stays padded with NULL, an even one is padded until its match comes (or joined at
/// once, if the match came first), so the reference is the table the changes leave.
fn datagen_left_join(dirs: &RoundDirs, scale: Scale) -> Plan {
    let sql = format!(
        "CREATE TABLE l (seq BIGINT) WITH (
            'connector' = 'datagen', 'rows-per-second' = '{rate}',
            'fields.seq.kind' = 'sequence', 'fields.seq.start' = '1', 'fields.seq.end' = '{events}'
        );
        CREATE TABLE r (id BIGINT, k AS id * 2) WITH (
            'connector' = 'datagen', 'rows-per-second' = '{rate}',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{events}'
        );
        CREATE TABLE out (seq BIGINT, v BIGINT) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json'
        );
        INSERT INTO out SELECT l.seq, r.id FROM l LEFT JOIN r ON l.seq = r.k;",
        dirs.output.display(),
        rate = scale.rate,
        events = scale.events,
    );
    let mut want: Rows = (1..=scale.events as i64)
        .map(|seq| {
            let v = if seq % 2 == 0 {
                (seq / 2).to_string()
            } else {
                String::new()
            };
            vec!["c".to_string(), seq.to_string(), v]
        })
        .collect();
    want.sort();
    Plan::sql_table(sql, want)
}

/// SQL's Top-N: per key, the three highest sequence numbers with their rank. How the two
/// source subtasks' rows interleave decides which ranks change on the way, so the reference is
/// the table the changes leave: every key's three highest numbers, ranked.
fn datagen_top_n(dirs: &RoundDirs, scale: Scale) -> Plan {
    const TOP: i64 = 3;
    let sql = format!(
        "{}CREATE TABLE out (k BIGINT, rn BIGINT, seq BIGINT) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json'
        );
        INSERT INTO out SELECT k, rn, seq FROM
            (SELECT k, seq, ROW_NUMBER() OVER (PARTITION BY k ORDER BY seq DESC) AS rn FROM seqs)
            WHERE rn <= {TOP};",
        seq_table(scale),
        dirs.output.display(),
    );
    let mut want = Vec::new();
    for k in 0..5 {
        let mut seqs: Vec<i64> = (1..=scale.events as i64).filter(|s| s % 5 == k).collect();
        seqs.reverse();
        for (rank, seq) in seqs.into_iter().take(TOP as usize).enumerate() {
            let row = [k, rank as i64 + 1, seq].map(|v| v.to_string());
            want.push(["c".to_string()].into_iter().chain(row).collect());
        }
    }
    want.sort();
    Plan::sql_table(sql, want)
}

/// SQL's group aggregate over a changelog: MIN, MAX, SUM and COUNT per key of another group
/// aggregate's running count per key. Each of the inner count's updates takes the count before
/// back (`-U`), which empties the outer key (its result is deleted, its state and MIN/MAX
/// values cleared) until the new count comes (`+U`, a new insert); per key that sequence is
/// fixed, so the multiset of changes is known whatever the order the keys interleave in.
fn datagen_aggregate_of_changes(dirs: &RoundDirs, scale: Scale) -> Plan {
    let sql = format!(
        "{}CREATE TABLE out (k BIGINT, lo BIGINT, top BIGINT, total BIGINT) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json'
        );
        INSERT INTO out SELECT k, MIN(n), MAX(n), SUM(n) FROM
            (SELECT k, COUNT(*) AS n FROM seqs GROUP BY k) GROUP BY k;",
        seq_table(scale),
        dirs.output.display(),
    );
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for seq in 1..=scale.events as i64 {
        *counts.entry(seq % 5).or_default() += 1;
    }
    let row = |op: &str, k: i64, n: i64| {
        let n = n.to_string();
        vec![op.to_string(), k.to_string(), n.clone(), n.clone(), n]
    };
    let mut want = Vec::new();
    for (&k, &count) in &counts {
        want.push(row("c", k, 1));
        for n in 2..=count {
            want.push(row("d", k, n - 1));
            want.push(row("c", k, n));
        }
    }
    want.sort();
    Plan::sql(sql, want)
}

/// SQL's regular join: two datagen sequences joined on their values, both sides in keyed state.
fn datagen_join(dirs: &RoundDirs, scale: Scale) -> Plan {
    let (sql, want) = join_job(&dirs.output, scale.events, scale.rate);
    Plan::sql(sql, want)
}

/// SQL's group aggregate (a GROUP BY without a window): a count per key that retracts the
/// count before, written by the exactly-once file sink in Flink's debezium-json. Counts only
/// grow, so the multiset of changes is known whatever the order the rows arrive in.
fn datagen_group_count(dirs: &RoundDirs, scale: Scale) -> Plan {
    let sql = format!(
        "{}CREATE TABLE out (k BIGINT, n BIGINT) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json'
        );
        INSERT INTO out SELECT k, COUNT(*) AS n FROM seqs GROUP BY k;",
        seq_table(scale),
        dirs.output.display(),
    );
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for seq in 1..=scale.events as i64 {
        *counts.entry(seq % 5).or_default() += 1;
    }
    Plan::sql(sql, debezium_count_changes(&counts))
}

/// The catalog's changelog job: a running count per key whose updates retract the count
/// before, through a hash exchange by key, written as rows `op, key, count`.
fn running_count(dirs: &RoundDirs, scale: Scale) -> Plan {
    const KEYS: u64 = 20;
    const SEED: u64 = 43;
    let args = vec![
        ("events", scale.events.to_string()),
        ("rate", scale.rate.to_string()),
        ("keys", KEYS.to_string()),
        ("seed", SEED.to_string()),
        ("changes", "retract".to_string()),
        ("output", dirs.output.display().to_string()),
    ];
    let want = running_count_changes(&counts_per_key(scale.events, KEYS, SEED), true);
    Plan {
        job: "running-count",
        args,
        want,
        table: false,
        output: Output::Files,
    }
}

/// The catalog's two-input job: A and B unioned, C (an hour behind in event time) connected,
/// keyed alike into a co-process function counting per key and window from both inputs.
fn co_process(dirs: &RoundDirs, scale: Scale) -> Plan {
    const KEYS: u64 = 20;
    const SEED: u64 = 42;
    const WINDOW_MS: i64 = 10_000;
    const SECOND_OFFSET_MS: i64 = -3_600_000;
    let args = vec![
        ("events", scale.events.to_string()),
        ("rate", scale.rate.to_string()),
        ("keys", KEYS.to_string()),
        ("seed", SEED.to_string()),
        ("window-ms", WINDOW_MS.to_string()),
        ("second-offset-ms", SECOND_OFFSET_MS.to_string()),
        ("output", dirs.output.display().to_string()),
    ];
    let want = co_process_reference(scale.events, KEYS, SEED, WINDOW_MS, SECOND_OFFSET_MS);
    Plan {
        job: "co-process",
        args,
        want,
        table: false,
        output: Output::Files,
    }
}

fn nexmark_filter(dirs: &RoundDirs, scale: Scale) -> Plan {
    let sql = format!(
        "{}{}INSERT INTO out SELECT auction, bidder, price FROM bid WHERE MOD(price, 3) = 0;",
        bid_table(scale.events, scale.rate),
        sink(&dirs.output, "auction BIGINT, bidder BIGINT, price BIGINT"),
    );
    Plan::sql(sql, bids_priced_in_threes(scale.events))
}

fn nexmark_hop(dirs: &RoundDirs, scale: Scale) -> Plan {
    let sql = format!(
        "{}{}INSERT INTO out
         SELECT auction, HOP_START(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS s,
                COUNT(*) AS n, MAX(price) AS m
         FROM bid GROUP BY auction, HOP(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND);",
        bid_table(scale.events, scale.rate),
        sink(
            &dirs.output,
            "auction BIGINT, s TIMESTAMP(3), n BIGINT, m BIGINT"
        ),
    );
    Plan::sql(sql, hop_counts(scale.events))
}

/// Event time of sequence number `seq` in the datagen jobs: 50 rows per second of event time.
fn seq_time(seq: i64) -> i64 {
    seq * 20
}

/// A datagen table of the sequence 1..=events whose event time and key are computed columns,
/// with a watermark on the computed time (issue 14's first failure: such a table replayed from
/// its start after every restart).
fn seq_table(scale: Scale) -> String {
    format!(
        "CREATE TABLE seqs (
            seq BIGINT,
            ts AS TO_TIMESTAMP_MILLIS(seq * 20),
            k AS seq % 5,
            WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
        ) WITH (
            'connector' = 'datagen', 'rows-per-second' = '{}',
            'fields.seq.kind' = 'sequence', 'fields.seq.start' = '1', 'fields.seq.end' = '{}'
        );\n",
        scale.rate, scale.events
    )
}

fn datagen_raw(dirs: &RoundDirs, scale: Scale) -> Plan {
    let sql = format!(
        "{}{}INSERT INTO out SELECT seq, CAST(ts AS BIGINT), k FROM seqs;",
        seq_table(scale),
        sink(&dirs.output, "seq BIGINT, t BIGINT, k BIGINT"),
    );
    let mut want: Vec<Vec<String>> = (1..=scale.events as i64)
        .map(|seq| {
            vec![
                seq.to_string(),
                seq_time(seq).to_string(),
                (seq % 5).to_string(),
            ]
        })
        .collect();
    want.sort();
    Plan::sql(sql, want)
}

fn datagen_tumble(dirs: &RoundDirs, scale: Scale) -> Plan {
    let sql = format!(
        "{}{}INSERT INTO out
         SELECT k, CAST(TUMBLE_START(ts, INTERVAL '1' SECOND) AS BIGINT), COUNT(*), SUM(seq)
         FROM seqs GROUP BY k, TUMBLE(ts, INTERVAL '1' SECOND);",
        seq_table(scale),
        sink(&dirs.output, "k BIGINT, s BIGINT, n BIGINT, total BIGINT"),
    );
    let mut windows: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for seq in 1..=scale.events as i64 {
        let t = seq_time(seq);
        let w = windows.entry((seq % 5, t - t % 1000)).or_default();
        w.0 += 1;
        w.1 += seq;
    }
    let mut want: Vec<Vec<String>> = windows
        .into_iter()
        .map(|((k, s), (n, total))| {
            vec![
                k.to_string(),
                s.to_string(),
                n.to_string(),
                total.to_string(),
            ]
        })
        .collect();
    want.sort();
    Plan::sql(sql, want)
}

/// Files of `(k, ts, v)` rows, each file's rows in event-time order and each file later than
/// the one before, so every source subtask reads in order and no row is late.
fn write_session_input(dir: &Path, events: u64) -> Vec<GeneratedEvent> {
    const FILES: u64 = 8;
    std::fs::create_dir_all(dir).expect("input directory");
    let mut rng = crate::schedule::Rng::new(events);
    let mut events_written = Vec::new();
    let mut t = 1_700_000_000_000i64;
    for file in 0..FILES {
        let mut text = String::new();
        for _ in 0..events / FILES {
            // Gaps mostly within a session (300 ms gap), sometimes across it.
            t += [20, 50, 120, 400, 900][rng.below(5) as usize];
            let event = GeneratedEvent {
                index: events_written.len() as u64,
                key: rng.below(7) as i64,
                ts: t,
                value: rng.below(1000) as i64,
            };
            text.push_str(&format!("{},{},{}\n", event.key, ts(event.ts), event.value));
            events_written.push(event);
        }
        std::fs::write(dir.join(format!("events-{file:02}.csv")), text).expect("input file");
    }
    events_written
}

fn files_session(dirs: &RoundDirs, scale: Scale) -> Plan {
    let events = write_session_input(&dirs.input, scale.events);
    let sql = format!(
        "CREATE TABLE events (
            k BIGINT, ts TIMESTAMP(3), v BIGINT,
            WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
        ) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
        {}INSERT INTO out
         SELECT k, CAST(SESSION_START(ts, INTERVAL '0.3' SECOND) AS BIGINT),
                CAST(SESSION_END(ts, INTERVAL '0.3' SECOND) AS BIGINT),
                COUNT(*), SUM(v), MIN(v), MAX(v)
         FROM events GROUP BY k, SESSION(ts, INTERVAL '0.3' SECOND);",
        dirs.input.display(),
        sink(
            &dirs.output,
            "k BIGINT, s BIGINT, e BIGINT, n BIGINT, total BIGINT, low BIGINT, high BIGINT"
        ),
    );
    let mut want: Vec<Vec<String>> = reference(&events, &Assigner::Session(300))
        .into_iter()
        .map(|((k, s, e), w)| {
            [k, s, e, w.count, w.sum, w.min, w.max]
                .iter()
                .map(i64::to_string)
                .collect()
        })
        .collect();
    want.sort();
    Plan::sql(sql, want)
}

/// Nexmark q5 (hot items) on slower event time, so that a round spans many windows: a hopping
/// window count, a window aggregation of its results (grouped by their window) and a window
/// join of the two, whose state timers drop closed windows. Insert-only, so a CSV sink.
fn nexmark_hot_items(dirs: &RoundDirs, scale: Scale) -> Plan {
    const FIRST_EVENT_RATE: u64 = 1_000;
    let counts = "SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime
        FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
        GROUP BY auction, window_start, window_end";
    let sql = format!(
        "CREATE TABLE bid (
            auction BIGINT, price BIGINT, dateTime TIMESTAMP(3),
            WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
        ) WITH (
            'connector' = 'nexmark', 'nexmark.table' = 'bid', 'events' = '{events}',
            'rate' = '{rate}', 'batch-size' = '500', 'first-event-rate' = '{FIRST_EVENT_RATE}'
        );
        {}INSERT INTO out SELECT AuctionBids.starttime, AuctionBids.auction, AuctionBids.num
        FROM ({counts}) AS AuctionBids
        JOIN (
            SELECT MAX(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
            FROM ({counts}) AS CountBids
            GROUP BY CountBids.starttime, CountBids.endtime
        ) AS MaxBids
        ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
           AND AuctionBids.num >= MaxBids.maxn;",
        sink(
            &dirs.output,
            "starttime TIMESTAMP(3), auction BIGINT, num BIGINT"
        ),
        events = scale.events,
        rate = scale.rate,
    );
    let mut want: Rows = hot_items(scale.events, FIRST_EVENT_RATE)
        .into_iter()
        .map(|(start, auction, n)| vec![ts(start), auction.to_string(), n.to_string()])
        .collect();
    want.sort();
    Plan::sql(sql, want)
}
