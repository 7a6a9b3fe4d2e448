//! The Kafka source against a real broker (a KRaft node the test starts): a bounded read of
//! every record, a read stopped half-way and continued from its checkpointed offsets,
//! partitions added while readers run, and bad input named by its offset.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::{DataType, Field, Schema};
use spate_api::{OperatorContext, RestoredState, SourceFactory, SourcePoll, SourceReader};
use spate_connectors::{Connector, TableContext, TableOptions};
use spate_kafka::Kafka;
use spate_testkit::kafka::{Kafka as Broker, add_partitions, create_topic, produce};

const PARTITIONS: i32 = 3;

/// Creates `topic` with three partitions and writes `values` to it, value i to partition
/// i % 3, in order.
fn write(broker: &Broker, topic: &str, values: &[String]) {
    create_topic(&broker.bootstrap, topic, PARTITIONS);
    let records = values
        .iter()
        .enumerate()
        .map(|(i, value)| (i as i32 % PARTITIONS, value.clone().into_bytes()))
        .collect();
    produce(&broker.bootstrap, topic, records);
}

fn source(bootstrap: &str, topic: &str, extra: &[(&str, &str)]) -> Arc<dyn SourceFactory> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]);
    source_of(bootstrap, topic, extra, schema)
}

fn source_of(
    bootstrap: &str,
    topic: &str,
    extra: &[(&str, &str)],
    schema: Schema,
) -> Arc<dyn SourceFactory> {
    let mut values: BTreeMap<String, String> = [
        ("connector", "kafka"),
        ("topic", topic),
        ("properties.bootstrap.servers", bootstrap),
        ("scan.startup.mode", "earliest-offset"),
        ("scan.bounded.mode", "latest-offset"),
        ("format", "json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        values.insert(k.to_string(), v.to_string());
    }
    let mut options = TableOptions::new("t", values);
    Kafka
        .source(TableContext {
            table: "t",
            schema: Arc::new(schema),
            options: &mut options,
            primary_key: &[],
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

fn reader(source: &dyn SourceFactory, restored: Option<RestoredState>) -> Box<dyn SourceReader> {
    let mut ctx = OperatorContext::single("kafka");
    ctx.state.restored = restored;
    source.create_reader(source.splits(1), &ctx).unwrap()
}

/// Ids read until the end, or until `limit` batches came.
fn read(reader: &mut dyn SourceReader, limit: usize) -> (Vec<i64>, bool) {
    let mut ids = Vec::new();
    let mut batches = 0;
    loop {
        match reader.poll_next().unwrap_or_else(|e| panic!("{e}")) {
            SourcePoll::Batch(batch) => {
                let column = batch.column(0).as_primitive::<Int64Type>();
                ids.extend(column.values().iter().copied());
                batches += 1;
                if batches == limit {
                    return (ids, false);
                }
            }
            SourcePoll::Idle => std::thread::sleep(Duration::from_millis(20)),
            SourcePoll::End => return (ids, true),
        }
    }
}

fn documents(count: i64) -> Vec<String> {
    (0..count)
        .map(|id| format!(r#"{{"id": {id}, "name": "n{id}"}}"#))
        .collect()
}

#[test]
fn a_bounded_read_takes_every_record_once_and_a_restored_one_continues_after_its_offsets() {
    let Some(broker) = Broker::start() else {
        return;
    };
    const COUNT: i64 = 3_000;
    write(&broker, "people", &documents(COUNT));
    let source = source(&broker.bootstrap, "people", &[]);
    // A split is a reader's share of the topic, not a partition.
    assert_eq!(source.splits(2).len(), 2);

    let (all, ended) = read(&mut *reader(&*source, None), usize::MAX);
    assert!(ended);
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..COUNT).collect::<Vec<_>>(), "every record once");

    // Stopped after its first batch and restored from what it checkpointed then, a reader
    // hands over exactly the records the first did not.
    let mut first = reader(&*source, None);
    let (before, ended) = read(&mut *first, 1);
    assert!(!ended && !before.is_empty());
    let entries = first.snapshot_positions().unwrap();
    drop(first);
    let restored = RestoredState {
        entries,
        ..Default::default()
    };
    let (after, ended) = read(&mut *reader(&*source, Some(restored)), usize::MAX);
    assert!(ended);
    let mut both: Vec<i64> = before.into_iter().chain(after).collect();
    both.sort_unstable();
    assert_eq!(
        both,
        (0..COUNT).collect::<Vec<_>>(),
        "no loss, no duplicate"
    );
}

/// Ids the readers hand over until `count` came, by reader. A hang guard, not a time limit: the
/// records are written before this is called.
fn read_from(readers: &mut [Box<dyn SourceReader>], count: usize) -> Vec<Vec<i64>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ids = vec![Vec::new(); readers.len()];
    while ids.iter().map(Vec::len).sum::<usize>() < count {
        assert!(
            Instant::now() < deadline,
            "only {ids:?} of {count} records came"
        );
        for (reader, ids) in readers.iter_mut().zip(&mut ids) {
            match reader.poll_next().unwrap_or_else(|e| panic!("{e}")) {
                SourcePoll::Batch(batch) => {
                    let column = batch.column(0).as_primitive::<Int64Type>();
                    ids.extend(column.values().iter().copied());
                }
                SourcePoll::Idle => std::thread::sleep(Duration::from_millis(10)),
                SourcePoll::End => panic!("an unbounded read ended"),
            }
        }
    }
    ids
}

/// `count` records from id `first` on, all to `partition`.
fn write_to(broker: &Broker, topic: &str, partition: i32, first: i64, count: i64) {
    let records = documents(first + count)[first as usize..]
        .iter()
        .map(|value| (partition, value.clone().into_bytes()))
        .collect();
    produce(&broker.bootstrap, topic, records);
}

/// Partitions added to the topic while an unbounded read runs are found by partition
/// discovery and read from their first record, each by the one reader whose share owns it
/// (`partition % readers`); a reader restored from its checkpoint keeps its share, and its
/// discovered partitions, and reads on after what it handed over.
#[test]
fn partitions_added_while_reading_are_read_from_their_start_by_one_reader() {
    let Some(broker) = Broker::start() else {
        return;
    };
    const PER_PARTITION: i64 = 100;
    create_topic(&broker.bootstrap, "growing", 1);
    write_to(&broker, "growing", 0, 0, PER_PARTITION);
    let source = source(
        &broker.bootstrap,
        "growing",
        &[
            ("scan.bounded.mode", "unbounded"),
            ("scan.topic-partition-discovery.interval", "100 ms"),
        ],
    );
    let ctx = OperatorContext::single("kafka");
    let shares = source.splits(2);
    let open = |share: usize, ctx: &OperatorContext| {
        source
            .create_reader(vec![shares[share].clone()], ctx)
            .unwrap()
    };
    let mut readers = vec![open(0, &ctx), open(1, &ctx)];
    let first = read_from(&mut readers, PER_PARTITION as usize);
    assert_eq!(
        first[0].len(),
        PER_PARTITION as usize,
        "reader 0 owns partition 0"
    );

    add_partitions(&broker.bootstrap, "growing", 4);
    for partition in 1..4 {
        write_to(
            &broker,
            "growing",
            partition,
            i64::from(partition) * PER_PARTITION,
            PER_PARTITION,
        );
    }
    let added = read_from(&mut readers, 3 * PER_PARTITION as usize);
    let partition_of = |id: &i64| id / PER_PARTITION;
    let partitions = |ids: &[i64]| -> Vec<i64> {
        let mut p: Vec<i64> = ids.iter().map(partition_of).collect();
        p.dedup();
        p.sort_unstable();
        p.dedup();
        p
    };
    assert_eq!(
        partitions(&added[0]),
        [2],
        "reader 0 owns partitions 0 and 2"
    );
    assert_eq!(
        partitions(&added[1]),
        [1, 3],
        "reader 1 owns partitions 1 and 3"
    );
    let mut all: Vec<i64> = first.into_iter().chain(added).flatten().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..4 * PER_PARTITION).collect::<Vec<_>>(),
        "every record once"
    );

    // Reader 1, restored from its checkpoint, reads only what came after it.
    let entries = readers[1].snapshot_positions().unwrap();
    readers.truncate(1);
    write_to(&broker, "growing", 3, 4 * PER_PARTITION, 10);
    let mut restored_ctx = ctx.clone();
    restored_ctx.state.restored = Some(RestoredState {
        entries,
        ..Default::default()
    });
    let mut restored = vec![open(1, &restored_ctx)];
    let after = read_from(&mut restored, 10);
    assert_eq!(
        after[0],
        (4 * PER_PARTITION..4 * PER_PARTITION + 10).collect::<Vec<_>>()
    );
}

/// The csv and raw formats: a record is one CSV line of the columns, or one STRING column's
/// text as it is.
#[test]
fn csv_and_raw_records_are_read_as_rows() {
    let Some(broker) = Broker::start() else {
        return;
    };
    const COUNT: i64 = 300;
    let lines: Vec<String> = (0..COUNT).map(|id| format!("{id}|\"n|{id}\"")).collect();
    write(&broker, "lines", &lines);
    let csv = source(
        &broker.bootstrap,
        "lines",
        &[("format", "csv"), ("csv.field-delimiter", "|")],
    );
    let (mut ids, ended) = read(&mut *reader(&*csv, None), usize::MAX);
    assert!(ended);
    ids.sort_unstable();
    assert_eq!(ids, (0..COUNT).collect::<Vec<_>>());

    let texts = Schema::new(vec![Field::new("line", DataType::Utf8, true)]);
    let raw = source_of(&broker.bootstrap, "lines", &[("format", "raw")], texts);
    let mut got = Vec::new();
    let mut reader = reader(&*raw, None);
    loop {
        match reader.poll_next().unwrap_or_else(|e| panic!("{e}")) {
            SourcePoll::Batch(batch) => got.extend(
                batch
                    .column(0)
                    .as_string::<i32>()
                    .iter()
                    .map(|line| line.unwrap_or_default().to_string()),
            ),
            SourcePoll::Idle => std::thread::sleep(Duration::from_millis(20)),
            SourcePoll::End => break,
        }
    }
    got.sort();
    let mut want = lines;
    want.sort();
    assert_eq!(got, want, "each value's text as it is");
}

#[test]
fn a_record_that_does_not_parse_is_named_by_its_offset_or_skipped_when_asked() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let mut values = documents(6);
    values[4] = "{\"id\": 4, \"name\": ".to_string();
    write(&broker, "broken", &values);
    let strict = source(&broker.bootstrap, "broken", &[]);
    let mut reader_ = reader(&*strict, None);
    let error = loop {
        match reader_.poll_next() {
            Ok(SourcePoll::End) => panic!("the broken record was not noticed"),
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break e.to_string(),
        }
    };
    // Record 4 went to partition 4 % 3 = 1, the second record there: offset 1.
    assert!(
        error.contains("topic 'broken' partition 1 offset 1"),
        "{error}"
    );

    let lenient = source(
        &broker.bootstrap,
        "broken",
        &[("json.ignore-parse-errors", "true")],
    );
    let (mut ids, ended) = read(&mut *reader(&*lenient, None), usize::MAX);
    assert!(ended);
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 3, 5]);
}

#[test]
fn a_missing_topic_and_an_unreachable_broker_are_planning_errors() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let values: BTreeMap<String, String> = [
        ("topic", "nowhere"),
        ("properties.bootstrap.servers", broker.bootstrap.as_str()),
        ("scan.startup.mode", "earliest-offset"),
        ("format", "json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let plan = |values: BTreeMap<String, String>| {
        let mut options = TableOptions::new("t", values);
        Kafka
            .source(TableContext {
                table: "t",
                schema: schema.clone(),
                options: &mut options,
                primary_key: &[],
            })
            .err()
            .expect("an error")
            .to_string()
    };
    let missing = plan(values.clone());
    assert!(
        missing.contains("topic 'nowhere' does not exist"),
        "{missing}"
    );
    drop(broker);
    // Nothing listens there any more.
    let unreachable = plan(values);
    assert!(
        unreachable.contains("Kafka brokers at 127.0.0.1:"),
        "{unreachable}"
    );
}
