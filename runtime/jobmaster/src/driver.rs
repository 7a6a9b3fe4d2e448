use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::join_all;
use prost::Message;
use spate_checkpoint::CompletedSnapshot;
use spate_graph::{JobGraph, SubtaskRef};
use spate_proto::v1::job_master_server::JobMasterServer;
use spate_proto::v1::{
    CancelTaskRequest, CheckpointConfig, JobSpec, JobState, JobStatus, ShutdownRequest, TaskId,
    TaskState,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{Instrument, Span, error, info, info_span, warn};

use crate::adopt::{adopt, cancel_unadopted};
use crate::checkpoint::{Coordinator, TaskRef, check_compatible, resolve, task_restore};
use crate::config::JobMasterConfig;
use crate::failover::{FailoverPlanner, Failure, FailureCause, RestartBackoff, WorkerLoss};
use crate::inbox::Inbox;
use crate::placement::{Placement, SlotRef, deployment, place, replace};
use crate::resources::ResourceManager;
use crate::service::JobMasterService;
use crate::state::{Shared, TaskEntry};
use crate::workers::{RPC_TIMEOUT, worker_client};

/// Checkpoint acknowledgements carry state handles: allow more than gRPC's default 4 MiB.
const MAX_MESSAGE: usize = 256 << 20;
const PROBE_ROUNDS: u32 = 5;
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// Runs the job to its end and returns its final status. An `Err` means the job could not even
/// be built (bad job name, arguments or graph, a checkpoint to restore that does not fit):
/// nothing was started. With `keep_serving`, that failure is the job's status instead, and the
/// status stays readable until the process is stopped.
pub async fn run(config: JobMasterConfig) -> anyhow::Result<JobStatus> {
    let span = info_span!("job", job = %config.job_id);
    run_job(config).instrument(span).await
}

async fn run_job(config: JobMasterConfig) -> anyhow::Result<JobStatus> {
    let prepared = prepare(&config).await;
    if let Err(e) = &prepared
        && !config.keep_serving
    {
        bail!("{e:#}");
    }
    let shared = Arc::new(Shared::new(&config.job_id, &config.job_name));
    let (requests, mut inbox) = Inbox::new();
    let listener = TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("binding the JobMaster to {}", config.bind))?;
    let address = listener.local_addr()?.to_string();
    let service = JobMasterService {
        shared: shared.clone(),
        requests,
        heartbeat_interval: config.heartbeat_interval,
    };
    // The handlers log in the job's span too (a task failure names its task as fields).
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JobMasterServer::new(service).max_decoding_message_size(MAX_MESSAGE))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .instrument(Span::current()),
    );
    if let Some(path) = &config.address_file {
        // Written whole and renamed, so a reader never sees half an address.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &address)?;
        std::fs::rename(&partial, path)?;
    }
    let advertised = config.advertise.clone().unwrap_or(address);
    info!(address = %advertised, "JobMaster listening");

    let mut resources = config.resources.build(&config.job_id);
    match prepared {
        Ok(Prepared {
            graph,
            coordinator,
            restore,
        }) => {
            {
                let mut state = shared.state.lock().await;
                state.parallelism = graph
                    .vertices
                    .iter()
                    .map(|v| v.parallelism)
                    .max()
                    .unwrap_or(0);
                state.source_vertices = graph
                    .vertices
                    .iter()
                    .filter(|v| graph.node(v.nodes[0]).is_source())
                    .map(|v| v.id)
                    .collect();
            }
            let workers = Workers {
                resources: resources.as_mut(),
                jobmaster: &advertised,
            };
            drive(
                &config,
                &graph,
                &shared,
                &mut inbox,
                workers,
                coordinator,
                restore,
            )
            .await;
            shut_down_workers(&shared).await;
        }
        Err(e) => {
            error!(error = %format!("{e:#}"), "the job cannot be built");
            shared.state.lock().await.fail(format!("{e:#}"));
        }
    }
    // The job is over: a savepoint asked for from now on, or still waiting, is answered that
    // the job ended; a cancel changes nothing.
    drop(inbox);
    let status = shared.state.lock().await.status();
    if let Some(path) = &config.status_file {
        std::fs::write(path, status.encode_to_vec())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if config.keep_serving {
        info!(state = ?status.state(), "the job is over; serving its status until stopped");
        terminated().await;
    }
    drop(resources);
    server.abort();
    Ok(status)
}

