use std::collections::BTreeSet;
use std::time::Instant;

use spate_graph::{JobGraph, SubtaskRef};
use spate_proto::v1::{
    CheckpointStats, JobState, JobStatus, RegisterWorkerRequest, TaskId, TaskMetrics, TaskState,
    TaskStatus, WorkerMetrics, WorkerStatus,
};
use tracing::{info, info_span, warn};

use crate::checkpoint::{CheckpointTasks, TaskRef};
use crate::clients::ControlClient;
use crate::placement::{Assignment, Placement, SlotRef};
use crate::throughput::Throughput;

pub struct WorkerEntry {
    pub id: String,
    pub pid: u32,
    pub control_address: String,
    pub data_address: String,
    pub slots: u32,
    pub last_heartbeat: Instant,
    pub metrics: WorkerMetrics,
    /// Connects on first use, so making it never waits.
    pub client: ControlClient,
    /// Declared gone (silent or unreachable): nothing more is asked of it.
    pub lost: bool,
    /// Tasks it said it runs when it registered (again), not yet adopted or canceled.
    pub reported: Vec<TaskStatus>,
}

impl WorkerEntry {
    pub fn describe(&self) -> String {
        format!("{} (pid {}, {})", self.id, self.pid, self.control_address)
    }
}

/// The current attempt of one subtask: `id` names the attempt, `slot` where it runs.
pub struct TaskEntry {
    pub id: TaskId,
    pub name: String,
    pub parallelism: u32,
    /// Its chain starts with a source: checkpoint barriers are injected here.
    pub is_source: bool,
    pub slot: SlotRef,
    pub state: TaskState,
    pub metrics: TaskMetrics,
    pub failure: String,
}

impl TaskEntry {
    pub fn new(id: TaskId, graph: &JobGraph, slot: SlotRef) -> Self {
        let vertex = &graph.vertices[id.vertex as usize];
        TaskEntry {
            metrics: TaskMetrics {
                task: Some(id.clone()),
                watermark: i64::MIN,
                ..Default::default()
            },
            id,
            name: vertex.name.clone(),
            parallelism: vertex.parallelism,
            is_source: graph.node(vertex.nodes[0]).is_source(),
            slot,
            state: TaskState::Deploying,
            failure: String::new(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "'{}' subtask {}/{}",
            self.name,
            self.id.subtask + 1,
            self.parallelism
        )
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self.state,
            TaskState::Finished | TaskState::Failed | TaskState::Canceled
        )
    }

    pub fn worker_id(&self) -> &str {
        &self.slot.worker_id
    }
}

/// The one record of the job: its workers, its tasks' current attempts and what the status
/// shows. Only the job's owner holds it (`owner.rs`).
pub struct JobRecord {
    pub job_id: String,
    pub name: String,
    pub job_state: JobState,
    pub failure: String,
    pub workers: Vec<WorkerEntry>,
    pub tasks: Vec<TaskEntry>,
    pub started: Option<Instant>,
    /// Set when the job is over: heartbeats tell workers to stop.
    pub shutdown: bool,
    pub checkpoints: CheckpointStats,
    /// Highest parallelism of the job's vertices.
    pub parallelism: u32,
    pub throughput: Throughput,
    /// The highest checkpoint id registering workers said their tasks were asked to take.
    pub last_checkpoint_seen: u64,
    /// Failovers (each restarts one or more regions) and the task restarts they made.
    pub restarts: u32,
    pub task_restarts: u32,
    /// Why the job last restarted.
    pub last_failure: String,
}

