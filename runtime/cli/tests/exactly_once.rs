//! Exactly-once on real processes: jobs with checkpoints every second and a two-phase-commit
//! file sink, a worker killed with SIGKILL at a random moment, recovery from the latest
//! checkpoint on a replacement worker; the committed output must equal the brute-force
//! reference exactly, with no row lost and none duplicated (for a changelog: no change).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use spate_cluster::{CheckpointSpec, LocalCluster};
use spate_proto::v1::JobState;

const EVENTS: u64 = 300_000;
/// Wall-clock events per second per source subtask: the job runs for several seconds, long
/// enough for checkpoints to complete before and after the kill.
const RATE: u64 = 25_000;

/// One run: a kill moment's salt, the worker killed, and the state backend.
type Round = (u64, usize, &'static str);

/// Runs `sql` at parallelism 2 on 2 workers with checkpoints every second and keyed state in
/// `state_backend`, kills worker `victim` after `kill_after`, and returns the committed rows,
/// sorted, once the job finished.
async fn run_sql_with_kill(
    sql: String,
    (out, work): (&Path, &Path),
    kill_after: Duration,
    victim: usize,
    state_backend: &str,
) -> Vec<Vec<String>> {
    let spec = spec("sql", work, 2, 1)
        .arg("sql", sql)
        .arg("parallelism", 2);
    run_with_kill(spec, out, kill_after, victim, state_backend).await
}

/// Runs `insert` from the bid table into a CSV table of `columns` once per round; each round's
/// committed output must equal `want`.
async fn assert_exactly_once(
    columns: &str,
    insert: &str,
    rounds: [Round; 2],
    want: &[Vec<String>],
) {
    for (salt, victim, backend) in rounds {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let sql = format!("{}{}{insert}", bid_table(EVENTS, RATE), sink(&out, columns));
        let work = dir.path().join("cluster");
        let got = run_sql_with_kill(sql, (&out, &work), kill_moment(salt), victim, backend).await;
        assert_same(&got, want);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_and_duplicates_no_row_of_a_stateless_job() {
    let want = bids_priced_in_threes(EVENTS);
    assert_exactly_once(
        "auction BIGINT, bidder BIGINT, price BIGINT",
        "INSERT INTO out SELECT auction, bidder, price FROM bid WHERE MOD(price, 3) = 0;",
        [(0, 0, "heap"), (1, 1, "heap")],
        &want,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_and_duplicates_no_window_of_a_keyed_job() {
    let want = hop_counts(EVENTS);
    assert_exactly_once(
        "auction BIGINT, s TIMESTAMP(3), n BIGINT, m BIGINT",
        "INSERT INTO out
         SELECT auction, HOP_START(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS s,
                COUNT(*) AS n, MAX(price) AS m
         FROM bid GROUP BY auction, HOP(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND);",
        // On RocksDB the open windows are in the backend and restore from its checkpoint.
        [(2, 1, "heap"), (3, 0, "rocksdb")],
        &want,
    )
    .await;
}

/// Issue 14's first failure: the reader that evaluates computed columns did not pass the
/// source's read positions into the checkpoint, so a restart read the datagen sequence from its
/// start again and every row before the kill was committed twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_does_not_replay_a_source_with_computed_columns() {
    let rows = 100_000i64;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = format!(
        "CREATE TABLE seqs (
            seq BIGINT,
            ts AS TO_TIMESTAMP_MILLIS(seq * 20),
            WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
        ) WITH (
            'connector' = 'datagen', 'rows-per-second' = '5000',
            'fields.seq.kind' = 'sequence', 'fields.seq.start' = '1', 'fields.seq.end' = '{rows}'
        );
        {}INSERT INTO out SELECT seq, CAST(ts AS BIGINT) FROM seqs;",
        sink(&out, "seq BIGINT, t BIGINT")
    );
    let work = dir.path().join("cluster");
    let got = run_sql_with_kill(sql, (&out, &work), kill_moment(4), 0, "heap").await;
    let mut want: Vec<Vec<String>> = (1..=rows)
        .map(|seq| vec![seq.to_string(), (seq * 20).to_string()])
        .collect();
    want.sort();
    assert_same(&got, &want);
}

/// The filter job of bids at parallelism 2, checkpointing every second to MinIO through a
/// proxy that the test breaks: the pieces a storage-fault test holds on to.
struct BehindProxy {
    _minio: spate_testkit::Minio,
    proxy: spate_testkit::FaultyProxy,
    _dir: tempfile::TempDir,
    out: std::path::PathBuf,
    work: std::path::PathBuf,
    spec: spate_cluster::ClusterSpec,
}

/// `None` when MinIO is missing outside CI. Failed requests fail fast (two attempts), so an
/// outage fails checkpoints quickly. `restart` are extra JobMaster flags.
fn behind_proxy(events: u64, rate: u64, bucket_dir: &str, restart: &[&str]) -> Option<BehindProxy> {
    let minio = spate_testkit::Minio::start()?;
    let proxy =
        spate_testkit::FaultyProxy::start(minio.endpoint.trim_start_matches("http://"), 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, work) = (dir.path().join("out"), dir.path().join("cluster"));
    let sql = format!(
        "{}{}INSERT INTO out SELECT auction, bidder, price FROM bid WHERE MOD(price, 3) = 0;",
        bid_table(events, rate),
        sink(&out, "auction BIGINT, bidder BIGINT, price BIGINT")
    );
    let mut options = minio.storage_options();
    options.insert("endpoint".into(), proxy.endpoint());
    options.insert("retry_max_attempts".into(), "2".into());
    options.insert("retry_initial_backoff_ms".into(), "100".into());
    let mut spec = spec("sql", &work, 2, 1)
        .arg("sql", sql)
        .arg("parallelism", 2);
    spec.checkpoints = Some(CheckpointSpec {
        storage_url: Some(minio.url(bucket_dir)),
        storage_options: options,
        restart: restart.iter().map(|flag| flag.to_string()).collect(),
        ..CheckpointSpec::default()
    });
    Some(BehindProxy {
        _minio: minio,
        proxy,
        _dir: dir,
        out,
        work,
        spec,
    })
}

/// Issue 14's third failure: after more than the tolerable number of checkpoints failed in a
/// row (storage unreachable), the count survived the restart, so every new attempt failed at
/// once and the restarts ran out although the storage came back. Here the storage (MinIO,
/// through a proxy) refuses every connection for 20 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_storage_comes_back_recovers_on_its_own() {
    let events = 600_000;
    let Some(BehindProxy {
        proxy,
        out,
        work,
        spec,
        // Bound, not `..`: MinIO and the directory must live as long as the test.
        _minio,
        _dir,
    }) = behind_proxy(events, 10_000, "outage", &[])
    else {
        return;
    };
    let mut cluster = LocalCluster::start(spec).await.expect("cluster starts");
    wait_for(&mut cluster, |s| {
        s.checkpoints.as_ref().is_some_and(|c| c.completed >= 2)
    })
    .await;
    proxy.set_down(true);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = cluster.status().await.expect("status");
    proxy.heal();
    let outcome = cluster
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&work)));
    assert_eq!(
        outcome.status.state,
        JobState::Finished as i32,
        "{}\n{}",
        outcome.status.failure,
        logs(&work)
    );
    let failed = during.checkpoints.as_ref().map_or(0, |c| c.failed);
    assert!(failed > 3, "the outage failed checkpoints: {during:?}");
    let mut rows = read_rows(&out);
    rows.sort();
    assert_same(&rows, &bids_priced_in_threes(events));
}

