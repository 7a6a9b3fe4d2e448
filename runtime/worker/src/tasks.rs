//! The subtasks running on this worker.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow};
use spate_api::{CheckpointBarrier, StateBackendKind};
use spate_graph::JobGraph;
use spate_network::Exchange;
use spate_proto::v1::{
    AcknowledgeCheckpointRequest, DeployTaskRequest, TaskId, TaskMetrics as TaskMetricsProto,
    TaskState, TaskStateReport, TaskStatus, WorkerMetrics,
};
use spate_task::{Canceler, Checkpointing, TaskCommand, TaskMetrics, TaskOutcome};
use tokio::sync::mpsc;
use tracing::{Instrument, Span, error, info, info_span, warn};

use crate::checkpoints::{CheckpointHub, FinalAck, SnapshotUploads, download_restore};
use crate::deploy::{TaskStateSetup, prepare};
use crate::faults::InjectedFailure;
use crate::jobmaster::Upward;
use crate::local_recovery::LocalRecovery;

/// Stack of a task thread (reserved, not used until needed): operators evaluate expressions
/// recursively, and SQL lets them nest up to a thousand levels deep.
const TASK_STACK: usize = 64 << 20;

struct RunningTask {
    id: TaskId,
    slot: u32,
    /// The last state the task reported.
    state: Arc<Mutex<TaskState>>,
    canceler: Canceler,
    metrics: Arc<TaskMetrics>,
    thread: Option<JoinHandle<()>>,
    /// To the task and to its uploader; `None` without checkpoints.
    commands: Option<mpsc::UnboundedSender<TaskCommand>>,
    completed: Option<mpsc::UnboundedSender<u64>>,
    /// Its final snapshot's acknowledgement, once sent (see `SnapshotUploads::final_ack`).
    final_ack: FinalAck,
}

pub struct TaskManager {
    worker_id: String,
    exchange: Exchange,
    data_address: String,
    reports: mpsc::UnboundedSender<Upward>,
    state_dir: PathBuf,
    inject_failure: Option<InjectedFailure>,
    checkpoints: Arc<CheckpointHub>,
    local: Arc<LocalRecovery>,
    tasks: Mutex<HashMap<String, RunningTask>>,
    /// Job graphs built from their specs, by job id.
    graphs: Mutex<HashMap<String, Arc<JobGraph>>>,
    /// The highest checkpoint id a task here was asked to take.
    last_checkpoint: AtomicU64,
}

fn snapshot(id: &TaskId, m: &TaskMetrics) -> TaskMetricsProto {
    TaskMetricsProto {
        task: Some(id.clone()),
        records_in: TaskMetrics::get(&m.records_in),
        records_out: TaskMetrics::get(&m.records_out),
        batches_in: TaskMetrics::get(&m.batches_in),
        batches_out: TaskMetrics::get(&m.batches_out),
        watermark: m.watermark.load(Ordering::Relaxed),
        late_records_dropped: TaskMetrics::get(&m.late_records_dropped),
        restored_bytes_downloaded: TaskMetrics::get(&m.restored_bytes_downloaded),
        restored_bytes_local: TaskMetrics::get(&m.restored_bytes_local),
    }
}

fn key(id: &TaskId) -> String {
    format!("{}/{}/{}/{}", id.job_id, id.vertex, id.subtask, id.attempt)
}

impl TaskManager {
    pub fn new(
        worker_id: String,
        exchange: Exchange,
        data_address: String,
        reports: mpsc::UnboundedSender<Upward>,
        state_dir: PathBuf,
        inject_failure: Option<InjectedFailure>,
    ) -> Self {
        TaskManager {
            worker_id,
            exchange,
            data_address,
            reports,
            state_dir,
            inject_failure,
            checkpoints: Arc::default(),
            local: Arc::default(),
            tasks: Mutex::new(HashMap::new()),
            graphs: Mutex::new(HashMap::new()),
            last_checkpoint: AtomicU64::new(0),
        }
    }

