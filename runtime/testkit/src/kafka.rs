//! An Apache Kafka broker for one test: a single KRaft node (broker and controller in one JVM)
//! from the jars `bash e2e/kafka.sh install` resolves from Maven Central into
//! `${SPATE_TOOLS:-/var/tmp/spate-tools}/kafka-<version>/libs`, on free loopback ports with a
//! fresh log directory, killed when dropped.

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use krafka::admin::{
    CreatePartitionsOptions, CreateTopicsOptions, ListTransactionsOptions, NewTopic,
};
use krafka::consumer::IsolationLevel;
use krafka::{Kafka as Client, Record};
use tempfile::TempDir;

const STARTUP: Duration = Duration::from_secs(120);

pub struct Kafka {
    child: Child,
    dir: TempDir,
    /// `127.0.0.1:<port>`, for `properties.bootstrap.servers`.
    pub bootstrap: String,
}

impl Kafka {
    /// A running broker, or `None` (after saying why) when its jars are missing outside CI. In
    /// CI (`CI=true`) missing jars fail the test: there they must have been installed.
    pub fn start() -> Option<Kafka> {
        let libs = libs();
        if !libs.join(".complete").is_file() {
            let message = format!(
                "Kafka's jars are not in {}; run `bash e2e/kafka.sh install`",
                libs.display()
            );
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{message}");
            }
            eprintln!("skipping the Kafka test: {message}");
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory for Kafka");
        let port = free_port();
        // Two ports, told apart: the OS may hand the same free port out twice.
        let controller = std::iter::repeat_with(free_port)
            .find(|&other| other != port)
            .expect("a second free port");
        let properties = dir.path().join("server.properties");
        std::fs::write(&properties, server_properties(dir.path(), port, controller))
            .expect("Kafka's server.properties");
        let format = java(&libs)
            .args(["kafka.tools.StorageTool", "format", "-t"])
            .arg(cluster_id(&libs))
            .arg("-c")
            .arg(&properties)
            .output()
            .expect("running Kafka's StorageTool");
        assert!(
            format.status.success(),
            "formatting Kafka's log directory failed: {}{}",
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );
        let log = File::create(dir.path().join("kafka.log")).expect("Kafka's log file");
        let mut command = java(&libs);
        command
            // The jars carry no logging configuration: without a level the broker prints
            // nothing, not even that it started.
            .arg("-Dlog4j2.level=INFO")
            .arg("kafka.Kafka")
            .arg(&properties)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("Kafka's log file"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it makes the kernel kill the broker if the test
        // process dies without running Drop.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("starting Kafka");
        let mut kafka = Kafka {
            child,
            dir,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        kafka.wait_until_started();
        Some(kafka)
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kafka.log")).unwrap_or_default()
    }

    fn wait_until_started(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            let log = File::open(self.dir.path().join("kafka.log")).expect("Kafka's log file");
            if BufReader::new(log)
                .lines()
                .map_while(Result::ok)
                .any(|line| line.contains("Kafka Server started"))
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Kafka exited while starting ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "Kafka had not started after {STARTUP:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `topic` on the brokers at `bootstrap` with `partitions` partitions (one replica each).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let (address, name) = (bootstrap.to_string(), topic.to_string());
    on_own_runtime(async move {
        let (bootstrap, topic) = (address, name);
        let created = connect(&bootstrap)
            .await
            .admin()
            .create_topics(
                [NewTopic::new(topic.clone(), partitions, 1).expect("a topic")],
                CreateTopicsOptions::default(),
            )
            .await
            .expect("creating the topic");
        if let Some(Err(e)) = created.get(&topic) {
            panic!("creating topic {topic}: {e}");
        }
    });
    await_partitions(bootstrap, topic, partitions);
}

/// Waits until the brokers' metadata shows `topic` with `partitions` partitions: a topic
/// creation is answered before every broker serves the topic, and a job planned at once
/// would find it missing.
fn await_partitions(bootstrap: &str, topic: &str, partitions: i32) {
    let deadline = Instant::now() + STARTUP;
    loop {
        let (bootstrap, name) = (bootstrap.to_string(), topic.to_string());
        let found = on_own_runtime(async move {
            let consumer = connect(&bootstrap)
                .await
                .consumer_without_group()
                .build()
                .await
                .expect("a consumer");
            let metadata = consumer.fetch_metadata(Some(&name)).await;
            let _ = consumer.close().await;
            metadata.map_or(0, |m| {
                m.topics
                    .into_iter()
                    .find(|t| t.name == name)
                    .map_or(0, |t| t.partitions.len())
            })
        });
        if found == partitions as usize {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} has {found} of {partitions} partitions"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Grows `topic` to `partitions` partitions, as a topic grows while jobs read it.
pub fn add_partitions(bootstrap: &str, topic: &str, partitions: i32) {
    let (address, name) = (bootstrap.to_string(), topic.to_string());
    on_own_runtime(async move {
        let (bootstrap, topic) = (address, name);
        let grown = connect(&bootstrap)
            .await
            .admin()
            .create_partitions(
                [(topic.clone(), partitions)],
                CreatePartitionsOptions::default(),
            )
            .await
            .expect("adding partitions");
        if let Some(Err(e)) = grown.get(&topic) {
            panic!("adding partitions to {topic}: {e}");
        }
    });
    await_partitions(bootstrap, topic, partitions);
}

/// Writes `records` (partition, value) to `topic` in order, each acknowledged by the broker.
pub fn produce(bootstrap: &str, topic: &str, records: Vec<(i32, Vec<u8>)>) {
    let keyless = records
        .into_iter()
        .map(|(partition, value)| (partition, (None, Some(value))))
        .collect();
    produce_keyed(bootstrap, topic, keyless);
}

/// Writes `records` (partition, key and value: no value is a tombstone) to `topic` in order,
/// each acknowledged by the broker.
pub fn produce_keyed(bootstrap: &str, topic: &str, records: Vec<(i32, KeyValue)>) {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    on_own_runtime(async move {
        let producer = connect(&bootstrap)
            .await
            .producer()
            .build()
            .await
            .expect("a producer");
        let mut sent = Vec::with_capacity(records.len());
        for (partition, (key, value)) in records {
            let record = match value {
                Some(value) => Record::new(topic.clone(), value),
                None => Record::new(topic.clone(), Vec::new()).without_value(),
            };
            let record = match key {
                Some(key) => record.key(key),
                None => record,
            };
            sent.push(
                producer
                    .enqueue(record.partition(partition))
                    .await
                    .expect("producing"),
            );
        }
        for delivery in sent {
            let _ = delivery.await.expect("a record acknowledged");
        }
        producer.close().await.expect("closing the producer");
    });
}

/// The values of `topic` a `read_committed` consumer sees (tombstones have none), partition by
/// partition in offset order, once no transaction is half-way through its commit or abort:
/// every committed record up to the last stable offset (the first offset of the earliest transaction still open).
/// A commit returns before its markers are written, so without the wait a record committed a
/// moment ago could still be hidden.
pub fn committed(bootstrap: &str, topic: &str) -> Vec<Vec<u8>> {
    committed_records(bootstrap, topic)
        .into_iter()
        .filter_map(|(_, value)| value)
        .collect()
}

/// A record's key and value; a tombstone has no value.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The records of `topic` a `read_committed` consumer sees, as [`committed`] reads them.
pub fn committed_records(bootstrap: &str, topic: &str) -> Vec<KeyValue> {
    let deadline = Instant::now() + STARTUP;
    loop {
        let ending = transactions(bootstrap, &["PrepareCommit", "PrepareAbort"]);
        if ending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transactions {ending:?} did not finish ending"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    on_own_runtime(async move {
        let kafka = connect(&bootstrap).await;
        let consumer = kafka
            .consumer_without_group()
            .isolation_level(IsolationLevel::ReadCommitted)
            .enable_auto_commit(false)
            .build()
            .await
            .expect("a consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic))
            .await
            .expect("the topic's metadata");
        let mut partitions: Vec<i32> = metadata
            .topics
            .into_iter()
            .filter(|t| t.name == topic)
            .flat_map(|t| t.partitions.into_keys())
            .collect();
        partitions.sort_unstable();
        let mut values = Vec::new();
        for partition in partitions {
            // Under read_committed the end is the last stable offset.
            let (start, end) = consumer
                .fetch_watermarks(&topic, partition)
                .await
                .expect("the partition's offsets");
            consumer
                .assign(&topic, vec![partition])
                .await
                .expect("assigning the partition");
            consumer
                .seek(&topic, partition, start)
                .await
                .expect("seeking");
            let deadline = Instant::now() + STARTUP;
            while consumer
                .position(&topic, partition)
                .await
                .is_none_or(|p| p < end)
            {
                assert!(
                    Instant::now() < deadline,
                    "{topic}-{partition}: read_committed did not reach offset {end}"
                );
                let records = consumer
                    .poll(Duration::from_millis(200))
                    .await
                    .expect("polling");
                values.extend(
                    records
                        .into_iter()
                        .filter(|r| r.offset < end)
                        .map(|r| (r.key.map(|k| k.to_vec()), r.value.map(|v| v.to_vec()))),
                );
            }
        }
        let _ = consumer.close().await;
        values
    })
}

/// The transactional ids with a transaction open on the brokers at `bootstrap`.
pub fn open_transactions(bootstrap: &str) -> Vec<String> {
    transactions(bootstrap, &["Ongoing"])
}

/// The transactional ids whose transaction is in one of `states` (the coordinator's names).
fn transactions(bootstrap: &str, states: &[&str]) -> Vec<String> {
    let bootstrap = bootstrap.to_string();
    let states = states.iter().map(|s| s.to_string()).collect();
    on_own_runtime(async move {
        let listed = connect(&bootstrap)
            .await
            .admin()
            .list_transactions(ListTransactionsOptions::default().states(states))
            .await
            .expect("listing transactions");
        let mut ids: Vec<String> = listed
            .into_values()
            .flat_map(|listing| listing.expect("a broker's transactions"))
            .map(|t| t.transactional_id)
            .collect();
        ids.sort();
        ids
    })
}

async fn connect(bootstrap: &str) -> Client {
    Client::builder(bootstrap)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to Kafka at {bootstrap}: {e}"))
}

/// Runs `work` on a thread with a runtime of its own: the caller may be inside a runtime.
fn on_own_runtime<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// One node that is broker and controller; internal topics with one replica; no topic made by
/// reading or writing it, so a missing topic is an error, as on a cluster configured so.
fn server_properties(dir: &Path, port: u16, controller: u16) -> String {
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
",
        dir.join("logs").display()
    )
}

fn java(libs: &Path) -> Command {
    let mut command = Command::new("java");
    command
        .args(["-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-cp"])
        .arg(format!("{}/*", libs.display()));
    command
}

/// A new KRaft cluster id, as Kafka's own tool makes one.
fn cluster_id(libs: &Path) -> String {
    let made = java(libs)
        .args(["kafka.tools.StorageTool", "random-uuid"])
        .output()
        .expect("running Kafka's StorageTool");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8_lossy(&made.stdout).trim().to_string()
}

/// The jars' directory: `kafka-<version>` of the pinned version in e2e/kafka/pom.xml.
fn libs() -> PathBuf {
    let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/kafka/pom.xml");
    let pom = std::fs::read_to_string(&pom).expect("e2e/kafka/pom.xml");
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|rest| rest.split("</kafka.version>").next())
        .expect("<kafka.version> in e2e/kafka/pom.xml");
    let tools = std::env::var_os("SPATE_TOOLS").unwrap_or_else(|| "/var/tmp/spate-tools".into());
    PathBuf::from(tools)
        .join(format!("kafka-{version}"))
        .join("libs")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
