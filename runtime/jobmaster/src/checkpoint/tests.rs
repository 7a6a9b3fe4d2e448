//! The coordinator's bookkeeping of final checkpoints, without workers (completion notices to
//! workers it does not know fail, as they do when a worker died) or with a fake one.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spate_graph::{JobGraph, StreamGraph};
use spate_proto::v1::worker_server::{Worker, WorkerServer};
use spate_proto::v1::{
    AcknowledgeCheckpointRequest, CancelTaskRequest, CancelTaskResponse, DeployTaskRequest,
    DeployTaskResponse, NotifyCheckpointCompleteRequest, NotifyCheckpointCompleteResponse,
    OperatorSubtaskState, ShutdownRequest, ShutdownResponse, SnapshotKind, SwitchJobMasterRequest,
    SwitchJobMasterResponse, TaskId, TriggerCheckpointRequest, TriggerCheckpointResponse,
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::coordinator::{FINAL_NOTICE_AGAIN, FINAL_SNAPSHOT};
use super::{CheckpointSettings, Coordinator, Round, TaskRef};
use crate::clients::{ControlClient, WorkerClients};

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
        finished: false,
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
    coordinator_with(CheckpointSettings::new(url, Duration::from_secs(3600))).await
}

async fn coordinator_with(settings: CheckpointSettings) -> Coordinator {
    let graph = JobGraph {
        stream: StreamGraph::new(JOB),
        vertices: Vec::new(),
        edges: Vec::new(),
        max_parallelism: 128,
    };
    Coordinator::new(settings, JOB, &graph)
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

/// A completion notice: the checkpoint and the subtasks told.
type Notice = (u64, Vec<u32>);

/// A worker that takes every trigger and records the completion notices it gets (the id and
/// the subtasks told); the first `lose` notices fail, as they do for a worker too busy to answer within the deadline.
#[derive(Clone, Default)]
struct FakeWorker {
    notices: Arc<Mutex<Vec<Notice>>>,
    lose: Arc<Mutex<usize>>,
}

#[tonic::async_trait]
impl Worker for FakeWorker {
    async fn deploy_task(
        &self,
        _: Request<DeployTaskRequest>,
    ) -> Result<Response<DeployTaskResponse>, Status> {
        Err(Status::unimplemented("a fake worker deploys nothing"))
    }

    async fn cancel_task(
        &self,
        _: Request<CancelTaskRequest>,
    ) -> Result<Response<CancelTaskResponse>, Status> {
        Err(Status::unimplemented("a fake worker runs nothing"))
    }

    async fn shutdown(
        &self,
        _: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        Ok(Response::new(ShutdownResponse {}))
    }

    async fn trigger_checkpoint(
        &self,
        _: Request<TriggerCheckpointRequest>,
    ) -> Result<Response<TriggerCheckpointResponse>, Status> {
        Ok(Response::new(TriggerCheckpointResponse {}))
    }

    async fn notify_checkpoint_complete(
        &self,
        request: Request<NotifyCheckpointCompleteRequest>,
    ) -> Result<Response<NotifyCheckpointCompleteResponse>, Status> {
        let mut lose = self.lose.lock().unwrap();
        if *lose > 0 {
            *lose -= 1;
            return Err(Status::deadline_exceeded("the notice was lost"));
        }
        let request = request.into_inner();
        let subtasks = request.tasks.iter().map(|t| t.subtask).collect();
        self.notices
            .lock()
            .unwrap()
            .push((request.checkpoint_id, subtasks));
        Ok(Response::new(NotifyCheckpointCompleteResponse {}))
    }

    async fn switch_job_master(
        &self,
        _: Request<SwitchJobMasterRequest>,
    ) -> Result<Response<SwitchJobMasterResponse>, Status> {
        Ok(Response::new(SwitchJobMasterResponse {}))
    }
}

/// Serves `worker` on a free port of 127.0.0.1; returns its control client.
async fn serve(worker: FakeWorker) -> ControlClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(WorkerServer::new(worker))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    ControlClient::lazy(&address).unwrap()
}

/// Both tasks' inputs ended while checkpoint 1 was pending, and the first never took its
/// barrier: the checkpoint is aborted, not failed; the final checkpoint is written; its
/// notice, lost on the way, is sent again until the tasks have finished, and only to those
/// still waiting.
#[tokio::test]
async fn a_lost_final_notice_is_sent_again_until_the_tasks_finish() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints due at once; one that is still pending at the next round has timed out.
    let mut settings =
        CheckpointSettings::new(format!("file://{}", dir.path().display()), Duration::ZERO);
    settings.timeout = Duration::from_millis(1);
    let mut coordinator = coordinator_with(settings).await;
    let worker = FakeWorker::default();
    let client = serve(worker.clone()).await;
    let (first, mut second) = (task(0, 0), task(1, 0));
    let round_of = |tasks: &[&TaskRef]| Round {
        clients: tasks
            .iter()
            .map(|t| (t.worker_id.clone(), client.clone()))
            .collect(),
        ..round(tasks)
    };
    coordinator.deployed(&subtasks(&[&first, &second]), 0).await;
    let both = round_of(&[&first, &second]);
    // Checkpoint 1 is triggered.
    assert_eq!(coordinator.tick(&both, vec![], vec![], true).await, None);

    let checkpoint_ack = AcknowledgeCheckpointRequest {
        task: Some(second.id.clone()),
        checkpoint_id: 1,
        ..Default::default()
    };
    // The notice to each task's worker is lost.
    *worker.lose.lock().unwrap() = 2;
    let acks = vec![checkpoint_ack, final_ack(&first), final_ack(&second)];
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(coordinator.tick(&both, acks, vec![], true).await, None);
    assert_eq!(coordinator.stats.failed, 0, "aborted, not timed out");
    let (id, _) = latest_final(&coordinator);
    assert_eq!(id, 2, "checkpoint 1 was triggered before");
    assert!(
        worker.notices.lock().unwrap().is_empty(),
        "the notice was lost"
    );

    second.finished = true;
    let one_waits = round_of(&[&first, &second]);
    tokio::time::sleep(FINAL_NOTICE_AGAIN).await;
    assert_eq!(
        coordinator.tick(&one_waits, vec![], vec![], true).await,
        None
    );
    assert_eq!(*worker.notices.lock().unwrap(), [(FINAL_SNAPSHOT, vec![0])]);
    assert_eq!(coordinator.stats.failed, 0);
}
