use std::sync::Arc;

use spate_proto::v1::worker_server::Worker;
use spate_proto::v1::{
    CancelTaskRequest, CancelTaskResponse, DeployTaskRequest, DeployTaskResponse, ShutdownRequest,
    ShutdownResponse,
};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::tasks::TaskManager;

pub struct WorkerService {
    tasks: Arc<TaskManager>,
    shutdown: Arc<Notify>,
}

impl WorkerService {
    pub fn new(tasks: Arc<TaskManager>, shutdown: Arc<Notify>) -> Self {
        WorkerService { tasks, shutdown }
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
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
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

    async fn shutdown(
        &self,
        request: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        info!(reason = %request.into_inner().reason, "shutdown requested");
        self.shutdown.notify_one();
        Ok(Response::new(ShutdownResponse {}))
    }
}