/// What a job needs before it can start: its graph, its checkpoint coordinator, and the
/// snapshot it starts from.
struct Prepared {
    graph: JobGraph,
    coordinator: Option<Coordinator>,
    restore: Option<CompletedSnapshot>,
}

async fn prepare(config: &JobMasterConfig) -> anyhow::Result<Prepared> {
    let stream = spate_jobs::build(&config.job_name, &config.job_args)?;
    let graph = JobGraph::build(stream).with_context(|| format!("job '{}'", config.job_name))?;
    info!(plan = %graph.explain(), "job graph");
    let coordinator = match &config.checkpointing {
        Some(settings) => Some(Coordinator::new(settings.clone(), &config.job_id, &graph).await?),
        None => None,
    };
    // A recovering JobMaster goes on from the job's own latest checkpoint; the snapshot the job
    // was first started from (`--from`) only counts while the job has none.
    let latest = match (&coordinator, config.recover) {
        (Some(coordinator), true) => coordinator.latest(),
        _ => None,
    };
    let restore = match (&config.restore_from, &coordinator) {
        _ if latest.is_some() => latest,
        (None, _) => None,
        (Some(_), None) => bail!("restoring needs checkpoint storage to read from"),
        (Some(location), Some(coordinator)) => {
            let snapshot = resolve(coordinator.storage(), location).await?;
            check_compatible(&snapshot, &graph)?;
            info!(location = %snapshot.location, "restoring");
            Some(snapshot)
        }
    };
    Ok(Prepared {
        graph,
        coordinator,
        restore,
    })
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// How the running job stopped.
enum Outcome {
    /// Finished or canceled: the state says which.
    Over,
    Failed(Failure),
}

/// Deploys the job, then restarts what each failure hits (the failed tasks' pipelined regions,
/// restored from the latest completed checkpoint, in their previous slots where their worker
/// lives) until the job ends or the restart strategy gives up.
async fn drive(
    config: &JobMasterConfig,
    graph: &JobGraph,
    shared: &Shared,
    inbox: &mut Inbox,
    mut workers: Workers<'_>,
    mut coordinator: Option<Coordinator>,
    mut restore: Option<CompletedSnapshot>,
) {
    let planner = FailoverPlanner::new(graph, config.failover);
    let mut backoff = RestartBackoff::new(config.restart.clone());
    let adopted = match config.recover {
        true => adopt(graph, shared, config.heartbeat_timeout).await,
        false => None,
    };
    let (mut placement, mut attempt, mut to_deploy) = match adopted {
        Some(adopted) => {
            if let Some(coordinator) = coordinator.as_mut() {
                let last_seen = shared.state.lock().await.last_checkpoint_seen;
                coordinator.adopted(shared, adopted.tasks, last_seen).await;
            }
            (adopted.placement, adopted.attempt, BTreeSet::new())
        }
        None => {
            // Attempts above any a worker may still run from before a JobMaster failover.
            let attempt = match config.recover {
                true => 1 + max_reported_attempt(shared).await,
                false => 0,
            };
            cancel_unadopted(shared).await;
            let needed = graph.slots_needed();
            let Some(slots) = wait_for_slots(config, shared, inbox, &mut workers, needed, |live| {
                (live.len() as u32 >= needed).then(|| live.to_vec())
            })
            .await
            else {
                return;
            };
            let mut placement = place(graph, &slots);
            placement
                .iter_mut()
                .flatten()
                .for_each(|a| a.attempt = attempt);
            (placement, attempt, planner.all())
        }
    };
    loop {
        let deployed = match to_deploy.is_empty() {
            true => Ok(None),
            false => deploy(
                config,
                graph,
                shared,
                &placement,
                &to_deploy,
                restore.as_ref(),
                coordinator.as_ref(),
            )
            .await
            .map(Some),
        };
        let outcome = match deployed {
            Ok(tasks) => {
                if let (Some(coordinator), Some(tasks)) = (coordinator.as_mut(), tasks) {
                    let restored = restore.as_ref().map_or(0, |r| r.location.checkpoint_id());
                    coordinator.deployed(tasks, restored).await;
                }
                monitor(config, shared, inbox, &mut workers, coordinator.as_mut()).await
            }
            Err(cause) => {
                // A worker that refuses the deployment is most likely gone: mark it lost now,
                // or the restart would place the same tasks on its slots again.
                if matches!(cause, FailureCause::DeployFailed { .. }) {
                    unreachable_worker(shared).await;
                }
                Outcome::Failed(Failure::new(cause, to_deploy.clone()))
            }
        };
        let Outcome::Failed(failure) = outcome else {
            cancel_unfinished(shared, inbox, None).await;
            return;
        };
        let delay = match (failure.permanent(), &coordinator) {
            (Some(why), _) => Err(why.to_string()),
            (None, None) => Err("the job takes no checkpoints to restart from".to_string()),
            (None, Some(_)) => backoff.on_failure(Instant::now()),
        };
        let delay = match delay {
            Ok(delay) => delay,
            Err(why) => {
                error!(reason = %failure, %why, "job failed");
                shared
                    .state
                    .lock()
                    .await
                    .fail(format!("{failure} (not restarted: {why})"));
                cancel_unfinished(shared, inbox, None).await;
                return;
            }
        };
        to_deploy = planner.to_restart(&failure);
        warn!(reason = %failure, tasks = to_deploy.len(), ?delay, "restarting from the latest checkpoint");
        cancel_unfinished(shared, inbox, Some(&to_deploy)).await;
        {
            let mut state = shared.state.lock().await;
            workers.drop_lost(&mut state);
            state.restarts += 1;
            state.task_restarts += to_deploy.len() as u32;
            state.last_failure = failure.to_string();
        }
        if let Some(latest) = coordinator.as_ref().and_then(Coordinator::latest) {
            restore = Some(latest);
        }
        tokio::time::sleep(delay).await;
        attempt += 1;
        let mut next = placement.clone();
        let replaced = wait_for_slots(
            config,
            shared,
            inbox,
            &mut workers,
            graph.slots_needed(),
            |live| replace(&mut next, &to_deploy, live, attempt),
        )
        .await;
        if replaced.is_none() {
            return;
        }
        placement = next;
    }
}

/// Deploys the subtasks in `which` as placed; returns them for the coordinator, or why one
/// could not be deployed (a corrupt snapshot first: retrying cannot help there).
async fn deploy(
    config: &JobMasterConfig,
    graph: &JobGraph,
    shared: &Shared,
    placement: &Placement,
    which: &BTreeSet<SubtaskRef>,
    restore: Option<&CompletedSnapshot>,
    coordinator: Option<&Coordinator>,
) -> Result<Vec<TaskRef>, FailureCause> {
    let job = JobSpec {
        name: config.job_name.clone(),
        args: config.job_args.clone().into_iter().collect(),
    };
    let fingerprint = graph.fingerprint();
    let checkpointing = coordinator.map(|c| {
        let settings = c.settings();
        CheckpointConfig {
            storage_url: settings.storage_url.clone(),
            storage_options: settings.storage_options.clone().into_iter().collect(),
            job_dir: config.job_id.clone(),
            state_backend: settings.state_backend.clone(),
        }
    });
    let mut requests = Vec::new();
    let mut tasks = Vec::new();
    {
        let mut state = shared.state.lock().await;
        state
            .tasks
            .retain(|t| !which.contains(&(t.id.vertex, t.id.subtask)));
        for &(vertex_id, subtask) in which {
            let vertex = &graph.vertices[vertex_id as usize];
            let assignment = &placement[vertex_id as usize][subtask as usize];
            let id = TaskId {
                job_id: config.job_id.clone(),
                vertex: vertex_id,
                subtask,
                attempt: assignment.attempt,
            };
            state
                .tasks
                .push(TaskEntry::new(id.clone(), vertex, &assignment.slot));
            tasks.push(TaskRef {
                id: id.clone(),
                worker_id: assignment.slot.worker_id.clone(),
                is_source: graph.node(vertex.nodes[0]).is_source(),
            });
            let mut request = deployment(graph, placement, &job, id, &fingerprint);
            request.checkpointing = checkpointing.clone();
            request.restore = restore.map(|r| task_restore(r, graph, vertex_id, subtask));
            requests.push((assignment.slot.worker_id.clone(), request));
        }
        state.tasks.sort_by_key(|t| (t.id.vertex, t.id.subtask));
        state.job_state = JobState::Running;
        state.started.get_or_insert_with(Instant::now);
    }
    let deployments = requests.into_iter().map(|(worker, request)| async move {
        let task = request.task.clone().unwrap_or_default();
        let result = match worker_client(shared, &worker).await {
            Ok(mut client) => client
                .deploy_task(request)
                .await
                .map(|_| ())
                .map_err(|s| (s.code() == tonic::Code::DataLoss, s.message().to_string())),
            Err(e) => Err((false, format!("{e:#}"))),
        };
        result.map_err(|(unrestorable, message)| {
            let task = (task.vertex, task.subtask);
            match unrestorable {
                true => FailureCause::SnapshotUnrestorable {
                    task,
                    worker,
                    message,
                },
                false => FailureCause::DeployFailed {
                    task,
                    worker,
                    message,
                },
            }
        })
    });
    let mut errors: Vec<FailureCause> = join_all(deployments)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    // A corrupt snapshot decides the outcome whichever deployment found it first.
    match errors
        .iter()
        .position(|e| matches!(e, FailureCause::SnapshotUnrestorable { .. }))
    {
        Some(index) => Err(errors.swap_remove(index)),
        None => match errors.into_iter().next() {
            Some(error) => Err(error),
            None => Ok(tasks),
        },
    }
}

/// The resource manager and the address its workers register at.
struct Workers<'a> {
    resources: &'a mut dyn ResourceManager,
    jobmaster: &'a str,
}

