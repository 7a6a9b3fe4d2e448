//! Kafka in a job on real processes, against a real broker: records are written while the job
//! runs, workers and the JobMaster are killed with SIGKILL, and the committed output (files, or
//! a topic read with `read_committed`) must equal the reference computed from the records the
//! test wrote, with none lost and none duplicated.

mod common;

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use spate_cluster::{CheckpointSpec, ClusterSpec, LocalCluster};
use spate_proto::v1::{JobState, JobStatus};
use spate_testkit::kafka::{Kafka, create_topic, open_transactions, produce};

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
    spec.checkpoints = Some(CheckpointSpec {
        interval_ms: 1_000,
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
