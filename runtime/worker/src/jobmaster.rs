//! The worker's side of the control plane: registration, heartbeats and task state reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use spate_proto::v1::job_master_client::JobMasterClient;
use spate_proto::v1::{
    AcknowledgeCheckpointRequest, DeclineCheckpointRequest, HeartbeatRequest,
    RegisterWorkerRequest, SlotOffer, TaskStateReport,
};
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

use crate::config::WorkerConfig;
use crate::tasks::TaskManager;

/// What a worker tells its JobMaster about its tasks, delivered in order.
#[derive(Debug, Clone)]
pub enum Upward {
    State(TaskStateReport),
    Ack(AcknowledgeCheckpointRequest),
    Decline(DeclineCheckpointRequest),
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the job's JobMaster is. A replacement JobMaster at another address (a new pod) moves
/// it, and the heartbeats and reports follow.
#[derive(Clone)]
pub struct JobMasterAddress {
    job_id: String,
    address: Arc<watch::Sender<String>>,
}

impl JobMasterAddress {
    /// Moves to `address` when `job_id` is this worker's job; a JobMaster of another job is
    /// refused, so a stray call cannot take the worker away from its job.
    pub fn switch(&self, job_id: &str, address: &str) -> Result<bool, String> {
        if job_id != self.job_id {
            return Err(format!(
                "this worker runs job '{}', not '{job_id}'",
                self.job_id
            ));
        }
        Ok(self.address.send_if_modified(|current| {
            let moved = current != address;
            if moved {
                address.clone_into(current);
            }
            moved
        }))
    }
}

fn client_for(address: &str) -> anyhow::Result<JobMasterClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .with_context(|| format!("JobMaster address '{address}'"))?
        .connect_lazy();
    Ok(JobMasterClient::new(channel).max_decoding_message_size(64 << 20))
}

pub struct JobMasterLink {
    client: JobMasterClient<Channel>,
    /// What this worker offers; sent again, with its live tasks, to a new JobMaster.
    registration: RegisterWorkerRequest,
    worker_id: String,
    address: JobMasterAddress,
    heartbeat_interval: Duration,
    timeout: Duration,
    reports: mpsc::UnboundedSender<Upward>,
}