impl Workers<'_> {
    /// Marks the workers whose processes ended as lost; returns them.
    fn mark_exited(&mut self, state: &mut crate::state::State) -> Vec<String> {
        let exited = self.resources.exited();
        for id in &exited {
            if let Some(worker) = state.worker_mut(id) {
                worker.lost = true;
            }
        }
        exited
    }

    /// Forgets the workers marked lost, and tells the resource manager to make sure they are gone.
    fn drop_lost(&mut self, state: &mut crate::state::State) {
        for lost in state.workers.iter().filter(|w| w.lost) {
            self.resources.release(&lost.id);
        }
        state.workers.retain(|w| !w.lost);
    }
}

/// Waits until `ready` accepts the slots of the live workers (returning what it made of them),
/// the job is canceled, or the slot timeout passes (which fails the job). The resource manager
/// is asked for workers offering `needed` slots meanwhile.
async fn wait_for_slots<T>(
    config: &JobMasterConfig,
    shared: &Shared,
    inbox: &mut Inbox,
    workers: &mut Workers<'_>,
    needed: u32,
    mut ready: impl FnMut(&[SlotRef]) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + config.slot_timeout;
    loop {
        {
            let mut state = shared.state.lock().await;
            workers.mark_exited(&mut state);
            expire_silent_workers(&mut state, config.heartbeat_timeout);
            workers.drop_lost(&mut state);
            workers.resources.require_slots(needed, workers.jobmaster);
            let live: Vec<SlotRef> = state
                .workers
                .iter()
                .filter(|w| !w.lost)
                .flat_map(|w| {
                    (0..w.slots).map(|slot| SlotRef {
                        worker_id: w.id.clone(),
                        data_address: w.data_address.clone(),
                        slot,
                    })
                })
                .collect();
            if let Some(ready) = ready(&live) {
                info!(
                    offered = live.len(),
                    workers = state.workers.len(),
                    "enough slots; deploying"
                );
                return Some(ready);
            }
            if let Some(reason) = inbox.cancel_requested() {
                state.job_state = JobState::Canceled;
                state.failure = reason;
                return None;
            }
            if Instant::now() > deadline {
                let cause = FailureCause::NotEnoughSlots {
                    needed: needed_slots(&state),
                    offered: live.len(),
                    waited: config.slot_timeout,
                };
                state.fail(cause.to_string());
                return None;
            }
        }
        inbox.wait(shared).await;
    }
}

