use std::collections::BTreeSet;
use std::time::Instant;

use spate_graph::JobVertex;
use spate_proto::v1::worker_client::WorkerClient;
use spate_proto::v1::{
    CheckpointStats, JobState, JobStatus, TaskId, TaskMetrics, TaskState, TaskStatus,
    WorkerMetrics, WorkerStatus,
};
use tokio::sync::{Mutex, Notify};
use tonic::transport::Channel;

use crate::placement::SlotRef;
use crate::throughput::Throughput;

pub struct WorkerEntry {
    pub id: String,
    pub pid: u32,
    pub control_address: String,
    pub data_address: String,
    pub slots: u32,
    pub last_heartbeat: Instant,
    pub metrics: WorkerMetrics,
    pub client: Option<WorkerClient<Channel>>,
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

pub struct TaskEntry {
    pub id: TaskId,
    pub name: String,
    pub parallelism: u32,
    pub state: TaskState,
    pub worker_id: String,
    pub slot: u32,
    pub metrics: TaskMetrics,
    pub failure: String,
}

impl TaskEntry {
    pub fn new(id: TaskId, vertex: &JobVertex, slot: &SlotRef) -> Self {
        TaskEntry {
            metrics: TaskMetrics {
                task: Some(id.clone()),
                watermark: i64::MIN,
                ..Default::default()
            },
            id,
            name: vertex.name.clone(),
            parallelism: vertex.parallelism,
            state: TaskState::Deploying,
            worker_id: slot.worker_id.clone(),
            slot: slot.slot,
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
}

pub struct State {
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
    /// Vertices whose tasks are sources, for the source rate.
    pub source_vertices: BTreeSet<u32>,
    pub throughput: Throughput,
    /// The highest checkpoint id registering workers said their tasks were asked to take.
    pub last_checkpoint_seen: u64,
    /// Failovers (each restarts one or more regions) and the task restarts they made.
    pub restarts: u32,
    pub task_restarts: u32,
    /// Why the job last restarted.
    pub last_failure: String,
}

impl State {
    pub fn new(job_id: &str, name: &str) -> Self {
        State {
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
            source_vertices: BTreeSet::new(),
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

    pub fn worker_mut(&mut self, id: &str) -> Option<&mut WorkerEntry> {
        self.workers.iter_mut().find(|w| w.id == id)
    }

    pub fn task_mut(&mut self, id: &TaskId) -> Option<&mut TaskEntry> {
        self.tasks.iter_mut().find(|t| {
            t.id.vertex == id.vertex && t.id.subtask == id.subtask && t.id.attempt == id.attempt
        })
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
                    worker_id: t.worker_id.clone(),
                    slot: t.slot,
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
            .filter(|t| self.source_vertices.contains(&t.id.vertex))
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

/// The JobMaster's state, shared by the gRPC service and the driver; `changed` wakes the driver.
pub struct Shared {
    pub state: Mutex<State>,
    pub changed: Notify,
}

impl Shared {
    pub fn new(job_id: &str, name: &str) -> Self {
        Shared {
            state: Mutex::new(State::new(job_id, name)),
            changed: Notify::new(),
        }
    }
}
