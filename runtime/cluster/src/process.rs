use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use spate_proto::v1::job_master_client::JobMasterClient;
use spate_proto::v1::{GetJobStatusRequest, JobStatus};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tracing::warn;

use crate::ledger::{self, Ended, Entry, Ledger};
use crate::output::OutputForwarder;
use crate::reaper::{become_subreaper, kill_and_reap, reap_orphans};
use crate::spec::ClusterSpec;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long workers get to exit on their own after their JobMaster did.
const WORKER_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const SUPERVISE_INTERVAL: Duration = Duration::from_millis(100);
/// JobMasters started in place of dead ones before the cluster stops replacing them.
const MAX_JOBMASTER_REPLACEMENTS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("starting {role}: {source}")]
    Spawn {
        role: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the JobMaster exited with {status} before listening; its log ends:\n{log}")]
    JobMasterDied { status: ExitStatus, log: String },
    #[error("the JobMaster did not listen within {0:?}")]
    StartupTimeout(Duration),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the JobMaster's status: {0}")]
    Rpc(String),
    #[error("the JobMaster exited with {status} without a final status; its log ends:\n{log}")]
    NoFinalStatus { status: ExitStatus, log: String },
}

pub struct LocalCluster {
    spec: ClusterSpec,
    jobmaster: Arc<Mutex<Child>>,
    /// The worker processes the JobMaster's local resource manager started.
    workers: Ledger,
    /// Reaps workers whose JobMaster died, and replaces a dead JobMaster while the job may
    /// recover (with checkpoints only).
    supervisor: Option<JoinHandle<()>>,
    /// Copies what the workers print to this process's standard output.
    output: Option<OutputForwarder>,
    address: String,
    client: Option<JobMasterClient<Channel>>,
}

/// How the cluster ended.
#[derive(Debug)]
pub struct ClusterOutcome {
    pub status: JobStatus,
    pub jobmaster_exit: ExitStatus,
    /// Exit of the last worker at each index; `None` for one that had to be killed (silent, or
    /// still running after its job was over).
    pub worker_exits: Vec<Option<ExitStatus>>,
}

fn jobmaster_command(spec: &ClusterSpec, log: &Path) -> Result<Command, ClusterError> {
    let mut command = std::process::Command::new(&spec.binary);
    let file = File::create(log)?;
    command
        .env("RUST_LOG", &spec.log_filter)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    die_with_parent(&mut command);
    let mut command = Command::from(command);
    command.kill_on_drop(true);
    Ok(command)
}

/// `spate jobmaster` arguments of a local resource manager that starts the workers `spec` asks
/// for (they inherit the JobMaster's environment, `RUST_LOG` included).
fn local_workers_args(spec: &ClusterSpec) -> Vec<String> {
    let state = spec
        .state_dir
        .clone()
        .unwrap_or_else(|| spec.work_dir.join("state"));
    let mut args = vec![
        "--resource-manager".to_string(),
        "local".to_string(),
        format!("--worker-slots={}", spec.slots_per_worker),
        format!("--min-workers={}", spec.workers),
        format!("--workers-dir={}", spec.work_dir.display()),
        format!("--worker-state-dir={}", state.display()),
        format!("--worker-arg=--queue-capacity={}", spec.queue_capacity),
        format!("--worker-arg=--credits={}", spec.credits_per_channel),
    ];
    if let Some(failure) = &spec.inject_failure {
        args.push(format!("--worker-arg=--inject-failure={failure}"));
    }
    args
}

/// The JobMaster process; a replacement (`generation` > 0) binds the address of the first and
/// recovers the job.
fn spawn_jobmaster(
    spec: &ClusterSpec,
    job_id: &str,
    bind: &str,
    generation: u32,
) -> Result<Child, ClusterError> {
    let log = match generation {
        0 => spec.work_dir.join("logs/jobmaster.log"),
        g => spec.work_dir.join(format!("logs/jobmaster.{g}.log")),
    };
    let mut command = jobmaster_command(spec, &log)?;
    command
        .arg("jobmaster")
        .arg("--job")
        .arg(&spec.job_name)
        .arg("--job-id")
        .arg(job_id)
        .arg("--bind")
        .arg(bind)
        .arg("--address-file")
        .arg(spec.work_dir.join("jobmaster.addr"))
        .arg("--status-file")
        .arg(spec.work_dir.join("status.pb"))
        .arg("--heartbeat-timeout-ms")
        .arg(spec.heartbeat_timeout_ms.to_string())
        .args(local_workers_args(spec));
    if generation > 0 {
        command.arg("--recover");
    }
    if let Some(checkpoints) = &spec.checkpoints {
        command.args(checkpoints.jobmaster_args(&spec.work_dir));
    }
    for (key, value) in &spec.job_args {
        command.arg("--arg").arg(format!("{key}={value}"));
    }
    command.spawn().map_err(|source| ClusterError::Spawn {
        role: "the JobMaster".into(),
        source,
    })
}

