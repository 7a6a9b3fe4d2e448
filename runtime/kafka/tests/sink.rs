//! The Kafka sink against a real broker (a KRaft node the test starts), its operator driven as
//! a task drives it: rows, barriers, completion notices, and restores from checkpoint entries.
//! A crash is a sink dropped without its notice; what `read_committed` readers see is read
//! back with a consumer of the testkit, and no transaction may be left open.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use spate_api::{Operator, OperatorContext, OperatorFactory, Output, RestoredState, StateEntry};
use spate_connectors::{Connector, TableContext, TableOptions};
use spate_kafka::Kafka;
use spate_testkit::kafka::{Kafka as Broker, committed, create_topic, open_transactions};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn options(bootstrap: &str, topic: &str, extra: &[(&str, &str)]) -> TableOptions {
    let mut values: BTreeMap<String, String> = [
        ("connector", "kafka"),
        ("topic", topic),
        ("properties.bootstrap.servers", bootstrap),
        ("format", "json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        values.insert(k.to_string(), v.to_string());
    }
    TableOptions::new("out", values)
}

fn factory(bootstrap: &str, topic: &str, extra: &[(&str, &str)]) -> Arc<dyn OperatorFactory> {
    let mut options = options(bootstrap, topic, extra);
    Kafka
        .sink(TableContext {
            table: "out",
            schema: schema(),
            options: &mut options,
            primary_key: &[],
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

const EXACTLY_ONCE: &[(&str, &str)] = &[
    ("sink.delivery-guarantee", "exactly-once"),
    ("sink.transactional-id-prefix", "test-out"),
];

/// Subtask `subtask` of `parallelism`, with checkpoints, restored from `restored` entries.
fn open(
    factory: &dyn OperatorFactory,
    subtask: u32,
    parallelism: u32,
    restored: Option<Vec<StateEntry>>,
) -> Box<dyn Operator> {
    let mut ctx = OperatorContext::single("kafka-sink");
    ctx.subtask = subtask;
    ctx.parallelism = parallelism;
    ctx.state.checkpointing = true;
    ctx.state.restored = restored.map(|entries| RestoredState {
        checkpoint_id: 1,
        entries,
        keyed: Vec::new(),
    });
    let mut sink = factory.create(&ctx).unwrap_or_else(|e| panic!("{e}"));
    sink.open(&ctx).unwrap_or_else(|e| panic!("{e}"));
    sink
}

fn write(sink: &mut dyn Operator, ids: std::ops::Range<i64>) {
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(StringArray::from_iter_values(ids.map(|i| format!("n{i}")))),
        ],
    )
    .unwrap();
    sink.process_batch(batch, &mut Output::default())
        .unwrap_or_else(|e| panic!("{e}"));
}

fn checkpoint(sink: &mut dyn Operator, id: u64) -> Vec<StateEntry> {
    sink.snapshot_state(id)
        .unwrap_or_else(|e| panic!("{e}"))
        .entries
}

/// The ids `read_committed` readers see, sorted.
fn visible(broker: &Broker, topic: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = committed(&broker.bootstrap, topic)
        .iter()
        .map(|value| {
            let row: serde_json::Value = serde_json::from_slice(value).unwrap();
            assert_eq!(row["name"], format!("n{}", row["id"]), "{row}");
            row["id"].as_i64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn rows_become_visible_once_their_checkpoint_completes() {
    let Some(broker) = Broker::start() else {
        return;
    };
    create_topic(&broker.bootstrap, "out", 2);
    let factory = factory(&broker.bootstrap, "out", EXACTLY_ONCE);
    let mut sink = open(&*factory, 0, 1, None);
    write(&mut *sink, 0..500);
    let entries = checkpoint(&mut *sink, 1);
    assert_eq!(entries.len(), 1, "one pre-committed transaction");
    write(&mut *sink, 500..700);
    assert_eq!(
        visible(&broker, "out"),
        Vec::<i64>::new(),
        "nothing before the notice"
    );
    sink.notify_checkpoint_complete(1).unwrap();
    assert_eq!(visible(&broker, "out"), (0..500).collect::<Vec<i64>>());
    checkpoint(&mut *sink, 2);
    sink.notify_checkpoint_complete(2).unwrap();
    assert_eq!(visible(&broker, "out"), (0..700).collect::<Vec<i64>>());
    assert_eq!(open_transactions(&broker.bootstrap), Vec::<String>::new());
}

#[test]
fn a_crash_between_completion_and_commit_loses_and_duplicates_nothing() {
    let Some(broker) = Broker::start() else {
        return;
    };
    create_topic(&broker.bootstrap, "out", 2);
    let factory = factory(&broker.bootstrap, "out", EXACTLY_ONCE);
    // Checkpoint 1 completes, but the sink dies before its notice; rows after the barrier are
    // in a transaction left open.
    let mut sink = open(&*factory, 0, 1, None);
    write(&mut *sink, 0..300);
    let checkpoint_1 = checkpoint(&mut *sink, 1);
    write(&mut *sink, 300..400);
    drop(sink);
    // (The later rows' transaction is open too if they left the process before it died.)
    let left_open = open_transactions(&broker.bootstrap);
    assert!(
        left_open.contains(&"test-out-0-0".to_string()),
        "{left_open:?}"
    );
    // The restored sink starts with its first rows: it commits checkpoint 1's transaction and
    // aborts the other before writing them.
    let mut restored = open(&*factory, 0, 1, Some(checkpoint_1.clone()));
    write(&mut *restored, 300..450);
    assert_eq!(visible(&broker, "out"), (0..300).collect::<Vec<i64>>());
    assert_eq!(
        open_transactions(&broker.bootstrap).len(),
        1,
        "the new rows'"
    );
    // It dies again after its own barrier, before checkpoint 2 completes: a second restore
    // from checkpoint 1 commits nothing twice and drops the replay.
    checkpoint(&mut *restored, 2);
    drop(restored);
    let mut again = open(&*factory, 0, 1, Some(checkpoint_1));
    write(&mut *again, 300..450);
    assert_eq!(visible(&broker, "out"), (0..300).collect::<Vec<i64>>());
    checkpoint(&mut *again, 3);
    again.notify_checkpoint_complete(3).unwrap();
    assert_eq!(visible(&broker, "out"), (0..450).collect::<Vec<i64>>());
    assert_eq!(open_transactions(&broker.bootstrap), Vec::<String>::new());
}

#[test]
fn a_restore_at_lower_parallelism_commits_every_old_subtasks_transactions() {
    let Some(broker) = Broker::start() else {
        return;
    };
    create_topic(&broker.bootstrap, "out", 2);
    let factory = factory(&broker.bootstrap, "out", EXACTLY_ONCE);
    let mut entries = Vec::new();
    let mut old = Vec::new();
    for (subtask, rows) in [(0, 0..100), (1, 100..250)] {
        let mut sink = open(&*factory, subtask, 2, None);
        write(&mut *sink, rows);
        entries.extend(checkpoint(&mut *sink, 1));
        write(&mut *sink, 1_000..1_010);
        old.push(sink);
    }
    drop(old);
    let mut sink = open(&*factory, 0, 1, Some(entries));
    // No rows: the first barrier starts the sink, which commits what it restored.
    assert!(checkpoint(&mut *sink, 2).is_empty());
    assert_eq!(visible(&broker, "out"), (0..250).collect::<Vec<i64>>());
    assert_eq!(open_transactions(&broker.bootstrap), Vec::<String>::new());
}

#[test]
fn at_least_once_rows_are_acknowledged_by_the_barrier() {
    let Some(broker) = Broker::start() else {
        return;
    };
    create_topic(&broker.bootstrap, "out", 2);
    let factory = factory(&broker.bootstrap, "out", &[]);
    let mut sink = open(&*factory, 0, 1, None);
    write(&mut *sink, 0..1_000);
    assert!(
        checkpoint(&mut *sink, 1).is_empty(),
        "nothing to commit later"
    );
    assert_eq!(visible(&broker, "out"), (0..1_000).collect::<Vec<i64>>());
}

#[test]
fn a_missing_topic_or_an_unreachable_broker_is_refused_when_planning() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let plan = |bootstrap: &str, topic: &str| {
        let mut options = options(bootstrap, topic, EXACTLY_ONCE);
        Kafka
            .sink(TableContext {
                table: "out",
                schema: schema(),
                options: &mut options,
                primary_key: &[],
            })
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let missing = plan(&broker.bootstrap, "nowhere");
    assert!(
        missing.contains("topic 'nowhere' does not exist"),
        "{missing}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = plan(&format!("127.0.0.1:{port}"), "out");
    assert!(unreachable.contains("Kafka brokers"), "{unreachable}");
}