/// Found by the fault-injection suite: the tasks' final snapshots (sent once their input ended)
/// went to a JobMaster that died before it wrote the final checkpoint; its replacement adopted
/// the tasks but never heard of their final snapshots, and the job waited forever. Here the
/// storage refuses every connection from before the input ends, so the final checkpoint cannot
/// be written, and the JobMaster is killed then; the workers must send the final snapshots
/// again to the replacement, which writes the final checkpoint, and the job finishes.
#[tokio::test(flavor = "multi_thread")]
async fn a_jobmaster_that_dies_before_writing_the_final_checkpoint_is_replaced_and_the_job_ends() {
    // About ten seconds of input: the first checkpoints complete before the storage goes down.
    let events = 40_000;
    // The checkpoints that fail while the storage is down do not restart the job.
    let tolerant = ["--tolerable-failed-checkpoints", "1000"];
    let Some(BehindProxy {
        proxy,
        out,
        work,
        spec,
        // Bound, not `..`: MinIO and the directory must live as long as the test.
        _minio,
        _dir,
    }) = behind_proxy(events, 2_000, "final-failover", &tolerant)
    else {
        return;
    };
    let mut cluster = LocalCluster::start(spec).await.expect("cluster starts");
    let before = wait_for(&mut cluster, |s| {
        s.checkpoints.as_ref().is_some_and(|c| c.completed >= 1)
    })
    .await;
    proxy.set_down(true);
    let log = work.join("logs/jobmaster.log");
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("writing the final checkpoint failed") {
            break;
        }
        assert!(
            !text.contains("final checkpoint complete"),
            "the input ended before the storage went down ({before:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.kill_jobmaster().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.heal();
    // A liveness bound, not a measure: the job ends seconds after the storage is back.
    let outcome = tokio::time::timeout(Duration::from_secs(300), cluster.wait())
        .await
        .unwrap_or_else(|_| panic!("the job did not end\n{}", logs(&work)))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&work)));
    assert_eq!(
        outcome.status.state,
        JobState::Finished as i32,
        "{}\n{}",
        outcome.status.failure,
        logs(&work)
    );
    let mut rows = read_rows(&out);
    rows.sort();
    assert_same(&rows, &bids_priced_in_threes(events));
}

