//! The Kafka source against a real broker (a KRaft node the test starts): a bounded read of
//! every record, a read stopped half-way and continued from its checkpointed offsets, and bad
//! input named by its offset.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::{DataType, Field, Schema};
use spate_api::{OperatorContext, RestoredState, SourceFactory, SourcePoll, SourceReader};
use spate_connectors::{Connector, TableContext, TableOptions};
use spate_kafka::Kafka;
use spate_testkit::kafka::{Kafka as Broker, create_topic, produce};

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
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    Kafka
        .source(TableContext {
            table: "t",
            schema,
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
    assert_eq!(source.splits(1).len(), PARTITIONS as usize);

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
