//! upsert-kafka → group aggregate → upsert-kafka, exactly once: a topic of upserts and
//! tombstones written while the job reads it, its table's rows counted and summed by bucket,
//! and the buckets written as upserts in Kafka transactions. The reference is computed from
//! the records written: the table the input topic leaves, grouped by bucket.

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::Duration;

use spate_testkit::kafka::{KeyValue, committed_records, create_topic, produce_keyed};

/// Rows of the input table (`id`s).
const IDS: u64 = 100;
/// Buckets of the output, `v % BUCKETS`.
const BUCKETS: u64 = 5;

pub struct KafkaUpserts<'a> {
    pub bootstrap: &'a str,
    pub input: &'a str,
    pub output: &'a str,
    /// Records per partition of the input; there are two partitions.
    pub per_partition: u64,
    /// Records written per partition every 100 ms.
    pub step: u64,
}

/// Record `i` upserts row `i % IDS` with `v = i`, or every seventh deletes it. A row's records
/// all go to partition `id % 2`, in order, as Kafka's partitioner would keep them.
fn record(i: u64) -> (i32, KeyValue) {
    let id = i % IDS;
    let key = format!(r#"{{"id": {id}}}"#).into_bytes();
    let value = (i % 7 != 6).then(|| format!(r#"{{"id": {id}, "v": {i}}}"#).into_bytes());
    ((id % 2) as i32, (Some(key), value))
}

impl KafkaUpserts<'_> {
    fn total(&self) -> u64 {
        2 * self.per_partition
    }

    /// Creates both topics and starts writing the input.
    pub fn write_input(&self) -> JoinHandle<()> {
        create_topic(self.bootstrap, self.input, 2);
        create_topic(self.bootstrap, self.output, 2);
        let (bootstrap, topic) = (self.bootstrap.to_string(), self.input.to_string());
        let (total, step) = (self.total(), 2 * self.step);
        std::thread::spawn(move || {
            let mut first = 0;
            while first < total {
                let records = (first..(first + step).min(total)).map(record).collect();
                produce_keyed(&bootstrap, &topic, records);
                first += step;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }

    /// The job, reading the input up to the offsets the writer ends at.
    pub fn sql(&self, transactional_id_prefix: &str) -> String {
        let stops = format!(
            "partition:0,offset:{n};partition:1,offset:{n}",
            n = self.per_partition
        );
        format!(
            "CREATE TABLE src (id BIGINT, v BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH (
                'connector' = 'upsert-kafka', 'topic' = '{input}',
                'properties.bootstrap.servers' = '{bootstrap}',
                'key.format' = 'json', 'value.format' = 'json',
                'scan.bounded.mode' = 'specific-offsets',
                'scan.bounded.specific-offsets' = '{stops}'
            );
            CREATE TABLE buckets (b BIGINT, n BIGINT, total BIGINT, PRIMARY KEY (b) NOT ENFORCED)
            WITH (
                'connector' = 'upsert-kafka', 'topic' = '{output}',
                'properties.bootstrap.servers' = '{bootstrap}',
                'key.format' = 'json', 'value.format' = 'json',
                'value.fields-include' = 'EXCEPT_KEY',
                'sink.delivery-guarantee' = 'exactly-once',
                'sink.transactional-id-prefix' = '{transactional_id_prefix}'
            );
            INSERT INTO buckets SELECT v % {BUCKETS}, COUNT(*), SUM(v) FROM src GROUP BY v % {BUCKETS};",
            input = self.input,
            output = self.output,
            bootstrap = self.bootstrap,
        )
    }

    /// The buckets' rows `b, n, total`, sorted: by brute force over the records written.
    pub fn want(&self) -> Vec<Vec<String>> {
        // The input's table: each row's last record, unless that deleted it. Records of one
        // row go to one partition in order, so the last written is the last read.
        let mut table: BTreeMap<u64, Option<u64>> = BTreeMap::new();
        for i in 0..self.total() {
            let (_, (_, value)) = record(i);
            table.insert(i % IDS, value.map(|_| i));
        }
        let mut buckets: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for v in table.values().flatten() {
            let bucket = buckets.entry(v % BUCKETS).or_default();
            bucket.0 += 1;
            bucket.1 += v;
        }
        let mut want: Vec<Vec<String>> = buckets
            .into_iter()
            .map(|(b, (n, total))| [b, n, total].map(|x| x.to_string()).to_vec())
            .collect();
        want.sort();
        want
    }
}

/// The table an upsert topic keeps, read with `read_committed`: each key's last record unless
/// it is a tombstone, as the values of `key` (from the record key) then `columns` (from the
/// value), sorted.
pub fn upserted_rows(
    bootstrap: &str,
    topic: &str,
    key: &[&str],
    columns: &[&str],
) -> Vec<Vec<String>> {
    let json = |bytes: &[u8]| -> serde_json::Value {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
    };
    let mut table: BTreeMap<Vec<String>, Option<Vec<String>>> = BTreeMap::new();
    for (k, value) in committed_records(bootstrap, topic) {
        let k = json(&k.expect("upserts are keyed"));
        let k: Vec<String> = key.iter().map(|&c| k[c].to_string()).collect();
        let row = value.map(|value| {
            let value = json(&value);
            columns.iter().map(|&c| value[c].to_string()).collect()
        });
        table.insert(k, row);
    }
    let mut rows: Vec<Vec<String>> = table
        .into_iter()
        .filter_map(|(mut k, row)| {
            k.extend(row?);
            Some(k)
        })
        .collect();
    rows.sort();
    rows
}
