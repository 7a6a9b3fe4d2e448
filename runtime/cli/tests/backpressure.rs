//! Back-pressure on real processes: a sink that stops taking input holds its source back through
//! the queues and credits, and what is buffered stays under the configured bound.

mod common;

use common::*;
use spate_cluster::LocalCluster;
use spate_proto::v1::{JobState, JobStatus};

const QUEUE: usize = 4;
const CREDITS: u32 = 2;

fn batches(status: &JobStatus, vertex: u32, input: bool) -> u64 {
    status
        .tasks
        .iter()
        .filter(|t| t.task.as_ref().is_some_and(|id| id.vertex == vertex))
        .filter_map(|t| t.metrics.as_ref())
        .map(|m| if input { m.batches_in } else { m.batches_out })
        .sum()
}

/// One source subtask feeds two sink subtasks round robin: one on its own worker (a local
/// channel) and one on the other worker (a remote, credit-based channel). Each sink takes
/// `stall_after` batches and then blocks.
async fn source_stops_when_sinks_stall(stall_after: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("backpressure", &dir.path().join("cluster"), 2, 1)
        .arg("parallelism", 1)
        .arg("sink-parallelism", 2)
        .arg("delay-ms", 0)
        .arg("stall-after", stall_after);
    spec.queue_capacity = QUEUE;
    spec.credits_per_channel = CREDITS;
    let mut cluster = LocalCluster::start(spec).await.unwrap();

    // Each sink has taken its batches plus the one it blocks on.
    let stalled = 2 * (stall_after + 1);
    wait_for(&mut cluster, |s| batches(s, 1, true) == stalled).await;
    // Then the source's count must settle: it can only fill what the exchange holds.
    let mut settled = Vec::new();
    let status = wait_for(&mut cluster, |s| {
        settled.push(batches(s, 0, false));
        let n = settled.len();
        // Heartbeats come every 500 ms; several equal readings in a row mean it stopped.
        n >= 12 && settled[n - 12..].iter().all(|&v| v == settled[n - 1])
    })
    .await;
    assert_eq!(status.state, JobState::Running as i32);
    let emitted = batches(&status, 0, false);
    let consumed = batches(&status, 1, true);
    assert_eq!(consumed, stalled, "the sinks are stalled");

    // The local channel holds a queue; the remote one a queue, its credits, and the batch the
    // sender holds while waiting for credit.
    let bound = QUEUE as u64 + (QUEUE as u64 + CREDITS as u64 + 1);
    let in_flight = emitted - consumed;
    assert!(
        in_flight <= bound,
        "{in_flight} batches in flight, bound {bound} (emitted {emitted})"
    );
    assert!(
        in_flight >= QUEUE as u64,
        "the exchange filled up before the source stopped ({in_flight})"
    );
    let buffered: u64 = status
        .workers
        .iter()
        .filter_map(|w| w.metrics.as_ref())
        .map(|m| m.max_buffered_batches)
        .sum();
    assert!(
        buffered <= bound,
        "workers buffered up to {buffered} batches, bound {bound}"
    );

    cluster.cancel("test over").await.unwrap();
    let outcome = cluster.wait().await.unwrap();
    assert_eq!(
        outcome.status.state,
        JobState::Canceled as i32,
        "{}",
        logs(&dir.path().join("cluster"))
    );
    assert!(
        outcome.worker_exits.iter().all(Option::is_some),
        "workers exit after cancel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_sink_stops_the_source_early() {
    source_stops_when_sinks_stall(5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_sink_stops_the_source_late() {
    source_stops_when_sinks_stall(200).await;
}
