//! The JobMaster's gRPC service. Handlers hold no part of the job: they send the owner events
//! and read what it last published (`owner.rs`), so a poller or a heartbeat never waits for
//! what the owner is doing.

use std::time::Duration;

use spate_proto::v1::job_master_server::JobMaster;
use spate_proto::v1::{
    AcknowledgeCheckpointRequest, CancelJobRequest, CancelJobResponse, CheckpointResponse,
    DeclineCheckpointRequest, GetJobStatusRequest, HeartbeatRequest, HeartbeatResponse, JobStatus,
    RegisterWorkerRequest, RegisterWorkerResponse, TaskState, TaskStateAck, TaskStateReport,
    TriggerSavepointRequest, TriggerSavepointResponse,
};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use crate::checkpoint::SavepointRequest;
use crate::events::Event;
use crate::owner::OwnerHandle;

pub struct JobMasterService {
    pub owner: OwnerHandle,
    pub job_id: String,
    pub heartbeat_interval: Duration,
}

impl JobMasterService {
    /// Sends the owner an event. Once the owner is gone the process is ending, and the event
    /// with it.
    fn send(&self, event: Event) {
        let _ = self.owner.events.send(event);
    }
}

#[tonic::async_trait]
impl JobMaster for JobMasterService {
    async fn register_worker(
        &self,
        request: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let request = request.into_inner();
        if request.slots.is_empty() {
            return Err(Status::invalid_argument(
                "a worker must offer at least one slot",
            ));
        }
        let (reply, registered) = oneshot::channel();
        self.send(Event::WorkerRegistered { request, reply });
        match registered.await {
            Ok(Ok(())) => Ok(Response::new(RegisterWorkerResponse {
                job_id: self.job_id.clone(),
                heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
            })),
            Ok(Err(why)) => Err(Status::invalid_argument(why)),
            Err(_) => Err(Status::unavailable("the JobMaster is stopping")),
        }
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let published = self.owner.published.borrow().clone();
        let known = published.knows(&r.worker_id);
        if known {
            self.send(Event::Heartbeat {
                worker_id: r.worker_id,
                worker: r.worker.unwrap_or_default(),
                tasks: r.tasks,
            });
        }
        Ok(Response::new(HeartbeatResponse {
            known,
            shutdown: published.shutdown,
        }))
    }

    async fn report_task_state(
        &self,
        request: Request<TaskStateReport>,
    ) -> Result<Response<TaskStateAck>, Status> {
        let r = request.into_inner();
        let task = r
            .task
            .ok_or_else(|| Status::invalid_argument("report without a task id"))?;
        let state = TaskState::try_from(r.state)
            .map_err(|_| Status::invalid_argument("unknown task state"))?;
        self.send(Event::TaskStateChanged {
            worker_id: r.worker_id,
            task,
            state,
            failure: r.failure,
            metrics: r.metrics,
        });
        Ok(Response::new(TaskStateAck {}))
    }

    async fn get_job_status(
        &self,
        _: Request<GetJobStatusRequest>,
    ) -> Result<Response<JobStatus>, Status> {
        let published = self.owner.published.borrow().clone();
        Ok(Response::new(published.status()))
    }

    async fn acknowledge_checkpoint(
        &self,
        request: Request<AcknowledgeCheckpointRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        self.send(Event::Acknowledge(request.into_inner()));
        Ok(Response::new(CheckpointResponse {}))
    }

    async fn decline_checkpoint(
        &self,
        request: Request<DeclineCheckpointRequest>,
    ) -> Result<Response<CheckpointResponse>, Status> {
        self.send(Event::Decline(request.into_inner()));
        Ok(Response::new(CheckpointResponse {}))
    }

    async fn trigger_savepoint(
        &self,
        request: Request<TriggerSavepointRequest>,
    ) -> Result<Response<TriggerSavepointResponse>, Status> {
        let (reply, answer) = oneshot::channel();
        // A request the owner turns away (the job ended) drops `reply`: answered below.
        self.send(Event::Savepoint(SavepointRequest {
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
        self.send(Event::Cancel { reason });
        Ok(Response::new(CancelJobResponse {}))
    }
}