/// A changelog stream (issue 16): a running count per key, each new row of a key updating the
/// count emitted before, at parallelism 4 on two workers of two slots; the changes cross a hash
/// exchange by key to the sink, which writes them as rows `op, key, count`. The committed
/// changes must be exactly the reference's, and applied in commit order to a table by key they
/// must leave the count of every key: a lost, duplicated or reordered change breaks one or the
/// other. Retractions on the heap, upserts on RocksDB.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_and_duplicates_no_change_of_a_changelog() {
    const EVENTS: u64 = 160_000;
    // Each of the 4 source subtasks runs for about 8 s, so the kill (up to 2.5 s after the
    // first checkpoint) finds the job running even on a loaded machine.
    const RATE: u64 = 5_000;
    const KEYS: u64 = 50;
    const SEED: u64 = 11;
    let counts = counts_per_key(EVENTS, KEYS, SEED);
    for (salt, victim, changes, backend) in
        [(21, 0, "retract", "heap"), (22, 1, "upsert", "rocksdb")]
    {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let spec = spec("running-count", &dir.path().join("cluster"), 2, 2)
            .arg("parallelism", 4)
            .arg("events", EVENTS)
            .arg("keys", KEYS)
            .arg("seed", SEED)
            .arg("rate", RATE)
            .arg("changes", changes)
            .arg("output", out.display());
        let got = run_with_kill(spec, &out, kill_moment(salt), victim, backend).await;
        let want = running_count_changes(&counts, changes == "retract");
        assert_eq!(got.len(), want.len(), "{changes}: number of changes");
        assert!(
            got == want,
            "{changes}: the changes differ from the reference"
        );
        let table = materialize(&read_rows_in_commit_order(&out));
        assert_eq!(table, counts, "{changes}: the table the changes leave");
    }
}

/// SQL's regular join (an INNER JOIN, both sides in keyed state on RocksDB) under the same kill:
/// two datagen sequences joined on their values at parallelism 4; every value must be joined
/// and committed exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_and_duplicates_no_row_of_a_sql_join() {
    // Each of the 4 source subtasks of either side runs for about 8 s (see above).
    const EVENTS: u64 = 160_000;
    const RATE: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (sql, want) = join_job(&out, EVENTS, RATE);
    let spec = spec("sql", &dir.path().join("cluster"), 2, 2)
        .arg("parallelism", 4)
        .arg("sql", sql);
    let got = run_with_kill(spec, &out, kill_moment(24), 0, "rocksdb").await;
    assert_eq!(got.len(), want.len(), "number of joined rows");
    assert!(got == want, "the joined rows differ from the reference");
}

/// SQL's group aggregate (a GROUP BY without a window, Flink's GroupAggFunction) under the same
/// kill: a count per key over a datagen sequence at parallelism 4, its retract changelog hashed
/// by key and written as debezium-json by the exactly-once file sink. The committed changes
/// must be the reference's multiset, and applied in commit order they must leave every key's
/// count.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_and_duplicates_no_change_of_a_sql_group_aggregate() {
    const EVENTS: i64 = 160_000;
    // Each of the 4 source subtasks runs for about 8 s (see the test above).
    const RATE: u64 = 5_000;
    const KEYS: i64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = format!(
        "CREATE TABLE seqs (seq BIGINT, k AS seq % {KEYS}) WITH (
            'connector' = 'datagen', 'rows-per-second' = '{RATE}',
            'fields.seq.kind' = 'sequence', 'fields.seq.start' = '1', 'fields.seq.end' = '{EVENTS}'
        );
        CREATE TABLE out (k BIGINT, n BIGINT) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json'
        );
        INSERT INTO out SELECT k, COUNT(*) AS n FROM seqs GROUP BY k;",
        out.display()
    );
    let spec = spec("sql", &dir.path().join("cluster"), 2, 2)
        .arg("parallelism", 4)
        .arg("sql", sql);
    let got = run_with_kill(spec, &out, kill_moment(23), 1, "rocksdb").await;
    let mut counts = BTreeMap::new();
    for seq in 1..=EVENTS {
        *counts.entry(seq % KEYS).or_default() += 1;
    }
    let want = debezium_count_changes(&counts);
    assert_eq!(got.len(), want.len(), "number of changes");
    assert!(got == want, "the changes differ from the reference");
    let table = materialize(&read_rows_in_commit_order(&out));
    assert_eq!(table, counts, "the table the changes leave");
}
