//! A Kafka → tumbling window aggregate → Kafka job, exactly once end to end: its input topic
//! written while it runs, its output read back by a `read_committed` consumer, and the
//! reference computed from the records written.

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::Duration;

use spate_testkit::kafka::{committed, create_topic, produce};

/// The job's topics and their size.
pub struct KafkaWindow<'a> {
    pub bootstrap: &'a str,
    pub input: &'a str,
    pub output: &'a str,
    pub partitions: u64,
    pub per_partition: u64,
    /// Records written per partition every 100 ms.
    pub step: u64,
}

/// Event time of record `id`: 50 records per second of event time.
fn event_time(id: u64) -> u64 {
    id * 20
}

/// The columns the job writes, in order.
pub const KAFKA_WINDOW_COLUMNS: [&str; 4] = ["k", "s", "n", "total"];

impl KafkaWindow<'_> {
    fn total(&self) -> u64 {
        self.partitions * self.per_partition
    }

    /// Creates both topics and starts writing the input: record `id` to partition
    /// `id % partitions`, so that each partition's event time only grows.
    pub fn write_input(&self) -> JoinHandle<()> {
        create_topic(self.bootstrap, self.input, self.partitions as i32);
        create_topic(self.bootstrap, self.output, self.partitions as i32);
        let (bootstrap, topic) = (self.bootstrap.to_string(), self.input.to_string());
        let (total, step) = (self.total(), self.step * self.partitions);
        let partitions = self.partitions;
        std::thread::spawn(move || {
            let mut first = 0;
            while first < total {
                let records = (first..(first + step).min(total))
                    .map(|id| {
                        let value = format!(
                            r#"{{"id": {id}, "k": {}, "t": {}}}"#,
                            id % 5,
                            event_time(id)
                        );
                        ((id % partitions) as i32, value.into_bytes())
                    })
                    .collect();
                produce(&bootstrap, &topic, records);
                first += step;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }

    /// The job: a count and a sum per key and second of event time, written exactly once.
    pub fn sql(&self, transactional_id_prefix: &str) -> String {
        let stops = (0..self.partitions)
            .map(|p| format!("partition:{p},offset:{}", self.per_partition))
            .collect::<Vec<_>>()
            .join(";");
        format!(
            "CREATE TABLE events (
                id BIGINT, k BIGINT, t BIGINT,
                ts AS TO_TIMESTAMP_MILLIS(t),
                WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
            ) WITH (
                'connector' = 'kafka', 'topic' = '{input}',
                'properties.bootstrap.servers' = '{bootstrap}',
                'scan.startup.mode' = 'earliest-offset',
                'scan.bounded.mode' = 'specific-offsets',
                'scan.bounded.specific-offsets' = '{stops}',
                'format' = 'json'
            );
            CREATE TABLE windows (k BIGINT, s BIGINT, n BIGINT, total BIGINT) WITH (
                'connector' = 'kafka', 'topic' = '{output}',
                'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json',
                'sink.delivery-guarantee' = 'exactly-once',
                'sink.transactional-id-prefix' = '{transactional_id_prefix}'
            );
            INSERT INTO windows
            SELECT k, CAST(TUMBLE_START(ts, INTERVAL '1' SECOND) AS BIGINT), COUNT(*), SUM(id)
            FROM events GROUP BY k, TUMBLE(ts, INTERVAL '1' SECOND);",
            input = self.input,
            output = self.output,
            bootstrap = self.bootstrap,
        )
    }

    /// What the job must write, by brute force over the records written, sorted.
    pub fn want(&self) -> Vec<Vec<String>> {
        let mut windows: BTreeMap<(u64, u64), (u64, u64)> = BTreeMap::new();
        for id in 0..self.total() {
            let t = event_time(id);
            let window = windows.entry((id % 5, t - t % 1000)).or_default();
            window.0 += 1;
            window.1 += id;
        }
        let mut want: Vec<Vec<String>> = windows
            .into_iter()
            .map(|((k, s), (n, total))| [k, s, n, total].map(|v| v.to_string()).to_vec())
            .collect();
        want.sort();
        want
    }

    /// The rows a `read_committed` consumer of the output sees, sorted.
    pub fn got(&self) -> Vec<Vec<String>> {
        committed_rows(self.bootstrap, self.output, &KAFKA_WINDOW_COLUMNS)
    }
}

/// The rows a `read_committed` consumer of `topic` sees, each the values of `columns` of its
/// JSON object, sorted.
pub fn committed_rows(bootstrap: &str, topic: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = committed(bootstrap, topic)
        .iter()
        .map(|value| {
            let row: serde_json::Value = serde_json::from_slice(value)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(value)));
            columns.iter().map(|&c| row[c].to_string()).collect()
        })
        .collect();
    rows.sort();
    rows
}