/// The slots the deployed tasks occupy or wait for, for the slot timeout's message.
fn needed_slots(state: &crate::state::State) -> usize {
    let mut slots: Vec<(&str, u32)> = state
        .tasks
        .iter()
        .map(|t| (t.worker_id.as_str(), t.slot))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots.len()
}

async fn monitor(
    config: &JobMasterConfig,
    shared: &Shared,
    inbox: &mut Inbox,
    workers: &mut Workers<'_>,
    mut coordinator: Option<&mut Coordinator>,
) -> Outcome {
    loop {
        cancel_unadopted(shared).await;
        let (failed_tasks, all_running) = {
            let mut state = shared.state.lock().await;
            if state.is_terminal() {
                return Outcome::Over;
            }
            if let Some(reason) = inbox.cancel_requested() {
                state.job_state = JobState::Canceled;
                state.failure = reason;
                return Outcome::Over;
            }
            if state.tasks.iter().all(|t| t.state == TaskState::Finished) {
                state.job_state = JobState::Finished;
                info!("job finished");
                return Outcome::Over;
            }
            // A lost worker fails the tasks it ran; one that ran none is only forgotten.
            let exited = workers.mark_exited(&mut state).into_iter().map(|worker| {
                let cause = FailureCause::WorkerLost {
                    worker: worker.clone(),
                    why: WorkerLoss::Exited,
                };
                (worker, cause)
            });
            let silent = expire_silent_workers(&mut state, config.heartbeat_timeout);
            let mut lost = Failure {
                causes: Vec::new(),
                tasks: BTreeSet::new(),
            };
            for (worker, cause) in exited.chain(silent) {
                let tasks = tasks_on(&state, &worker);
                if !tasks.is_empty() {
                    lost.tasks.extend(tasks);
                    lost.causes.push(cause);
                }
            }
            if !lost.causes.is_empty() {
                return Outcome::Failed(lost);
            }
            workers.drop_lost(&mut state);
            let failed: Vec<(SubtaskRef, FailureCause)> = state
                .tasks
                .iter()
                .filter(|t| t.state == TaskState::Failed)
                .map(|t| {
                    let cause = FailureCause::TaskFailed {
                        task: t.describe(),
                        worker: t.worker_id.clone(),
                        message: t.failure.clone(),
                    };
                    ((t.id.vertex, t.id.subtask), cause)
                })
                .collect();
            let all_running = state.tasks.iter().all(|t| t.state == TaskState::Running);
            (failed, all_running)
        };
        if let Some((_, first)) = failed_tasks.first() {
            // A task failure is often the echo of a dead worker (its exchanges broke); if a worker
            // is gone, that is the cause to report, and its tasks fail with it.
            let mut failure = Failure::new(
                first.clone(),
                failed_tasks.iter().map(|(t, _)| *t).collect(),
            );
            if let Some((worker, name)) = unreachable_worker(shared).await {
                failure
                    .tasks
                    .extend(tasks_on(&*shared.state.lock().await, &worker));
                let gone = FailureCause::WorkerLost {
                    worker: name,
                    why: WorkerLoss::Unreachable,
                };
                failure.causes.insert(0, gone);
            }
            return Outcome::Failed(failure);
        }
        let messages = inbox.checkpoint_messages();
        match coordinator.as_deref_mut() {
            Some(coordinator) => {
                for request in messages.savepoints {
                    coordinator.request_savepoint(request);
                }
                let failed = coordinator
                    .tick(shared, messages.acks, messages.declines, all_running)
                    .await;
                shared.state.lock().await.checkpoints = coordinator.stats.clone();
                if let Some(location) = coordinator.stopped.take() {
                    let mut state = shared.state.lock().await;
                    state.job_state = JobState::Stopped;
                    state.failure = format!("stopped with savepoint {location}");
                    info!(%location, "job stopped with a savepoint");
                    return Outcome::Over;
                }
                if let Some(cause) = failed {
                    let tasks = shared
                        .state
                        .lock()
                        .await
                        .tasks
                        .iter()
                        .map(|t| (t.id.vertex, t.id.subtask))
                        .collect();
                    return Outcome::Failed(Failure::new(cause, tasks));
                }
                if std::mem::take(&mut coordinator.worker_unreachable)
                    && let Some((worker, name)) = unreachable_worker(shared).await
                {
                    let gone = FailureCause::WorkerLost {
                        worker: name,
                        why: WorkerLoss::Unreachable,
                    };
                    let tasks = tasks_on(&*shared.state.lock().await, &worker);
                    return Outcome::Failed(Failure::new(gone, tasks));
                }
            }
            None => {
                for request in messages.savepoints {
                    let _ = request
                        .reply
                        .send(Err("the job takes no checkpoints".into()));
                }
            }
        }
        inbox.wait(shared).await;
    }
}