impl JobMasterLink {
    /// Registers with the JobMaster, retrying with exponential backoff until it answers or the
    /// timeout passes; each attempt says where it is trying.
    pub async fn connect(
        config: &WorkerConfig,
        control_address: &str,
        data_address: &str,
    ) -> anyhow::Result<Self> {
        let endpoint = format!("http://{}", config.jobmaster);
        let request = RegisterWorkerRequest {
            worker_id: config.worker_id.clone(),
            control_address: control_address.to_string(),
            data_address: data_address.to_string(),
            slots: (0..config.slots).map(|index| SlotOffer { index }).collect(),
            pid: std::process::id(),
            ..RegisterWorkerRequest::default()
        };
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let (mut client, response) = loop {
            let tried = async {
                let mut client = JobMasterClient::connect(endpoint.clone()).await?;
                let response = client.register_worker(request.clone()).await?.into_inner();
                anyhow::Ok((client, response))
            };
            match tried.await {
                Ok(ok) => break ok,
                Err(e) if started.elapsed() < config.jobmaster_timeout => {
                    warn!(jobmaster = %config.jobmaster, attempt, retry_in = ?backoff, error = %e, "cannot reach the JobMaster yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "registering with the JobMaster at {} ({attempt} attempts)",
                            config.jobmaster
                        )
                    });
                }
            }
        };
        info!(jobmaster = %config.jobmaster, job = %response.job_id, "registered");
        let address = JobMasterAddress {
            job_id: response.job_id.clone(),
            address: Arc::new(watch::Sender::new(config.jobmaster.clone())),
        };
        let (reports, pending) = mpsc::unbounded_channel();
        tokio::spawn(send_reports(
            client.clone(),
            address.address.subscribe(),
            pending,
        ));
        client = client.max_decoding_message_size(64 << 20);
        Ok(JobMasterLink {
            client,
            registration: request,
            worker_id: config.worker_id.clone(),
            address,
            heartbeat_interval: Duration::from_millis(response.heartbeat_interval_ms.max(10)),
            timeout: config.jobmaster_timeout,
            reports,
        })
    }

    pub fn reporter(&self) -> mpsc::UnboundedSender<Upward> {
        self.reports.clone()
    }

    pub fn address(&self) -> JobMasterAddress {
        self.address.clone()
    }

    /// Sends heartbeats with metrics until the JobMaster ends the job (`Ok`) or stays silent
    /// for longer than the timeout (`Err`). Tasks keep running while the JobMaster is silent: a
    /// JobMaster that does not know this worker (a new one, after a JobMaster failover) gets
    /// the worker's registration again with the tasks it runs, and adopts them.
    pub async fn heartbeats(&self, tasks: Arc<TaskManager>) -> anyhow::Result<String> {
        let mut client = self.client.clone();
        let mut moves = self.address.address.subscribe();
        let mut address = moves.borrow_and_update().clone();
        let mut last_answer = Instant::now();
        let mut ticker = tokio::time::interval(self.heartbeat_interval);
        loop {
            ticker.tick().await;
            if moves.has_changed().unwrap_or(false) {
                address = moves.borrow_and_update().clone();
                client = client_for(&address)?;
                last_answer = Instant::now();
                info!(jobmaster = %address, "following the JobMaster to its new address");
            }
            let request = HeartbeatRequest {
                worker_id: self.worker_id.clone(),
                tasks: tasks.metrics(),
                worker: Some(tasks.worker_metrics()),
            };
            match client.heartbeat(request).await {
                Ok(response) => {
                    let response = response.into_inner();
                    last_answer = Instant::now();
                    if response.shutdown {
                        return Ok("the job is over".into());
                    }
                    if !response.known {
                        let mut again = self.registration.clone();
                        again.tasks = tasks.live_tasks();
                        again.last_checkpoint_id = tasks.last_checkpoint();
                        let live = again.tasks.len();
                        client.register_worker(again).await.map_err(|status| {
                            anyhow!(
                                "registering again with the JobMaster at {address}: {}",
                                status.message()
                            )
                        })?;
                        info!(jobmaster = %address, tasks = live, "registered again with running tasks");
                        for ack in tasks.waiting_finals() {
                            let _ = self.reports.send(Upward::Ack(ack));
                        }
                    }
                }
                Err(status) if last_answer.elapsed() > self.timeout => {
                    return Err(anyhow!(
                        "lost the JobMaster at {address}: no answer for {:.1}s (last error: {})",
                        last_answer.elapsed().as_secs_f64(),
                        status.message()
                    ));
                }
                Err(status) => {
                    warn!(jobmaster = %address, error = %status.message(), "heartbeat failed")
                }
            }
        }
    }
}

/// Delivers task state reports and checkpoint acknowledgements in order, retrying each until
/// the JobMaster takes it.
async fn send_reports(
    mut client: JobMasterClient<Channel>,
    mut moves: watch::Receiver<String>,
    mut pending: mpsc::UnboundedReceiver<Upward>,
) {
    while let Some(report) = pending.recv().await {
        let mut backoff = FIRST_BACKOFF;
        for _ in 0..10 {
            if moves.has_changed().unwrap_or(false) {
                let address = moves.borrow_and_update().clone();
                match client_for(&address) {
                    Ok(moved) => client = moved,
                    Err(e) => warn!(error = %format!("{e:#}"), "cannot follow the JobMaster"),
                }
            }
            let sent = match report.clone() {
                Upward::State(state) => client.report_task_state(state).await.map(drop),
                Upward::Ack(ack) => client.acknowledge_checkpoint(ack).await.map(drop),
                Upward::Decline(decline) => client.decline_checkpoint(decline).await.map(drop),
            };
            match sent {
                Ok(_) => break,
                Err(status) => {
                    warn!(error = %status.message(), "reporting task state failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
