//! What the gRPC handlers send the job's owner. A handler never touches the job's record: it
//! sends an event and, where the caller needs an answer the record decides, awaits the reply.

use spate_proto::v1::{
    AcknowledgeCheckpointRequest, DeclineCheckpointRequest, RegisterWorkerRequest, TaskId,
    TaskMetrics, TaskState, WorkerMetrics,
};
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::SavepointRequest;

pub enum Event {
    /// A worker (re)registered; `reply` is sent once the record knows it, so that its first
    /// heartbeat is answered as known. An address that is no address is refused.
    WorkerRegistered {
        request: RegisterWorkerRequest,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Heartbeat {
        worker_id: String,
        worker: WorkerMetrics,
        tasks: Vec<TaskMetrics>,
    },
    TaskStateChanged {
        worker_id: String,
        task: TaskId,
        state: TaskState,
        failure: String,
        metrics: Option<TaskMetrics>,
    },
    Acknowledge(AcknowledgeCheckpointRequest),
    Decline(DeclineCheckpointRequest),
    Savepoint(SavepointRequest),
    Cancel {
        reason: String,
    },
}

/// The handlers' end. Unbounded: a handler must never wait for the owner to make room, and
/// what arrives is bounded by the workers' own pace (one heartbeat per interval, one report
/// per task state change).
pub type Events = mpsc::UnboundedSender<Event>;
