use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_proto::v1::job_master_server::JobMaster;
use spate_proto::v1::{
    AcknowledgeCheckpointRequest, CancelJobRequest, CancelJobResponse, CheckpointResponse,
    DeclineCheckpointRequest, GetJobStatusRequest, HeartbeatRequest, HeartbeatResponse, JobStatus,
    RegisterWorkerRequest, RegisterWorkerResponse, TaskState, TaskStateAck, TaskStateReport,
    TriggerSavepointRequest, TriggerSavepointResponse, WorkerMetrics,
};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::checkpoint::SavepointRequest;
use crate::inbox::{Inbound, Requests};
use crate::state::{Shared, WorkerEntry};

pub struct JobMasterService {
    pub shared: Arc<Shared>,
    /// To the driver: checkpoint messages, savepoint and cancel requests.
    pub requests: Requests,
    pub heartbeat_interval: Duration,
}

#[tonic::async_trait]
impl JobMaster for JobMasterService {
    async fn register_worker(
        &self,
        request: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let r = request.into_inner();
        if r.slots.is_empty() {
            return Err(Status::invalid_argument(
                "a worker must offer at least one slot",
            ));
        }
        let mut state = self.shared.state.lock().await;
        info!(worker = %r.worker_id, pid = r.pid, slots = r.slots.len(), data = %r.data_address, tasks = r.tasks.len(), "worker registered");
        state.workers.retain(|w| w.id != r.worker_id);
        state.last_checkpoint_seen = state.last_checkpoint_seen.max(r.last_checkpoint_id);
        state.workers.push(WorkerEntry {
            id: r.worker_id,
            pid: r.pid,
            control_address: r.control_address,
            data_address: r.data_address,
            slots: r.slots.len() as u32,
            last_heartbeat: Instant::now(),
            metrics: WorkerMetrics::default(),
            client: None,
            lost: false,
            reported: r.tasks,
        });
        let job_id = state.job_id.clone();
        drop(state);
        self.shared.changed.notify_one();
        Ok(Response::new(RegisterWorkerResponse {
            job_id,
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.shared.state.lock().await;
        let shutdown = state.shutdown;
        let Some(worker) = state.worker_mut(&r.worker_id) else {
            return Ok(Response::new(HeartbeatResponse {
                known: false,
                shutdown,
            }));
        };
        worker.last_heartbeat = Instant::now();
        worker.metrics = r.worker.unwrap_or_default();
        for metrics in r.tasks {
            let Some(id) = metrics.task.clone() else {
                continue;
            };
            if let Some(task) = state.task_mut(&id) {
                task.metrics = metrics;
            }
        }
        state.sample_sources();
        Ok(Response::new(HeartbeatResponse {
            known: true,
            shutdown,
        }))
    }

    async fn report_task_state(
        &self,
        request: Request<TaskStateReport>,
    ) -> Result<Response<TaskStateAck>, Status> {
        let r = request.into_inner();
        let id = r
            .task
            .ok_or_else(|| Status::invalid_argument("report without a task id"))?;
        let new_state = TaskState::try_from(r.state)
            .map_err(|_| Status::invalid_argument("unknown task state"))?;
        let mut state = self.shared.state.lock().await;
        match state.task_mut(&id) {
            Some(task) => {
                if new_state == TaskState::Failed {
                    warn!(task = %task.describe(), worker = %r.worker_id, failure = %r.failure, "task failed");
                }
                task.state = new_state;
                task.failure = r.failure;
                if let Some(metrics) = r.metrics {
                    task.metrics = metrics;
                }
            }
            None => {
                // A task a worker listed when it registered again, not adopted yet: its state
                // counts for the adoption.
                let listed = state
                    .worker_mut(&r.worker_id)
                    .and_then(|w| w.reported.iter_mut().find(|t| t.task.as_ref() == Some(&id)));
                match listed {
                    Some(task) => task.state = new_state as i32,
                    None => warn!(?id, "state report for an unknown task"),
                }
            }
        }
        drop(state);
        self.shared.changed.notify_one();
        Ok(Response::new(TaskStateAck {}))
    }

    async fn get_job_status(
        &self,
        _: Request<GetJobStatusRequest>,
    ) -> Result<Response<JobStatus>, Status> {
        Ok(Response::new(self.shared.state.lock().await.status()))
    }

    async fn acknowledge_checkpoint(
        &self,
        request: Request<AcknowledgeCheckpointRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        // Once the driver is gone the job is over, and the acknowledgement with it.
        let _ = self
            .requests
            .send(Inbound::Acknowledge(request.into_inner()));
        Ok(Response::new(CheckpointResponse {}))
    }

    async fn decline_checkpoint(
        &self,
        request: Request<DeclineCheckpointRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        let _ = self.requests.send(Inbound::Decline(request.into_inner()));
        Ok(Response::new(CheckpointResponse {}))
    }

    async fn trigger_savepoint(
        &self,
        request: Request<TriggerSavepointRequest>,
    ) -> Result<Response<TriggerSavepointResponse>, Status> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // A request the driver never takes (the job ended) drops `reply`: answered below.
        let _ = self.requests.send(Inbound::Savepoint(SavepointRequest {
            stop: request.into_inner().stop,
            reply,
        }));
        match answer.await {
            Ok(Ok((checkpoint_id, location))) => Ok(Response::new(TriggerSavepointResponse {
                checkpoint_id,
                location,
            })),
            Ok(Err(reason)) => Err(Status::failed_precondition(reason)),
            Err(_) => Err(Status::unavailable("the job ended before the savepoint")),
        }
    }

    async fn cancel_job(
        &self,
        request: Request<CancelJobRequest>,
    ) -> Result<Response<CancelJobResponse>, Status> {
        let reason = request.into_inner().reason;
        let reason = match reason.is_empty() {
            true => "canceled by request".to_string(),
            false => reason,
        };
        // Canceling a job that is over changes nothing.
        let _ = self.requests.send(Inbound::Cancel { reason });
        Ok(Response::new(CancelJobResponse {}))
    }
}