impl JobRecord {
    pub fn new(job_id: &str, name: &str) -> Self {
        JobRecord {
            job_id: job_id.to_string(),
            name: name.to_string(),
            job_state: JobState::Created,
            failure: String::new(),
            workers: Vec::new(),
            tasks: Vec::new(),
            started: None,
            shutdown: false,
            checkpoints: CheckpointStats::default(),
            parallelism: 0,
            throughput: Throughput::default(),
            last_checkpoint_seen: 0,
            restarts: 0,
            task_restarts: 0,
            last_failure: String::new(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self.job_state,
            JobState::Finished | JobState::Failed | JobState::Canceled | JobState::Stopped
        )
    }

    pub fn fail(&mut self, reason: String) {
        if !self.is_terminal() {
            self.job_state = JobState::Failed;
            self.failure = reason;
        }
    }

    /// The subtasks whose current attempt runs on `worker`.
    pub fn subtasks_on(&self, worker: &str) -> BTreeSet<SubtaskRef> {
        self.tasks
            .iter()
            .filter(|t| t.worker_id() == worker)
            .map(|t| (t.id.vertex, t.id.subtask))
            .collect()
    }

    /// Where every subtask's current attempt runs, by vertex and subtask; the restarts of a
    /// failover are placed from it.
    pub fn placement(&self) -> Placement {
        let mut placement: Placement = Vec::new();
        // `tasks` holds one entry per subtask, sorted by vertex and subtask.
        for task in &self.tasks {
            let vertex = task.id.vertex as usize;
            if placement.len() <= vertex {
                placement.resize_with(vertex + 1, Vec::new);
            }
            placement[vertex].push(Assignment {
                slot: task.slot.clone(),
                attempt: task.id.attempt,
            });
        }
        placement
    }

    /// The current attempts, as the checkpoint coordinator addresses them.
    pub fn checkpoint_tasks(&self) -> CheckpointTasks {
        self.tasks
            .iter()
            .map(|t| {
                let task = TaskRef {
                    id: t.id.clone(),
                    worker_id: t.worker_id().to_string(),
                    is_source: t.is_source,
                    finished: t.state == TaskState::Finished,
                };
                ((t.id.vertex, t.id.subtask), task)
            })
            .collect()
    }

    /// The highest attempt of any task a registering worker said it runs: after a JobMaster
    /// failover, new attempts go above it.
    pub fn max_reported_attempt(&self) -> u32 {
        self.workers
            .iter()
            .flat_map(|w| &w.reported)
            .filter_map(|t| t.task.as_ref().map(|id| id.attempt))
            .max()
            .unwrap_or(0)
    }

    pub fn worker_mut(&mut self, id: &str) -> Option<&mut WorkerEntry> {
        self.workers.iter_mut().find(|w| w.id == id)
    }

    pub fn task_mut(&mut self, id: &TaskId) -> Option<&mut TaskEntry> {
        self.tasks.iter_mut().find(|t| {
            t.id.vertex == id.vertex && t.id.subtask == id.subtask && t.id.attempt == id.attempt
        })
    }

    /// A worker (re)registered: its earlier entry, if any, is replaced.
    pub fn register(&mut self, r: RegisterWorkerRequest) -> Result<(), String> {
        let client = ControlClient::lazy(&r.control_address)
            .map_err(|e| format!("control address '{}': {e}", r.control_address))?;
        info!(worker = %r.worker_id, pid = r.pid, slots = r.slots.len(), data = %r.data_address, tasks = r.tasks.len(), "worker registered");
        self.workers.retain(|w| w.id != r.worker_id);
        self.last_checkpoint_seen = self.last_checkpoint_seen.max(r.last_checkpoint_id);
        self.workers.push(WorkerEntry {
            id: r.worker_id,
            pid: r.pid,
            control_address: r.control_address,
            data_address: r.data_address,
            slots: r.slots.len() as u32,
            last_heartbeat: Instant::now(),
            metrics: WorkerMetrics::default(),
            client,
            lost: false,
            reported: r.tasks,
        });
        Ok(())
    }

    /// A heartbeat of a known worker: it lives, and its tasks' metrics are fresh.
    pub fn heartbeat(&mut self, worker_id: &str, metrics: WorkerMetrics, tasks: Vec<TaskMetrics>) {
        let Some(worker) = self.worker_mut(worker_id) else {
            return;
        };
        worker.last_heartbeat = Instant::now();
        worker.metrics = metrics;
        for metrics in tasks {
            let Some(id) = metrics.task.clone() else {
                continue;
            };
            if let Some(task) = self.task_mut(&id) {
                task.metrics = metrics;
            }
        }
        self.sample_sources();
    }

    /// A task's attempt changed state.
    pub fn task_state(
        &mut self,
        worker_id: &str,
        id: &TaskId,
        state: TaskState,
        failure: String,
        metrics: Option<TaskMetrics>,
    ) {
        match self.task_mut(id) {
            Some(task) => {
                if state == TaskState::Failed {
                    let span = info_span!(
                        "task",
                        vertex = id.vertex,
                        subtask = id.subtask,
                        attempt = id.attempt
                    );
                    span.in_scope(|| warn!(task = %task.describe(), worker = %worker_id, %failure, "task failed"));
                }
                task.state = state;
                task.failure = failure;
                if let Some(metrics) = metrics {
                    task.metrics = metrics;
                }
            }
            None => {
                // A task a worker listed when it registered again, not adopted yet: its state
                // counts for the adoption.
                let listed = self
                    .worker_mut(worker_id)
                    .and_then(|w| w.reported.iter_mut().find(|t| t.task.as_ref() == Some(id)));
                match listed {
                    Some(task) => task.state = state as i32,
                    None => warn!(?id, "state report for an unknown task"),
                }
            }
        }
    }

    pub fn status(&self) -> JobStatus {
        JobStatus {
            job_id: self.job_id.clone(),
            name: self.name.clone(),
            state: self.job_state as i32,
            failure: self.failure.clone(),
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskStatus {
                    task: Some(t.id.clone()),
                    name: t.name.clone(),
                    state: t.state as i32,
                    worker_id: t.worker_id().to_string(),
                    slot: t.slot.slot,
                    metrics: Some(t.metrics.clone()),
                    failure: t.failure.clone(),
                })
                .collect(),
            workers: self
                .workers
                .iter()
                .map(|w| WorkerStatus {
                    worker_id: w.id.clone(),
                    pid: w.pid,
                    data_address: w.data_address.clone(),
                    slots: w.slots,
                    metrics: Some(w.metrics),
                })
                .collect(),
            running_ms: self.started.map_or(0, |s| s.elapsed().as_millis() as u64),
            checkpoints: Some(self.checkpoints.clone()),
            restarts: self.restarts,
            task_restarts: self.task_restarts,
            source_records_per_second: self.throughput.per_second(),
            back_pressure: self.back_pressure(),
            parallelism: self.parallelism,
            last_failover: self.last_failure.clone(),
        }
    }

    /// Records what the sources emitted in all, after a heartbeat updated their metrics.
    pub fn sample_sources(&mut self) {
        let total = self
            .tasks
            .iter()
            .filter(|t| t.is_source)
            .map(|t| t.metrics.records_out)
            .sum();
        self.throughput.record(Instant::now(), total);
    }

    /// The fullest worker's output pool usage (Flink's outPoolUsage): near 1 while a slow
    /// consumer holds its producers back.
    fn back_pressure(&self) -> f64 {
        self.workers
            .iter()
            .filter(|w| w.metrics.buffer_capacity > 0)
            .map(|w| {
                (w.metrics.buffered_batches as f64 / w.metrics.buffer_capacity as f64).min(1.0)
            })
            .fold(0.0, f64::max)
    }
}
