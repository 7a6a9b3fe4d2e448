use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::join_all;
use prost::Message;
use spate_graph::JobGraph;
use spate_proto::v1::job_master_server::JobMasterServer;
use spate_proto::v1::worker_client::WorkerClient;
use spate_proto::v1::{
    CancelTaskRequest, JobSpec, JobState, JobStatus, ShutdownRequest, TaskId, TaskMetrics,
    TaskState,
};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tracing::{error, info, warn};

use crate::config::JobMasterConfig;
use crate::placement::{SlotRef, deployment, place};
use crate::service::JobMasterService;
use crate::state::{Shared, State, TaskEntry};

const POLL: Duration = Duration::from_millis(100);
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_ROUNDS: u32 = 5;
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// Runs the job to its end and returns its final status. An `Err` means the job could not even
/// be built (bad job name, arguments or graph): nothing was started.
pub async fn run(config: JobMasterConfig) -> anyhow::Result<JobStatus> {
    let stream = spate_jobs::build(&config.job_name, &config.job_args)?;
    let graph = JobGraph::build(stream).with_context(|| format!("job '{}'", config.job_name))?;
    info!(plan = %graph.explain(), "job graph");

    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            job_id: config.job_id.clone(),
            name: config.job_name.clone(),
            job_state: JobState::Created,
            failure: String::new(),
            workers: Vec::new(),
            tasks: Vec::new(),
            started: None,
            cancel_requested: None,
            shutdown: false,
        }),
        changed: Default::default(),
    });
    let listener = TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("binding the JobMaster to {}", config.bind))?;
    let address = listener.local_addr()?.to_string();
    let service = JobMasterService {
        shared: shared.clone(),
        heartbeat_interval: config.heartbeat_interval,
    };
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JobMasterServer::new(service))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    if let Some(path) = &config.address_file {
        // Written whole and renamed, so a reader never sees half an address.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &address)?;
        std::fs::rename(&partial, path)?;
    }
    info!(%address, job = %config.job_id, "JobMaster listening");

    drive(&config, &graph, &shared).await;
    shut_down_workers(&shared).await;
    let status = shared.state.lock().await.status();
    if let Some(path) = &config.status_file {
        std::fs::write(path, status.encode_to_vec())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    server.abort();
    Ok(status)
}

async fn drive(config: &JobMasterConfig, graph: &JobGraph, shared: &Shared) {
    let needed = graph.slots_needed();
    let Some(slots) = wait_for_slots(config, shared, needed).await else {
        return;
    };
    let placement = place(graph, &slots);
    let job = JobSpec {
        name: config.job_name.clone(),
        args: config.job_args.clone().into_iter().collect(),
    };
    let fingerprint = graph.fingerprint();
    let mut requests = Vec::new();
    {
        let mut state = shared.state.lock().await;
        for vertex in &graph.vertices {
            for subtask in 0..vertex.parallelism {
                let id = TaskId {
                    job_id: config.job_id.clone(),
                    vertex: vertex.id,
                    subtask,
                    attempt: 0,
                };
                let slot = &placement[vertex.id as usize][subtask as usize];
                state.tasks.push(TaskEntry {
                    id: id.clone(),
                    name: vertex.name.clone(),
                    parallelism: vertex.parallelism,
                    state: TaskState::Deploying,
                    worker_id: slot.worker_id.clone(),
                    slot: slot.slot,
                    metrics: TaskMetrics {
                        task: Some(id.clone()),
                        watermark: i64::MIN,
                        ..Default::default()
                    },
                    failure: String::new(),
                });
                requests.push((
                    slot.worker_id.clone(),
                    deployment(graph, &placement, &job, id, &fingerprint),
                ));
            }
        }
        state.job_state = JobState::Running;
        state.started = Some(Instant::now());
    }
    let deployments = requests.into_iter().map(|(worker, request)| async move {
        let task = request.task.clone().unwrap_or_default();
        let result = match worker_client(shared, &worker).await {
            Ok(mut client) => client
                .deploy_task(request)
                .await
                .map(|_| ())
                .map_err(|s| s.message().to_string()),
            Err(e) => Err(format!("{e:#}")),
        };
        result.map_err(|e| {
            format!(
                "deploying vertex {} subtask {} to {worker}: {e}",
                task.vertex, task.subtask
            )
        })
    });
    if let Some(Err(e)) = join_all(deployments).await.into_iter().find(Result::is_err) {
        shared.state.lock().await.fail(e);
    }
    monitor(config, shared).await;
    cancel_unfinished(shared).await;
}