    async fn graph(
        &self,
        request: &DeployTaskRequest,
        job_id: &str,
    ) -> anyhow::Result<Arc<JobGraph>> {
        if let Some(graph) = self.graphs.lock().expect("graphs lock").get(job_id) {
            return Ok(graph.clone());
        }
        let spec = request
            .job
            .clone()
            .ok_or_else(|| anyhow!("deployment without a job spec"))?;
        // Planning a job's SQL can take seconds; on a blocking thread it does not hold up the
        // heartbeats and calls the runtime's threads serve meanwhile.
        let graph = tokio::task::spawn_blocking(move || {
            let args: BTreeMap<String, String> = spec.args.into_iter().collect();
            let stream = spate_jobs::build(&spec.name, &args)?;
            JobGraph::build(stream).context("building the job graph")
        })
        .await
        .context("the job graph's builder stopped")??;
        let graph = Arc::new(graph);
        self.graphs
            .lock()
            .expect("graphs lock")
            .insert(job_id.to_string(), graph.clone());
        Ok(graph)
    }

    /// Downloads the state the task restores, builds its operators and outputs now (so mistakes
    /// are returned to the JobMaster at once) and starts its thread, which connects the inputs
    /// and runs it.
    pub async fn deploy(&self, request: DeployTaskRequest) -> anyhow::Result<()> {
        let id = request
            .task
            .clone()
            .ok_or_else(|| anyhow!("deployment without a task id"))?;
        let span = info_span!(
            "task",
            job = %id.job_id,
            vertex = id.vertex,
            subtask = id.subtask,
            attempt = id.attempt
        );
        self.deploy_attempt(request, id, span.clone())
            .instrument(span)
            .await
    }