/// Marks every worker silent for longer than `timeout` as lost, whatever the job is doing
/// (running, waiting for slots, failing to deploy): a worker that dies while it runs no task
/// must not keep offering slots. Returns each one newly lost, with the cause.
fn expire_silent_workers(
    state: &mut crate::state::State,
    timeout: Duration,
) -> Vec<(String, FailureCause)> {
    let mut expired = Vec::new();
    for worker in state
        .workers
        .iter_mut()
        .filter(|w| !w.lost && w.last_heartbeat.elapsed() > timeout)
    {
        worker.lost = true;
        let cause = FailureCause::WorkerLost {
            worker: worker.describe(),
            why: WorkerLoss::NoHeartbeat(worker.last_heartbeat.elapsed()),
        };
        warn!(reason = %cause, "worker lost");
        expired.push((worker.id.clone(), cause));
    }
    expired
}

async fn max_reported_attempt(shared: &Shared) -> u32 {
    let state = shared.state.lock().await;
    state
        .workers
        .iter()
        .flat_map(|w| &w.reported)
        .filter_map(|t| t.task.as_ref().map(|id| id.attempt))
        .max()
        .unwrap_or(0)
}

fn tasks_on(state: &crate::state::State, worker: &str) -> BTreeSet<SubtaskRef> {
    state
        .tasks
        .iter()
        .filter(|t| t.worker_id == worker)
        .map(|t| (t.id.vertex, t.id.subtask))
        .collect()
}

/// The first worker whose control port cannot be reached, if any. A killed process closes its
/// sockets one by one while it exits, so its data connections may break (failing the tasks that
/// read them) a moment before its control port goes: probe a few times before concluding that
/// every worker lives.
async fn unreachable_worker(shared: &Shared) -> Option<(String, String)> {
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
            return Some((id.clone(), name.clone()));
        }
    }
    None
}

/// After a failure or cancellation: cancels what still runs (of `which`, or every task) and
/// waits briefly for the reports.
async fn cancel_unfinished(
    shared: &Shared,
    inbox: &mut Inbox,
    which: Option<&BTreeSet<SubtaskRef>>,
) {
    let selected = |t: &TaskEntry| which.is_none_or(|w| w.contains(&(t.id.vertex, t.id.subtask)));
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
            .filter(|t| !t.is_terminal() && selected(t))
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
            .filter(|t| selected(t))
            .all(TaskEntry::is_terminal)
        {
            return;
        }
        inbox.wait(shared).await;
    }
    for task in shared
        .state
        .lock()
        .await
        .tasks
        .iter_mut()
        .filter(|t| !t.is_terminal() && selected(t))
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