async fn wait_for_slots(
    config: &JobMasterConfig,
    shared: &Shared,
    needed: u32,
) -> Option<Vec<SlotRef>> {
    let deadline = Instant::now() + config.slot_timeout;
    loop {
        {
            let mut state = shared.state.lock().await;
            let offered: u32 = state.workers.iter().map(|w| w.slots).sum();
            if offered >= needed {
                info!(
                    needed,
                    offered,
                    workers = state.workers.len(),
                    "enough slots; deploying"
                );
                return Some(
                    state
                        .workers
                        .iter()
                        .flat_map(|w| {
                            (0..w.slots).map(|slot| SlotRef {
                                worker_id: w.id.clone(),
                                data_address: w.data_address.clone(),
                                slot,
                            })
                        })
                        .collect(),
                );
            }
            if let Some(reason) = state.cancel_requested.clone() {
                state.job_state = JobState::Canceled;
                state.failure = reason;
                return None;
            }
            if Instant::now() > deadline {
                state.fail(format!(
                    "not enough slots: the job needs {needed}, workers offered {offered} within {:?}",
                    config.slot_timeout
                ));
                return None;
            }
        }
        let _ = tokio::time::timeout(POLL, shared.changed.notified()).await;
    }
}

async fn monitor(config: &JobMasterConfig, shared: &Shared) {
    loop {
        let failed_task = {
            let mut state = shared.state.lock().await;
            if state.is_terminal() {
                return;
            }
            if let Some(reason) = state.cancel_requested.clone() {
                state.job_state = JobState::Canceled;
                state.failure = reason;
                return;
            }
            if state.tasks.iter().all(|t| t.state == TaskState::Finished) {
                state.job_state = JobState::Finished;
                info!(job = %state.job_id, "job finished");
                return;
            }
            if let Some(lost) = state
                .workers
                .iter_mut()
                .find(|w| w.last_heartbeat.elapsed() > config.heartbeat_timeout)
            {
                lost.lost = true;
                let reason = format!(
                    "worker {} lost: no heartbeat for {:.1}s",
                    lost.describe(),
                    lost.last_heartbeat.elapsed().as_secs_f64()
                );
                error!(%reason, "job failed");
                state.fail(reason);
                return;
            }
            state
                .tasks
                .iter()
                .find(|t| t.state == TaskState::Failed)
                .map(|t| {
                    format!(
                        "task {} on {} failed: {}",
                        t.describe(),
                        t.worker_id,
                        t.failure
                    )
                })
        };
        if let Some(task_failure) = failed_task {
            // A task failure is often the echo of a dead worker (its exchanges broke); if a worker
            // is gone, that is the cause to report.
            let reason = match unreachable_worker(shared).await {
                Some(worker) => format!(
                    "worker {worker} is gone (its control port refuses connections); first task failure: {task_failure}"
                ),
                None => task_failure,
            };
            error!(%reason, "job failed");
            shared.state.lock().await.fail(reason);
            return;
        }
        let _ = tokio::time::timeout(POLL, shared.changed.notified()).await;
    }
}

