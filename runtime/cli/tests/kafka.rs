//! Kafka in a job on real processes, against a real broker: records are written while the job
//! runs, workers and the JobMaster are killed with SIGKILL, and the committed output (files, or
//! a topic read with `read_committed`) must equal the reference computed from the records the
//! test wrote, with none lost and none duplicated. And a table of upserts written to
//! upsert-kafka and read back.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use spate_cluster::{CheckpointSpec, ClusterSpec, LocalCluster};
use spate_proto::v1::{JobState, JobStatus};
use spate_testkit::kafka::{Kafka, add_partitions, create_topic, open_transactions, produce};

const PARTITIONS: i32 = 4;
const PER_PARTITION: i64 = 10_000;
/// Records written per step, one step every 100 ms: the job reads for about 8 s.
const STEP: i64 = 500;

fn document(id: i64) -> Vec<u8> {
    format!(r#"{{"id": {id}, "name": "n{id}"}}"#).into_bytes()
}

/// Record `id` goes to partition `id % 4`.
fn partition_of(id: i64) -> i32 {
    (id % i64::from(PARTITIONS)) as i32
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_and_duplicates_no_record_read_from_kafka() {
    let Some(broker) = Kafka::start() else {
        return;
    };
    create_topic(&broker.bootstrap, "events", PARTITIONS);
    let total = PER_PARTITION * i64::from(PARTITIONS);
    let stops = (0..PARTITIONS)
        .map(|p| format!("partition:{p},offset:{PER_PARTITION}"))
        .collect::<Vec<_>>()
        .join(";");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = format!(
        "CREATE TABLE events (id BIGINT, name STRING) WITH (
            'connector' = 'kafka', 'topic' = 'events',
            'properties.bootstrap.servers' = '{}',
            'scan.startup.mode' = 'earliest-offset',
            'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = '{stops}',
            'format' = 'json'
        );
        {}INSERT INTO out SELECT id, name FROM events WHERE id % 3 <> 1;",
        broker.bootstrap,
        sink(&out, "id BIGINT, name STRING"),
    );
    // The records come while the job runs, so that it is still reading when the worker dies.
    let bootstrap = broker.bootstrap.clone();
    let writer = std::thread::spawn(move || {
        for first in (0..total).step_by(STEP as usize) {
            let records = (first..first + STEP)
                .map(|id| (partition_of(id), document(id)))
                .collect();
            produce(&bootstrap, "events", records);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let spec = spec("sql", &dir.path().join("cluster"), 2, 1)
        .arg("parallelism", 2)
        .arg("sql", sql);
    let got = run_with_kill(spec, &out, kill_moment(7), 0, "heap").await;
    writer.join().expect("the records were written");
    let mut want: Vec<Vec<String>> = (0..total)
        .filter(|id| id % 3 != 1)
        .map(|id| vec![id.to_string(), format!("n{id}")])
        .collect();
    want.sort();
    assert_same(&got, &want);
}

/// Partition discovery on real processes: the topic has one partition when the job starts, so
/// the second reader owns nothing yet. Two partitions are added while the job runs and written
/// to as it reads them; each is found, read from its first record by the reader whose share
/// owns it, and a worker killed after that is restored with its share and positions. Every
/// record reaches the exactly-once file sink once.
#[tokio::test(flavor = "multi_thread")]
async fn partitions_added_while_the_job_runs_are_read_from_their_start() {
    const PER_PARTITION: i64 = 3_000;
    let Some(broker) = Kafka::start() else {
        return;
    };
    create_topic(&broker.bootstrap, "growing", 1);
    produce(
        &broker.bootstrap,
        "growing",
        (0..PER_PARTITION).map(|id| (0, document(id))).collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (out, work) = (dir.path().join("out"), dir.path().join("cluster"));
    let sql = format!(
        "CREATE TABLE events (id BIGINT, name STRING) WITH (
            'connector' = 'kafka', 'topic' = 'growing',
            'properties.bootstrap.servers' = '{}',
            'scan.startup.mode' = 'earliest-offset',
            'scan.topic-partition-discovery.interval' = '500 ms',
            'format' = 'json'
        );
        {}INSERT INTO out SELECT id, name FROM events;",
        broker.bootstrap,
        sink(&out, "id BIGINT, name STRING"),
    );
    let mut spec = spec("sql", &work, 2, 1)
        .arg("parallelism", 2)
        .arg("sql", sql);
    spec.heartbeat_timeout_ms = 3_000;
    spec.checkpoints = Some(CheckpointSpec {
        interval_ms: 500,
        ..CheckpointSpec::default()
    });
    let mut cluster = LocalCluster::start(spec).await.expect("cluster starts");
    let completed = |status: &JobStatus| status.checkpoints.as_ref().map_or(0, |c| c.completed);
    let before = completed(&wait_for(&mut cluster, |s| completed(s) >= 1).await);

    add_partitions(&broker.bootstrap, "growing", 3);
    let bootstrap = broker.bootstrap.clone();
    let writer = std::thread::spawn(move || {
        for first in (PER_PARTITION..3 * PER_PARTITION).step_by(STEP as usize) {
            let records = (first..first + STEP)
                .map(|id| ((id / PER_PARTITION) as i32, document(id)))
                .collect();
            produce(&bootstrap, "growing", records);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // Once a checkpoint holds some of the new partitions' records, the reader of partition 1
    // dies with its worker.
    wait_for(&mut cluster, |s| completed(s) >= before + 2).await;
    cluster.kill_worker(1).expect("kill a worker");
    writer.join().expect("the records were written");

    let total = 3 * PER_PARTITION as usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while read_rows(&out).len() < total {
        let status = cluster.status().await.ok();
        assert!(
            std::time::Instant::now() < deadline && !cluster.job_over(),
            "{} of {total} rows committed: {status:?}\n{}",
            read_rows(&out).len(),
            logs(&work)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster
        .cancel("the test read everything")
        .await
        .expect("cancel");
    let outcome = cluster.wait().await.expect("the cluster ends");
    assert_eq!(outcome.status.state, JobState::Canceled as i32);
    let mut got = read_rows(&out);
    got.sort();
    let mut want: Vec<Vec<String>> = (0..3 * PER_PARTITION)
        .map(|id| vec![id.to_string(), format!("n{id}")])
        .collect();
    want.sort();
    assert_same(&got, &want);
    assert!(
        logs(&work).contains("reading a partition added to the topic"),
        "the new partitions were discovered"
    );
}

/// Kafka → window aggregate → Kafka with checkpoints every second while a worker process is
/// killed (SIGKILL) five times and the JobMaster twice, each kill once a checkpoint completed
/// since the one before: a `read_committed` consumer of the output sees exactly the reference
/// computed from the input records, and no transaction is left open.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_to_kafka_is_exactly_once_through_worker_and_jobmaster_kills() {
    let Some(broker) = Kafka::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("cluster");
    let (job, writer, mut spec) = window_job(&broker, 30_000, &work);
    spec.checkpoints = Some(CheckpointSpec {
        interval_ms: 1_000,
        restart: ["--max-restarts", "100", "--restart-delay-ms", "500"]
            .map(String::from)
            .to_vec(),
        ..CheckpointSpec::default()
    });
    let mut cluster = LocalCluster::start(spec).await.expect("cluster starts");
    let kills = [
        Victim::Worker(0),
        Victim::Worker(1),
        Victim::JobMaster,
        Victim::Worker(0),
        Victim::Worker(1),
        Victim::JobMaster,
        Victim::Worker(0),
    ];
    let mut checkpoint = 0;
    for victim in kills {
        // A checkpoint completed since the last kill, then a moment more of rows in flight.
        let over = |s: &JobStatus| s.state > JobState::Running as i32;
        let status = wait_for(&mut cluster, |s| {
            s.checkpoints
                .as_ref()
                .is_some_and(|c| c.latest_id > checkpoint)
                || over(s)
        })
        .await;
        assert!(
            !over(&status),
            "the job ended before every kill: {}\n{}",
            status.failure,
            logs(&work)
        );
        checkpoint = status.checkpoints.map_or(0, |c| c.latest_id);
        tokio::time::sleep(kill_moment(checkpoint)).await;
        match victim {
            Victim::Worker(index) => cluster.kill_worker(index).expect("kill a worker"),
            Victim::JobMaster => cluster.kill_jobmaster().expect("kill the JobMaster"),
        }
    }
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
    writer.join().expect("the records were written");
    assert_same(&job.got(), &job.want());
    assert_eq!(open_transactions(&broker.bootstrap), Vec::<String>::new());
}

enum Victim {
    Worker(usize),
    JobMaster,
}

/// The Kafka → window → Kafka job over `per_partition` records in each of two partitions, the
/// thread writing them (started), and a spec of its cluster in `work` (parallelism 2, a worker
/// declared lost after 3 s without heartbeats).
fn window_job<'a>(
    broker: &'a Kafka,
    per_partition: u64,
    work: &Path,
) -> (KafkaWindow<'a>, JoinHandle<()>, ClusterSpec) {
    let job = KafkaWindow {
        bootstrap: &broker.bootstrap,
        input: "events",
        output: "windows",
        partitions: 2,
        per_partition,
        step: 100,
    };
    let writer = job.write_input();
    let mut spec = spec("sql", work, 2, 1)
        .arg("parallelism", 2)
        .arg("sql", job.sql("windows-job"));
    spec.heartbeat_timeout_ms = 3_000;
    (job, writer, spec)
}

/// The crash Kafka's two-phase commit must survive: the worker running the sink dies when the
/// first completed checkpoint's notice arrives, after the JobMaster recorded the checkpoint and
/// before the sink committed its transaction. The restored sink commits it; nothing is lost
/// or written twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_checkpoint_completion_and_commit_loses_and_duplicates_nothing() {
    let Some(broker) = Kafka::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("cluster");
    let (job, writer, mut spec) = window_job(&broker, 10_000, &work);
    // Vertex 1 is the window aggregate with the sink chained to it.
    spec.inject_failure = Some("1/0/notice".into());
    // The first checkpoint must find windows fired and a transaction open: its notice is the
    // one the crash takes. One second was too soon on a loaded machine (no row had reached the
    // sink yet, so there was nothing to commit); the job reads for about ten seconds.
    spec.checkpoints = Some(CheckpointSpec {
        interval_ms: 5_000,
        ..CheckpointSpec::default()
    });
    let outcome = LocalCluster::start(spec)
        .await
        .expect("cluster starts")
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&work)));
    let logs = logs(&work);
    assert_eq!(
        outcome.status.state,
        JobState::Finished as i32,
        "{}\n{logs}",
        outcome.status.failure,
    );
    assert!(
        logs.contains("injected crash on a checkpoint's completion notice"),
        "the worker crashed at the notice:\n{logs}"
    );
    assert!(
        logs.contains("restored transaction committed"),
        "the restored sink committed the transaction its checkpoint held:\n{logs}"
    );
    writer.join().expect("the records were written");
    assert_same(&job.got(), &job.want());
    assert_eq!(open_transactions(&broker.bootstrap), Vec::<String>::new());
}

/// An updating aggregate written to upsert-kafka and read back. Job one counts and sums the
/// input per key and keeps the keys whose count is not a multiple of 3 (`HAVING`), so keys come
/// and go: updates become keyed records and deletes tombstones, in Kafka transactions. The
/// table the topic keeps (each key's last record, unless a tombstone) must be the brute-force
/// reference. Job two reads the topic back with upsert-kafka
/// (its changes normalized into retractions) and writes them as debezium-json: applied in
/// commit order, every retraction takes back the row held, and they leave the same table.
#[tokio::test(flavor = "multi_thread")]
async fn an_updating_aggregate_round_trips_through_upsert_kafka() {
    // Keys 5-9 end with counts of 300, a multiple of 3: deleted at the end.
    let Some(broker) = Kafka::start() else {
        return;
    };
    let events = keyed_events(&broker);
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for id in 0..RECORDS {
        let row = want.entry(id % KEYS).or_default();
        row.0 += 1;
        row.1 += id;
    }
    want.retain(|_, (n, _)| *n % 3 != 0);

    let counts = |extra: &str| {
        format!(
            "CREATE TABLE counts (k BIGINT, n BIGINT, total BIGINT, PRIMARY KEY (k) NOT ENFORCED)
            WITH (
                'connector' = 'upsert-kafka', 'topic' = 'counts',
                'properties.bootstrap.servers' = '{}',
                'key.format' = 'json', 'value.format' = 'json',
                'value.fields-include' = 'EXCEPT_KEY'{extra}
            );",
            broker.bootstrap
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let aggregate = format!(
        "{events}{}
        INSERT INTO counts SELECT k, COUNT(*), SUM(id) FROM events GROUP BY k
        HAVING COUNT(*) % 3 <> 0;",
        counts(
            ", 'sink.delivery-guarantee' = 'exactly-once', \
             'sink.transactional-id-prefix' = 'counts-job'"
        ),
    );
    run_sql(&dir.path().join("aggregate"), aggregate, Some(500)).await;

    let want_rows: Vec<Vec<String>> = want
        .iter()
        .map(|(k, (n, total))| vec![k.to_string(), n.to_string(), total.to_string()])
        .collect();
    assert_eq!(
        upserted_rows(&broker.bootstrap, "counts", &["k"], &["n", "total"]),
        want_rows,
        "the table the topic keeps"
    );

    let out = dir.path().join("out");
    let read_back = format!(
        "{}
        CREATE TABLE out (k BIGINT, n BIGINT, total BIGINT) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json'
        );
        INSERT INTO out SELECT k, n, total FROM counts;",
        counts(
            ", 'properties.isolation.level' = 'read_committed', \
             'scan.bounded.mode' = 'latest-offset'"
        ),
        out.display()
    );
    run_sql(&dir.path().join("read-back"), read_back, None).await;
    let table = table_of_changes(&read_rows_in_commit_order(&out), 0);
    let want: BTreeMap<i64, Vec<i64>> = want
        .into_iter()
        .map(|(k, (n, total))| (k, vec![k, n, total]))
        .collect();
    assert_eq!(table, want, "the table read back");
}

/// A changelog through Kafka as debezium-json: job one counts the input per key and writes the
/// count's changes (a retraction as a "d" envelope, the new count as a "c", as Flink's
/// serializer writes them) exactly once, keyed by the key (`key.fields`) so that a key's
/// changes stay in one partition in order; job two reads the topic as a debezium-json table and
/// aggregates its changes again, keys and their counts by the counts' parity. Applied in
/// commit order, what job two commits takes back exactly the rows it holds and leaves the
/// brute-force reference.
#[tokio::test(flavor = "multi_thread")]
async fn a_changelog_round_trips_through_kafka_as_debezium_json() {
    let Some(broker) = Kafka::start() else {
        return;
    };
    let events = keyed_events(&broker);

    let counts = |extra: &str| {
        format!(
            "CREATE TABLE counts (k BIGINT, n BIGINT) WITH (
                'connector' = 'kafka', 'topic' = 'counts',
                'properties.bootstrap.servers' = '{}', 'format' = 'debezium-json'{extra}
            );",
            broker.bootstrap
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let count = format!(
        "{events}{}
        INSERT INTO counts SELECT k, COUNT(*) FROM events GROUP BY k;",
        // Keyed by k, so that each key's changes stay in one partition, in order.
        counts(
            ", 'key.format' = 'json', 'key.fields' = 'k', \
             'sink.delivery-guarantee' = 'exactly-once', \
             'sink.transactional-id-prefix' = 'debezium-counts'"
        ),
    );
    run_sql(&dir.path().join("count"), count, Some(500)).await;

    let out = dir.path().join("out");
    let by_parity = format!(
        "{}
        CREATE TABLE out (parity BIGINT, keys BIGINT, total BIGINT) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json'
        );
        INSERT INTO out SELECT n % 2, COUNT(*), SUM(n) FROM counts GROUP BY n % 2;",
        counts(
            ", 'properties.isolation.level' = 'read_committed', \
             'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"
        ),
        out.display()
    );
    run_sql(&dir.path().join("by-parity"), by_parity, None).await;
    // Debezium rows come with their columns in name order: keys, parity, total.
    let table = table_of_changes(&read_rows_in_commit_order(&out), 1);
    // Counts of 301 are odd, of 300 even: five keys each.
    let want = BTreeMap::from([(0, vec![5, 0, 5 * 300]), (1, vec![5, 1, 5 * 301])]);
    assert_eq!(table, want, "the table the changes leave");
}

/// Runs the SQL job `sql` to its end on real processes in `work` (parallelism 2, two workers),
/// with checkpoints every `checkpoint_ms` if given.
async fn run_sql(work: &Path, sql: String, checkpoint_ms: Option<u64>) {
    let mut spec = spec("sql", work, 2, 1)
        .arg("parallelism", 2)
        .arg("sql", sql);
    spec.checkpoints = checkpoint_ms.map(|interval_ms| CheckpointSpec {
        interval_ms,
        ..CheckpointSpec::default()
    });
    run_to_end(spec).await;
}

/// The round-trip tests' input: events 0 to 3,004 over keys 0 to 9 (keys 0-4 see 301 each,
/// keys 5-9 see 300).
const RECORDS: i64 = 3_005;
const KEYS: i64 = 10;

/// Writes the events `{"id", "k": id % KEYS}` to topic `events` (two partitions) before the
/// job starts and makes topic `counts` (two partitions) for it to write; returns the bounded
/// `events` table that reads them.
fn keyed_events(broker: &Kafka) -> String {
    create_topic(&broker.bootstrap, "events", 2);
    create_topic(&broker.bootstrap, "counts", 2);
    let records = (0..RECORDS)
        .map(|id| {
            let value = format!(r#"{{"id": {id}, "k": {}}}"#, id % KEYS);
            ((id % 2) as i32, value.into_bytes())
        })
        .collect();
    produce(&broker.bootstrap, "events", records);
    format!(
        "CREATE TABLE events (id BIGINT, k BIGINT) WITH (
            'connector' = 'kafka', 'topic' = 'events',
            'properties.bootstrap.servers' = '{}',
            'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
            'format' = 'json'
        );
        ",
        broker.bootstrap
    )
}

/// The table debezium-json changes (rows `op, values...`, the values in column-name order)
/// leave, applied in order and keyed by the value at `key`: a "c" adds a row its key does not
/// hold yet, a "d" takes back exactly the row its key holds.
fn table_of_changes(changes: &[Vec<String>], key: usize) -> BTreeMap<i64, Vec<i64>> {
    let mut table = BTreeMap::new();
    for change in changes {
        let (op, values) = change.split_first().expect("a change");
        let values: Vec<i64> = values.iter().map(|v| v.parse().unwrap()).collect();
        let k = values[key];
        match op.as_str() {
            "c" => assert_eq!(table.insert(k, values), None, "{k} was not retracted first"),
            "d" => assert_eq!(table.remove(&k), Some(values), "{k}: another row retracted"),
            other => panic!("unknown op {other}"),
        }
    }
    table
}