    async fn deploy_attempt(
        &self,
        request: DeployTaskRequest,
        id: TaskId,
        span: Span,
    ) -> anyhow::Result<()> {
        let graph = self.graph(&request, &id.job_id).await?;
        if graph.fingerprint() != request.graph_fingerprint {
            return Err(anyhow!(
                "job graph mismatch: this worker built {} but the JobMaster scheduled {} (different binaries?)",
                graph.fingerprint(),
                request.graph_fingerprint
            ));
        }
        let canceler = Canceler::default();
        let metrics = Arc::new(TaskMetrics::default());
        let dir = self.state_dir.join(format!(
            "{}/{}-{}-{}",
            id.job_id, id.vertex, id.subtask, id.attempt
        ));
        let mut setup = TaskStateSetup {
            dir: dir.clone(),
            backend: StateBackendKind::default(),
            restored: HashMap::new(),
            checkpointing: None,
        };
        let (mut commands, mut completed) = (None, None);
        let final_ack = FinalAck::default();
        if let Some(config) = &request.checkpointing {
            setup.backend = StateBackendKind::parse(&config.state_backend).ok_or_else(|| {
                anyhow!(
                    "unknown state backend '{}' (heap, rocksdb)",
                    config.state_backend
                )
            })?;
            let storage = self.checkpoints.storage(config).await?;
            let mut uploads = SnapshotUploads {
                task: id.clone(),
                storage: storage.clone(),
                job_dir: config.job_dir.clone(),
                uploaders: HashMap::new(),
                upward: self.reports.clone(),
                local: self.local.clone(),
                local_copies: BTreeMap::new(),
                final_ack: final_ack.clone(),
            };
            if let Some(restore) = &request.restore {
                let restored = download_restore(&storage, restore, &dir, &self.local, &id).await?;
                metrics
                    .restored_bytes_downloaded
                    .store(restored.downloaded_bytes, Ordering::Relaxed);
                metrics
                    .restored_bytes_local
                    .store(restored.local_bytes, Ordering::Relaxed);
                info!(
                    checkpoint = restore.checkpoint_id,
                    downloaded = restored.downloaded_bytes,
                    local = restored.local_bytes,
                    "state restored"
                );
                setup.restored = restored.operators;
                uploads.seed(restore)?;
                remove_earlier_attempts(&self.state_dir, &id);
            }
            let (command_tx, command_rx) = mpsc::unbounded_channel();
            let (snapshot_tx, snapshot_rx) = mpsc::unbounded_channel();
            let (completed_tx, completed_rx) = mpsc::unbounded_channel();
            tokio::spawn(
                uploads
                    .run(self.checkpoints.clone(), snapshot_rx, completed_rx)
                    .instrument(span.clone()),
            );
            setup.checkpointing = Some(Checkpointing {
                commands: command_rx,
                snapshots: snapshot_tx,
            });
            commands = Some(command_tx);
            completed = Some(completed_tx);
        }
        self.forget_earlier_attempts(&id);
        let pending = prepare(
            &request,
            &graph,
            &self.exchange,
            &self.data_address,
            &canceler,
            &metrics,
            setup,
        )
        .with_context(|| format!("deploying vertex {} subtask {}", id.vertex, id.subtask))?;
        let reports = self.reports.clone();
        let worker_id = self.worker_id.clone();
        let exchange = self.exchange.clone();
        let task_id = id.clone();
        let task_metrics = metrics.clone();
        let fault = self.inject_failure.filter(|f| f.hits(&id));
        let state = Arc::new(Mutex::new(TaskState::Deploying));
        let reported = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("task-{}.{}", id.vertex, id.subtask))
            .stack_size(TASK_STACK)
            .spawn(move || {
                // Everything the task logs, on this thread and in its runtime, is in its span.
                let _span = span.enter();
                let report = |state: TaskState, failure: String| {
                    *reported.lock().expect("task state lock") = state;
                    let _ = reports.send(Upward::State(TaskStateReport {
                        worker_id: worker_id.clone(),
                        task: Some(task_id.clone()),
                        state: state as i32,
                        failure,
                        metrics: Some(snapshot(&task_id, &task_metrics)),
                    }));
                };
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        return report(
                            TaskState::Failed,
                            format!("starting the task runtime: {e}"),
                        );
                    }
                };
                let outcome = runtime.block_on(async {
                    if let Some(fault) = fault.filter(InjectedFailure::before_inputs) {
                        return Err(anyhow!(fault.strike(task_metrics.clone()).await));
                    }
                    let task = pending.connect(&exchange).await?;
                    report(TaskState::Running, String::new());
                    let strike = async {
                        match fault {
                            Some(fault) => fault.strike(task_metrics.clone()).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        outcome = task.run() => Ok(outcome?),
                        failure = strike => Err(anyhow!(failure)),
                    }
                });
                // A finished attempt's output stays for consumers that have yet to read it; a
                // failed or canceled one's is never read (its consumers restart with it).
                if !matches!(outcome, Ok(TaskOutcome::Finished)) {
                    exchange.registry.release(|p| {
                        p.of_subtask(&task_id.job_id, task_id.vertex, task_id.subtask)
                            && p.attempt == task_id.attempt
                    });
                }
                match outcome {
                    Ok(TaskOutcome::Finished) => report(TaskState::Finished, String::new()),
                    Ok(TaskOutcome::Canceled) => report(TaskState::Canceled, String::new()),
                    Err(e) => {
                        error!(error = %format!("{e:#}"), "task failed");
                        report(TaskState::Failed, format!("{e:#}"));
                    }
                }
            })
            .context("starting the task thread")?;
        info!("deployed");
        self.tasks.lock().expect("tasks lock").insert(
            key(&id),
            RunningTask {
                id,
                slot: request.slot,
                state,
                canceler,
                metrics,
                thread: Some(thread),
                commands,
                completed,
                final_ack,
            },
        );
        Ok(())
    }

    /// A new attempt of `id`'s subtask replaces the earlier ones: their output nobody took is
    /// released (a finished producer restarted after the job's final checkpoint keeps it until
    /// now), and those that ended are forgotten, so heartbeats stop carrying their metrics.
    fn forget_earlier_attempts(&self, id: &TaskId) {
        let earlier = |job: &str, vertex: u32, subtask: u32, attempt: u32| {
            job == id.job_id && vertex == id.vertex && subtask == id.subtask && attempt < id.attempt
        };
        self.exchange
            .registry
            .release(|p| earlier(&p.job_id, p.vertex, p.subtask, p.attempt));
        self.tasks.lock().expect("tasks lock").retain(|_, task| {
            let t = &task.id;
            let ended = !matches!(
                *task.state.lock().expect("task state lock"),
                TaskState::Deploying | TaskState::Running
            );
            !(ended && earlier(&t.job_id, t.vertex, t.subtask, t.attempt))
        });
    }

    /// Has the listed source tasks inject checkpoint `barrier`'s barrier.
    pub fn trigger_checkpoint(&self, barrier: CheckpointBarrier, tasks: &[TaskId]) {
        self.last_checkpoint
            .fetch_max(barrier.id, Ordering::Relaxed);
        let running = self.tasks.lock().expect("tasks lock");
        for id in tasks {
            if let Some(commands) = running.get(&key(id)).and_then(|t| t.commands.as_ref()) {
                let _ = commands.send(TaskCommand::Trigger(barrier));
            }
        }
    }

    pub fn announce_savepoint(&self, id: u64, location: String) {
        self.checkpoints.announce_savepoint(id, location);
    }

    /// Checkpoint `id` is complete: the listed tasks commit, their uploaders move their base.
    pub fn notify_checkpoint_complete(&self, id: u64, tasks: &[TaskId]) {
        let running = self.tasks.lock().expect("tasks lock");
        for (task_id, task) in tasks
            .iter()
            .filter_map(|t| Some((t, running.get(&key(t))?)))
        {
            if let Some(fault) = self
                .inject_failure
                .filter(|f| f.on_notice() && f.hits(task_id))
            {
                fault.crash(id);
            }
            if let Some(completed) = &task.completed {
                let _ = completed.send(id);
            }
            if let Some(commands) = &task.commands {
                let _ = commands.send(TaskCommand::Complete(id));
            }
        }
    }

    pub fn cancel(&self, id: &TaskId) {
        if let Some(task) = self.tasks.lock().expect("tasks lock").get(&key(id)) {
            task.canceler.cancel();
        }
    }

    /// Cancels every task and waits (briefly) for their threads to end.
    pub async fn cancel_all(&self) {
        let threads: Vec<JoinHandle<()>> = {
            let mut tasks = self.tasks.lock().expect("tasks lock");
            tasks
                .values_mut()
                .filter_map(|t| {
                    t.canceler.cancel();
                    t.thread.take()
                })
                .collect()
        };
        let joined =
            tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join())));
        let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
    }

    /// The tasks here that have not ended, for a new JobMaster to adopt.
    pub fn live_tasks(&self) -> Vec<TaskStatus> {
        let tasks = self.tasks.lock().expect("tasks lock");
        tasks
            .values()
            .filter_map(|t| {
                let state = *t.state.lock().expect("task state lock");
                matches!(state, TaskState::Deploying | TaskState::Running).then(|| TaskStatus {
                    task: Some(t.id.clone()),
                    state: state as i32,
                    worker_id: self.worker_id.clone(),
                    slot: t.slot,
                    metrics: Some(snapshot(&t.id, &t.metrics)),
                    ..TaskStatus::default()
                })
            })
            .collect()
    }

    /// The final snapshots acknowledged by tasks that still wait for the final checkpoint, to
    /// send again to a JobMaster that took over: the one they went to may have died with them.
    pub fn waiting_finals(&self) -> Vec<AcknowledgeCheckpointRequest> {
        let tasks = self.tasks.lock().expect("tasks lock");
        tasks
            .values()
            .filter(|t| *t.state.lock().expect("task state lock") == TaskState::Running)
            .filter_map(|t| t.final_ack.lock().expect("final ack lock").clone())
            .collect()
    }

    pub fn last_checkpoint(&self) -> u64 {
        self.last_checkpoint.load(Ordering::Relaxed)
    }

    pub fn metrics(&self) -> Vec<TaskMetricsProto> {
        let tasks = self.tasks.lock().expect("tasks lock");
        tasks
            .values()
            .map(|t| snapshot(&t.id, &t.metrics))
            .collect()
    }

    pub fn worker_metrics(&self) -> WorkerMetrics {
        WorkerMetrics {
            buffered_batches: self.exchange.gauge.current(),
            max_buffered_batches: self.exchange.gauge.max(),
            buffer_capacity: self.exchange.gauge.capacity(),
        }
    }
}

/// Deletes the state directories of earlier attempts of `id`'s subtask: the restore either
/// linked what it needed from them or downloaded it, and the restored attempt's own copy is the
/// local one from now on.
fn remove_earlier_attempts(state_dir: &std::path::Path, id: &TaskId) {
    let job = state_dir.join(&id.job_id);
    for attempt in 0..id.attempt {
        let dir = job.join(format!("{}-{}-{attempt}", id.vertex, id.subtask));
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(dir = %dir.display(), error = %e, "removing an earlier attempt's state");
        }
    }
}