/// The first worker whose control port cannot be reached, if any. A killed process closes its
/// sockets one by one while it exits, so its data connections may break (failing the tasks that
/// read them) a moment before its control port goes: probe a few times before concluding that
/// every worker lives.
async fn unreachable_worker(shared: &Shared) -> Option<String> {
    let workers: Vec<(String, String, String)> = {
        let state = shared.state.lock().await;
        state
            .workers
            .iter()
            .map(|w| (w.id.clone(), w.describe(), w.control_address.clone()))
            .collect()
    };
    for round in 0..PROBE_ROUNDS {
        if round > 0 {
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
        let probes = workers.iter().map(|(id, name, address)| async move {
            let reachable = matches!(
                tokio::time::timeout(RPC_TIMEOUT, tokio::net::TcpStream::connect(address)).await,
                Ok(Ok(_))
            );
            (!reachable).then_some((id, name))
        });
        if let Some((id, name)) = join_all(probes).await.into_iter().flatten().next() {
            if let Some(worker) = shared.state.lock().await.worker_mut(id) {
                worker.lost = true;
            }
            return Some(name.clone());
        }
    }
    None
}

async fn worker_client(shared: &Shared, worker_id: &str) -> anyhow::Result<WorkerClient<Channel>> {
    let address = {
        let state = shared.state.lock().await;
        let worker = state
            .workers
            .iter()
            .find(|w| w.id == worker_id)
            .with_context(|| format!("unknown worker {worker_id}"))?;
        if let Some(client) = &worker.client {
            return Ok(client.clone());
        }
        worker.control_address.clone()
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(RPC_TIMEOUT)
        .timeout(RPC_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connecting to worker {worker_id} at {address}"))?;
    let client = WorkerClient::new(channel);
    if let Some(worker) = shared.state.lock().await.worker_mut(worker_id) {
        worker.client = Some(client.clone());
    }
    Ok(client)
}

/// After a failure or cancellation: cancels what still runs and waits briefly for the reports.
async fn cancel_unfinished(shared: &Shared) {
    let running: Vec<(String, TaskId)> = {
        let mut guard = shared.state.lock().await;
        if guard.job_state == JobState::Finished {
            return;
        }
        let state = &mut *guard;
        // Tasks of a lost worker will never answer; waiting for them only delays the end.
        let lost: Vec<String> = state
            .workers
            .iter()
            .filter(|w| w.lost)
            .map(|w| w.id.clone())
            .collect();
        for task in state
            .tasks
            .iter_mut()
            .filter(|t| !t.is_terminal() && lost.contains(&t.worker_id))
        {
            task.state = TaskState::Canceled;
        }
        state
            .tasks
            .iter()
            .filter(|t| !t.is_terminal())
            .map(|t| (t.worker_id.clone(), t.id.clone()))
            .collect()
    };
    join_all(running.into_iter().map(|(worker, task)| async move {
        if let Ok(mut client) = worker_client(shared, &worker).await {
            let _ = client
                .cancel_task(CancelTaskRequest { task: Some(task) })
                .await;
        }
    }))
    .await;
    let deadline = Instant::now() + RPC_TIMEOUT;
    while Instant::now() < deadline {
        if shared
            .state
            .lock()
            .await
            .tasks
            .iter()
            .all(TaskEntry::is_terminal)
        {
            return;
        }
        let _ = tokio::time::timeout(POLL, shared.changed.notified()).await;
    }
    for task in shared
        .state
        .lock()
        .await
        .tasks
        .iter_mut()
        .filter(|t| !t.is_terminal())
    {
        task.state = TaskState::Canceled;
    }
}

async fn shut_down_workers(shared: &Shared) {
    let (workers, reason): (Vec<String>, String) = {
        let mut state = shared.state.lock().await;
        state.shutdown = true;
        let workers = state
            .workers
            .iter()
            .filter(|w| !w.lost)
            .map(|w| w.id.clone())
            .collect();
        (
            workers,
            format!("job {} is {:?}", state.job_id, state.job_state),
        )
    };
    join_all(workers.iter().map(|worker| {
        let reason = reason.clone();
        async move {
            match worker_client(shared, worker).await {
                Ok(mut client) => {
                    if let Err(e) = client.shutdown(ShutdownRequest { reason }).await {
                        warn!(%worker, error = %e.message(), "worker did not take the shutdown");
                    }
                }
                Err(e) => {
                    warn!(%worker, error = %format!("{e:#}"), "worker unreachable for shutdown")
                }
            }
        }
    }))
    .await;
}