/// Whether the JobMaster ended the job: it writes the final status before it exits.
fn job_over(spec: &ClusterSpec) -> bool {
    spec.work_dir.join("status.pb").exists()
}

/// Replaces a JobMaster that died before it ended the job (with checkpoints; `replace`), at
/// the same address: the new one adopts the workers and their tasks (as Kubernetes restarts a
/// JobMaster pod). And reaps the workers the dead one left, which this process inherits.
async fn supervise(
    spec: ClusterSpec,
    job_id: String,
    jobmaster: String,
    jobmasters: Arc<Mutex<Child>>,
    workers: Ledger,
) {
    let replace = spec.checkpoints.is_some();
    let mut jobmaster_generation = 0;
    loop {
        tokio::time::sleep(SUPERVISE_INTERVAL).await;
        reap_orphans(&workers);
        if !replace {
            continue;
        }
        let mut current = jobmasters.lock().expect("jobmaster lock");
        if let Ok(Some(exit)) = current.try_wait()
            && !job_over(&spec)
            && jobmaster_generation < MAX_JOBMASTER_REPLACEMENTS
        {
            jobmaster_generation += 1;
            warn!(%exit, "the JobMaster died; starting a replacement");
            match spawn_jobmaster(&spec, &job_id, &jobmaster, jobmaster_generation) {
                Ok(replacement) => *current = replacement,
                Err(e) => warn!(error = %e, "cannot start a replacement JobMaster"),
            }
        }
    }
}

/// On Linux the kernel kills the JobMaster when the thread that spawned it exits (a runtime
/// thread of this process, which lives as long as the process), so it never outlives the
/// cluster even when that is killed with SIGKILL; its workers then exit once no JobMaster
/// answers them.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Elsewhere (macOS) there is no parent-death signal: the JobMaster is still killed when the
/// cluster is dropped, but a cluster killed with SIGKILL leaves it running.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut std::process::Command) {}

pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl LocalCluster {
    pub async fn start(spec: ClusterSpec) -> Result<Self, ClusterError> {
        std::fs::create_dir_all(spec.work_dir.join("logs"))?;
        let address_file = spec.work_dir.join("jobmaster.addr");
        let _ = std::fs::remove_file(&address_file);
        let _ = std::fs::remove_file(spec.work_dir.join("status.pb"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let job_id = format!("{}-{}-{nanos:08x}", spec.job_name, std::process::id());
        become_subreaper();
        let mut jobmaster = spawn_jobmaster(&spec, &job_id, "127.0.0.1:0", 0)?;

        let started = Instant::now();
        let address = loop {
            if let Ok(address) = std::fs::read_to_string(&address_file) {
                break address;
            }
            if let Some(status) = jobmaster.try_wait()? {
                return Err(ClusterError::JobMasterDied {
                    status,
                    log: log_tail(&spec.work_dir.join("logs/jobmaster.log"), 20),
                });
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                return Err(ClusterError::StartupTimeout(STARTUP_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };

        let workers = Ledger::new(spec.work_dir.join("processes").join(&job_id));
        let jobmaster = Arc::new(Mutex::new(jobmaster));
        let supervisor = tokio::spawn(supervise(
            spec.clone(),
            job_id,
            address.clone(),
            jobmaster.clone(),
            workers.clone(),
        ));
        let output = spec
            .forward_stdout
            .then(|| OutputForwarder::start(spec.work_dir.join("logs")));
        Ok(LocalCluster {
            spec,
            jobmaster,
            workers,
            supervisor: Some(supervisor),
            output,
            address,
            client: None,
        })
    }

    pub fn jobmaster_address(&self) -> &str {
        &self.address
    }

    pub fn work_dir(&self) -> &Path {
        &self.spec.work_dir
    }

    pub fn log_path(&self, role: &str) -> PathBuf {
        self.spec.work_dir.join(format!("logs/{role}.log"))
    }

    /// The process id of the worker at each index; `None` while none runs there.
    pub fn worker_pids(&self) -> Vec<Option<u32>> {
        self.workers
            .latest()
            .into_iter()
            .map(|entry| entry.filter(Entry::running).map(|e| e.pid))
            .collect()
    }

    /// The job's live status from the JobMaster.
    pub async fn status(&mut self) -> Result<JobStatus, ClusterError> {
        if self.client.is_none() {
            let client = JobMasterClient::connect(format!("http://{}", self.address))
                .await
                .map_err(|e| ClusterError::Rpc(e.to_string()))?;
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("connected above");
        match client.get_job_status(GetJobStatusRequest {}).await {
            Ok(status) => Ok(status.into_inner()),
            Err(e) => {
                self.client = None;
                Err(ClusterError::Rpc(e.message().to_string()))
            }
        }
    }

    /// Asks the JobMaster to cancel the job; the processes then exit on their own.
    pub async fn cancel(&mut self, reason: &str) -> Result<(), ClusterError> {
        self.status().await?;
        let client = self.client.as_mut().expect("connected by status()");
        client
            .cancel_job(spate_proto::v1::CancelJobRequest {
                reason: reason.to_string(),
            })
            .await
            .map_err(|e| ClusterError::Rpc(e.message().to_string()))?;
        Ok(())
    }

    /// The JobMaster ended the job (it wrote the final status); its process may be exiting.
    pub fn job_over(&self) -> bool {
        job_over(&self.spec)
    }

    pub fn jobmaster_pid(&self) -> Option<u32> {
        self.jobmaster.lock().expect("jobmaster lock").id()
    }

    /// Kills the JobMaster process outright (SIGKILL). With checkpoints, the cluster starts a
    /// new one, which takes the job over.
    pub fn kill_jobmaster(&mut self) -> Result<(), ClusterError> {
        Ok(self
            .jobmaster
            .lock()
            .expect("jobmaster lock")
            .start_kill()?)
    }

    /// Kills a worker process outright (SIGKILL), as a machine failure would.
    pub fn kill_worker(&mut self, index: usize) -> Result<(), ClusterError> {
        match self.worker_pids().get(index) {
            Some(Some(pid)) => Ok(ledger::kill(*pid)?),
            _ => Ok(()),
        }
    }

    /// Waits for the workers to exit after their JobMaster, killing the ones that do not in
    /// time; then until every line they printed is copied out. Returns how the last worker at
    /// each index ended.
    async fn wait_for_workers(&mut self) -> Vec<Option<ExitStatus>> {
        let deadline = Instant::now() + WORKER_EXIT_TIMEOUT;
        loop {
            reap_orphans(&self.workers);
            let running: Vec<Entry> = self
                .workers
                .entries()
                .into_iter()
                .filter(Entry::running)
                .collect();
            if running.is_empty() {
                // Those that exited since the pass above are zombies until waited for.
                reap_orphans(&self.workers);
                break;
            }
            if Instant::now() > deadline {
                for worker in running {
                    warn!(worker = %worker.id, "worker did not exit after its JobMaster; killed it");
                    let _ = self.workers.ended(&worker.id, Ended::Killed);
                    kill_and_reap(worker.pid).await;
                }
                continue;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(output) = self.output.take() {
            let _ = tokio::task::spawn_blocking(move || output.finish()).await;
        }
        self.workers
            .latest()
            .into_iter()
            .map(|entry| match entry.and_then(|e| e.ended) {
                Some(Ended::Exited(status)) => Some(status),
                Some(Ended::Killed) | None => None,
            })
            .collect()
    }

    /// Waits for the JobMaster to end the job, then for the workers to exit.
    pub async fn wait(mut self) -> Result<ClusterOutcome, ClusterError> {
        // A JobMaster that died before ending the job is replaced by the supervisor (with
        // checkpoints), unless it ran out of replacements: then the dead one stays.
        let mut dead_since: Option<Instant> = None;
        let jobmaster_exit = loop {
            let exit = self.jobmaster.lock().expect("jobmaster lock").try_wait()?;
            match exit {
                Some(exit) if self.spec.checkpoints.is_none() || job_over(&self.spec) => {
                    break exit;
                }
                Some(exit) if dead_since.is_some_and(|t| t.elapsed() > 10 * SUPERVISE_INTERVAL) => {
                    break exit;
                }
                Some(_) => {
                    dead_since.get_or_insert_with(Instant::now);
                }
                None => dead_since = None,
            }
            tokio::time::sleep(SUPERVISE_INTERVAL / 2).await;
        };
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        let worker_exits = self.wait_for_workers().await;
        let bytes = std::fs::read(self.spec.work_dir.join("status.pb")).map_err(|_| {
            ClusterError::NoFinalStatus {
                status: jobmaster_exit,
                log: log_tail(&self.log_path("jobmaster"), 20),
            }
        })?;
        let status =
            JobStatus::decode(bytes.as_slice()).map_err(|e| ClusterError::Rpc(e.to_string()))?;
        Ok(ClusterOutcome {
            status,
            jobmaster_exit,
            worker_exits,
        })
    }
}

impl Drop for LocalCluster {
    /// A cluster dropped before its job ended (a test that failed) takes its workers along.
    fn drop(&mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        for worker in self.workers.entries().into_iter().filter(Entry::running) {
            let _ = ledger::kill(worker.pid);
        }
    }
}
