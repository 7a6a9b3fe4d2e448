//! The subtasks running on this worker.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow};
use spate_graph::JobGraph;
use spate_network::Exchange;
use spate_proto::v1::{
    DeployTaskRequest, TaskId, TaskMetrics as TaskMetricsProto, TaskState, TaskStateReport,
    WorkerMetrics,
};
use spate_task::{Canceler, TaskMetrics, TaskOutcome};
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::deploy::prepare;

struct RunningTask {
    id: TaskId,
    canceler: Canceler,
    metrics: Arc<TaskMetrics>,
    thread: Option<JoinHandle<()>>,
}

pub struct TaskManager {
    worker_id: String,
    exchange: Exchange,
    data_address: String,
    reports: mpsc::UnboundedSender<TaskStateReport>,
    tasks: Mutex<HashMap<String, RunningTask>>,
    /// Job graphs built from their specs, by job id.
    graphs: Mutex<HashMap<String, Arc<JobGraph>>>,
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
        reports: mpsc::UnboundedSender<TaskStateReport>,
    ) -> Self {
        TaskManager {
            worker_id,
            exchange,
            data_address,
            reports,
            tasks: Mutex::new(HashMap::new()),
            graphs: Mutex::new(HashMap::new()),
        }
    }

    fn graph(&self, request: &DeployTaskRequest, job_id: &str) -> anyhow::Result<Arc<JobGraph>> {
        if let Some(graph) = self.graphs.lock().expect("graphs lock").get(job_id) {
            return Ok(graph.clone());
        }
        let spec = request
            .job
            .as_ref()
            .ok_or_else(|| anyhow!("deployment without a job spec"))?;
        let args: BTreeMap<String, String> = spec.args.clone().into_iter().collect();
        let stream = spate_jobs::build(&spec.name, &args)?;
        let graph = Arc::new(JobGraph::build(stream).context("building the job graph")?);
        self.graphs
            .lock()
            .expect("graphs lock")
            .insert(job_id.to_string(), graph.clone());
        Ok(graph)
    }

    /// Builds the task's operators and outputs now (so mistakes are returned to the JobMaster at
    /// once) and starts its thread, which connects the inputs and runs it.
    pub fn deploy(&self, request: DeployTaskRequest) -> anyhow::Result<()> {
        let id = request
            .task
            .clone()
            .ok_or_else(|| anyhow!("deployment without a task id"))?;
        let graph = self.graph(&request, &id.job_id)?;
        if graph.fingerprint() != request.graph_fingerprint {
            return Err(anyhow!(
                "job graph mismatch: this worker built {} but the JobMaster scheduled {} (different binaries?)",
                graph.fingerprint(),
                request.graph_fingerprint
            ));
        }
        let canceler = Canceler::default();
        let metrics = Arc::new(TaskMetrics::default());
        let pending = prepare(
            &request,
            &graph,
            &self.exchange,
            &self.data_address,
            &canceler,
            &metrics,
        )
        .with_context(|| format!("deploying vertex {} subtask {}", id.vertex, id.subtask))?;
        let reports = self.reports.clone();
        let worker_id = self.worker_id.clone();
        let exchange = self.exchange.clone();
        let task_id = id.clone();
        let task_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name(format!("task-{}.{}", id.vertex, id.subtask))
            .spawn(move || {
                let report = |state: TaskState, failure: String| {
                    let _ = reports.send(TaskStateReport {
                        worker_id: worker_id.clone(),
                        task: Some(task_id.clone()),
                        state: state as i32,
                        failure,
                        metrics: Some(snapshot(&task_id, &task_metrics)),
                    });
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
                    let task = pending.connect(&exchange).await?;
                    report(TaskState::Running, String::new());
                    Ok::<_, anyhow::Error>(task.run().await?)
                });
                match outcome {
                    Ok(TaskOutcome::Finished) => report(TaskState::Finished, String::new()),
                    Ok(TaskOutcome::Canceled) => report(TaskState::Canceled, String::new()),
                    Err(e) => {
                        error!(task = %key(&task_id), error = %format!("{e:#}"), "task failed");
                        report(TaskState::Failed, format!("{e:#}"));
                    }
                }
            })
            .context("starting the task thread")?;
        info!(task = %key(&id), "deployed");
        self.tasks.lock().expect("tasks lock").insert(
            key(&id),
            RunningTask {
                id,
                canceler,
                metrics,
                thread: Some(thread),
            },
        );
        Ok(())
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
        }
    }
}
