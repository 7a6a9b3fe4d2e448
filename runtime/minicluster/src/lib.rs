//! Runs a job on a JobMaster and one worker inside the calling process (Flink's MiniCluster):
//! the same job graph, scheduling, tasks and operators as on real processes, with every
//! exchange an in-memory queue (all subtasks share the worker) and no process to start. Tests
//! that run many small jobs (SQL golden files) use it; the guarantees of the runtime itself
//! (kills, failover, checkpoints across processes) are tested on real processes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use spate_jobmaster::JobMasterConfig;
use spate_network::{Exchange, PartitionRegistry};
use spate_proto::v1::{JobState, JobStatus};
use spate_worker::WorkerConfig;
use tempfile::TempDir;
use tokio::task::JoinHandle;

#[cfg(test)]
mod tests;

/// How long the JobMaster may take to write its address once it started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Job ids of this process's runs: concurrent runs of one job (parallel tests) stay apart.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Runs job `name` of the catalog with `args` at most `slots` subtasks wide, to its end; the
/// job's final status, or why it could not run. A job that fails is an `Ok` status in state
/// FAILED, with the cause.
pub async fn run(
    name: &str,
    args: BTreeMap<String, String>,
    slots: u32,
) -> anyhow::Result<JobStatus> {
    MiniCluster::start(name, args, slots, |_, _| {})
        .await?
        .finish()
        .await
}

/// A JobMaster and a worker running one job in this process.
pub struct MiniCluster {
    /// The JobMaster's gRPC address, for status and control requests.
    pub address: String,
    /// The worker's partition registry: the output its tasks produced that no consumer took.
    pub registry: Arc<PartitionRegistry>,
    jobmaster: JoinHandle<anyhow::Result<JobStatus>>,
    worker: JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

impl MiniCluster {
    /// Starts job `name`; `configure` may change the JobMaster's and the worker's settings
    /// (checkpoints, restarts, injected failures) before they start.
    pub async fn start(
        name: &str,
        args: BTreeMap<String, String>,
        slots: u32,
        configure: impl FnOnce(&mut JobMasterConfig, &mut WorkerConfig),
    ) -> anyhow::Result<MiniCluster> {
        let dir = tempfile::tempdir().context("the mini cluster's directory")?;
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let mut jobmaster = JobMasterConfig::new(name, args);
        jobmaster.job_id = format!("{name}-{}-{run}", std::process::id());
        let address_file = dir.path().join("jobmaster.address");
        jobmaster.address_file = Some(address_file.clone());
        let mut worker = WorkerConfig::new(String::new(), slots);
        worker.worker_id = format!("mini-worker-{run}");
        worker.state_dir = dir.path().join("state");
        configure(&mut jobmaster, &mut worker);
        let jobmaster = tokio::spawn(spate_jobmaster::run(jobmaster));

        let address = match wait_for_address(&address_file).await {
            Ok(address) => address,
            Err(e) => {
                // The JobMaster ended first: its error says why (a job that cannot be built).
                if jobmaster.is_finished() {
                    let status = jobmaster.await.context("the JobMaster panicked")??;
                    bail!("the job ended before it started: {}", status.failure);
                }
                jobmaster.abort();
                return Err(e);
            }
        };
        worker.jobmaster = address.clone();
        let exchange = Exchange::new(worker.exchange);
        let registry = exchange.registry.clone();
        let worker = tokio::spawn(spate_worker::run_with_exchange(worker, exchange));
        Ok(MiniCluster {
            address,
            registry,
            jobmaster,
            worker,
            _dir: dir,
        })
    }

    /// Waits for the job to end: its final status.
    pub async fn finish(self) -> anyhow::Result<JobStatus> {
        let status = self.jobmaster.await.context("the JobMaster panicked")??;
        self.worker
            .await
            .context("the worker panicked")?
            .context("the worker")?;
        Ok(status)
    }
}

/// [`run`], for a job that must finish: its status, or the failure as an error.
pub async fn run_to_end(
    name: &str,
    args: BTreeMap<String, String>,
    slots: u32,
) -> anyhow::Result<JobStatus> {
    let status = run(name, args, slots).await?;
    if status.state != JobState::Finished as i32 {
        bail!("job {name} did not finish: {}", status.failure);
    }
    Ok(status)
}

async fn wait_for_address(file: &Path) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(text) = tokio::fs::read_to_string(file).await
            && !text.trim().is_empty()
        {
            return Ok(text.trim().to_string());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the JobMaster wrote no address within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
