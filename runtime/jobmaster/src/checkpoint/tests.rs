//! The coordinator's bookkeeping of final checkpoints, without workers: completion notices to
//! workers it does not know fail, as they do when a worker died.

use std::collections::BTreeSet;
use std::time::Duration;

use spate_graph::{JobGraph, StreamGraph};
use spate_proto::v1::{AcknowledgeCheckpointRequest, OperatorSubtaskState, SnapshotKind, TaskId};

use super::{CheckpointSettings, Coordinator, Round, TaskRef};
use crate::clients::WorkerClients;

const JOB: &str = "job-1";

fn task(subtask: u32, attempt: u32) -> TaskRef {
    TaskRef {
        id: TaskId {
            job_id: JOB.into(),
            vertex: 0,
            subtask,
            attempt,
        },
        worker_id: format!("worker-{subtask}"),
        is_source: true,
    }
}

/// The final snapshot of `task`, its one state entry named after its attempt.
fn final_ack(task: &TaskRef) -> AcknowledgeCheckpointRequest {
    AcknowledgeCheckpointRequest {
        task: Some(task.id.clone()),
        r#final: true,
        states: vec![OperatorSubtaskState {
            operator_id: format!("attempt-{}", task.id.attempt),
            subtask: task.id.subtask,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A round over `tasks`, the current attempts; no worker is known.
fn round(tasks: &[&TaskRef]) -> Round {
    Round {
        tasks: tasks
            .iter()
            .map(|t| ((t.id.vertex, t.id.subtask), (*t).clone()))
            .collect(),
        clients: WorkerClients::default(),
    }
}

/// The (vertex, subtask) of each of `tasks`.
fn subtasks(tasks: &[&TaskRef]) -> BTreeSet<(u32, u32)> {
    tasks.iter().map(|t| (t.id.vertex, t.id.subtask)).collect()
}

async fn coordinator(dir: &std::path::Path) -> Coordinator {
    let url = format!("file://{}", dir.display());
    let graph = JobGraph {
        stream: StreamGraph::new(JOB),
        vertices: Vec::new(),
        edges: Vec::new(),
        max_parallelism: 128,
    };
    Coordinator::new(
        CheckpointSettings::new(url, Duration::from_secs(3600)),
        JOB,
        &graph,
    )
    .await
    .expect("coordinator on a local directory")
}

fn latest_final(coordinator: &Coordinator) -> (u64, Vec<(String, u32)>) {
    let latest = coordinator.latest().expect("a completed checkpoint");
    assert_eq!(latest.metadata.kind, SnapshotKind::Final as i32);
    let states = latest
        .metadata
        .states
        .iter()
        .map(|s| (s.operator_id.clone(), s.subtask))
        .collect();
    (latest.metadata.checkpoint_id, states)
}

/// A task restarted after the final checkpoint (its worker died before the notice reached it)
/// ends its input again while the other task has finished and sends nothing more: the next
/// final checkpoint is written with both, rather than waited for forever.
#[tokio::test]
async fn a_task_restarted_after_the_final_checkpoint_gets_another() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = coordinator(dir.path()).await;
    let (first, second) = (task(0, 0), task(1, 0));
    let both = round(&[&first, &second]);
    coordinator.deployed(&subtasks(&[&first, &second]), 0).await;

    let acks = vec![final_ack(&first), final_ack(&second)];
    assert_eq!(coordinator.tick(&both, acks, vec![], true).await, None);
    let (id, states) = latest_final(&coordinator);
    assert_eq!(
        states,
        [("attempt-0".to_string(), 0), ("attempt-0".to_string(), 1)]
    );
    // Written once: later rounds neither write it again nor trigger periodic checkpoints.
    assert_eq!(coordinator.tick(&both, vec![], vec![], true).await, None);
    assert_eq!(latest_final(&coordinator).0, id);
    assert_eq!(coordinator.stats.failed, 0);

    let restarted = task(0, 1);
    coordinator.deployed(&subtasks(&[&restarted]), id).await;
    let acks = vec![final_ack(&restarted)];
    let after_restart = round(&[&restarted, &second]);
    assert_eq!(
        coordinator.tick(&after_restart, acks, vec![], false).await,
        None
    );
    let (again, states) = latest_final(&coordinator);
    assert!(again > id, "a new final checkpoint after {id}, got {again}");
    assert_eq!(
        states,
        [("attempt-0".to_string(), 1), ("attempt-1".to_string(), 0)]
    );
}
