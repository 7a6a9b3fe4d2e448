use std::sync::Arc;

use spate_api::{BarrierKind, CheckpointBarrier};
use spate_checkpoint::CheckpointError;
use spate_proto::v1::worker_server::Worker;
use spate_proto::v1::{
    CancelTaskRequest, CancelTaskResponse, DeployTaskRequest, DeployTaskResponse,
    NotifyCheckpointCompleteRequest, NotifyCheckpointCompleteResponse, ShutdownRequest,
    ShutdownResponse, SwitchJobMasterRequest, SwitchJobMasterResponse, TriggerCheckpointRequest,
    TriggerCheckpointResponse,
};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::jobmaster::JobMasterAddress;
use crate::tasks::TaskManager;

pub struct WorkerService {
    tasks: Arc<TaskManager>,
    shutdown: Arc<Notify>,
    jobmaster: JobMasterAddress,
}

impl WorkerService {
    pub fn new(
        tasks: Arc<TaskManager>,
        shutdown: Arc<Notify>,
        jobmaster: JobMasterAddress,
    ) -> Self {
        WorkerService {
            tasks,
            shutdown,
            jobmaster,
        }
    }
}

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn deploy_task(
        &self,
        request: Request<DeployTaskRequest>,
    ) -> Result<Response<DeployTaskResponse>, Status> {
        self.tasks
            .deploy(request.into_inner())
            .await
            .map_err(|e| deploy_error(&e))?;
        Ok(Response::new(DeployTaskResponse {}))
    }

    async fn cancel_task(
        &self,
        request: Request<CancelTaskRequest>,
    ) -> Result<Response<CancelTaskResponse>, Status> {
        let task = request
            .into_inner()
            .task
            .ok_or_else(|| Status::invalid_argument("cancel without a task id"))?;
        self.tasks.cancel(&task);
        Ok(Response::new(CancelTaskResponse {}))
    }

    async fn trigger_checkpoint(
        &self,
        request: Request<TriggerCheckpointRequest>,
    ) -> Result<Response<TriggerCheckpointResponse>, Status> {
        let request = request.into_inner();
        let kind = if request.savepoint_location.is_empty() {
            BarrierKind::Checkpoint
        } else {
            self.tasks
                .announce_savepoint(request.checkpoint_id, request.savepoint_location);
            BarrierKind::Savepoint
        };
        let barrier = CheckpointBarrier {
            id: request.checkpoint_id,
            timestamp: request.timestamp_ms,
            kind,
        };
        self.tasks.trigger_checkpoint(barrier, &request.tasks);
        Ok(Response::new(TriggerCheckpointResponse {}))
    }

    async fn notify_checkpoint_complete(
        &self,
        request: Request<NotifyCheckpointCompleteRequest>,
    ) -> Result<Response<NotifyCheckpointCompleteResponse>, Status> {
        let request = request.into_inner();
        self.tasks
            .notify_checkpoint_complete(request.checkpoint_id, &request.tasks);
        Ok(Response::new(NotifyCheckpointCompleteResponse {}))
    }

    async fn shutdown(
        &self,
        request: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        info!(reason = %request.into_inner().reason, "shutdown requested");
        self.shutdown.notify_one();
        Ok(Response::new(ShutdownResponse {}))
    }

    async fn switch_job_master(
        &self,
        request: Request<SwitchJobMasterRequest>,
    ) -> Result<Response<SwitchJobMasterResponse>, Status> {
        let request = request.into_inner();
        let moved = self
            .jobmaster
            .switch(&request.job_id, &request.address)
            .map_err(Status::failed_precondition)?;
        if moved {
            info!(jobmaster = %request.address, "the JobMaster moved");
        }
        Ok(Response::new(SwitchJobMasterResponse {}))
    }
}

/// A deployment that failed because the snapshot it restores is corrupt or inconsistent is
/// DATA_LOSS: restoring the same snapshot again cannot succeed, and the JobMaster fails the job
/// at once instead of restarting it. Anything else may go better on another try.
fn deploy_error(error: &anyhow::Error) -> Status {
    let message = format!("{error:#}");
    let unrestorable = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<CheckpointError>(),
            Some(CheckpointError::CorruptFile { .. } | CheckpointError::InvalidSnapshot { .. })
        )
    });
    match unrestorable {
        true => Status::data_loss(message),
        false => Status::invalid_argument(message),
    }
}
