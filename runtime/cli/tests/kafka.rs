//! Kafka in a job on real processes, against a real broker: records are written while the job
//! runs, a worker is killed with SIGKILL, and the committed output must equal the reference
//! computed from the records the test wrote, with none lost and none duplicated.

mod common;

use std::time::Duration;

use common::*;
use spate_testkit::kafka::{Kafka, create_topic, produce};

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
