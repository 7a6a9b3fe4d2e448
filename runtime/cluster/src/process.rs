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
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the JobMaster's status: {0}")]
    Rpc(String),
    #[error("the JobMaster exited with {status} without a final status; its log ends:\n{log}")]
    NoFinalStatus { status: ExitStatus, log: String },
}

pub struct LocalCluster {
    spec: ClusterSpec,
    jobmaster: Arc<Mutex<Child>>,
    workers: Arc<Mutex<Vec<Child>>>,
    forwarders: Forwarders,
    /// Replaces dead workers while the job may recover (with checkpoints only).
    supervisor: Option<JoinHandle<()>>,
    address: String,
    client: Option<JobMasterClient<Channel>>,
}

/// The tasks copying workers' standard output to ours (`forward_stdout`), one per worker
/// process started; awaited before the cluster's end is reported, so that every line a worker
/// wrote (every row a print sink accepted) is out by then.
type Forwarders = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// How the cluster ended.
#[derive(Debug)]
pub struct ClusterOutcome {
    pub status: JobStatus,
    pub jobmaster_exit: ExitStatus,
    /// Exit of each worker; `None` for one that had to be killed because it did not exit.
    pub worker_exits: Vec<Option<ExitStatus>>,
}

fn child_command(spec: &ClusterSpec, log: &Path) -> Result<Command, ClusterError> {
    let mut command = Command::new(&spec.binary);
    let file = File::create(log)?;
    command
        .env("RUST_LOG", &spec.log_filter)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true);
    die_with_parent(&mut command);
    Ok(command)
}

/// On Linux the kernel kills the child when the thread that spawned it (a runtime thread of this
/// process) exits, so children never outlive the parent even when it is killed with SIGKILL.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Elsewhere (macOS) there is no parent-death signal: children are still killed when the cluster
/// is dropped (`kill_on_drop`), but a parent killed with SIGKILL leaves them running.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// Copies a child's output to ours line by line, so lines of different workers never interleave.
async fn forward_lines(stdout: tokio::process::ChildStdout) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut lines = BufReader::new(stdout).lines();
    let mut out = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        if out.write_all(format!("{line}\n").as_bytes()).await.is_err() {
            return;
        }
    }
    // Tokio's stdout hands writes to a blocking thread: the last ones are out only once flushed.
    let _ = out.flush().await;
}

fn spawn_worker(
    spec: &ClusterSpec,
    jobmaster: &str,
    index: usize,
    generation: u32,
    forwarders: &Forwarders,
) -> Result<Child, ClusterError> {
    let name = match generation {
        0 => format!("worker-{index}"),
        g => format!("worker-{index}.{g}"),
    };
    let mut command = child_command(spec, &spec.work_dir.join(format!("logs/{name}.log")))?;
    let state_root = spec
        .state_dir
        .clone()
        .unwrap_or_else(|| spec.work_dir.join("state"));
    command
        .arg("worker")
        .arg("--jobmaster")
        .arg(jobmaster)
        .arg("--slots")
        .arg(spec.slots_per_worker.to_string())
        .arg("--id")
        .arg(&name)
        .arg("--queue-capacity")
        .arg(spec.queue_capacity.to_string())
        .arg("--credits")
        .arg(spec.credits_per_channel.to_string())
        .arg("--state-dir")
        .arg(state_root.join(&name));
    if let Some(failure) = &spec.inject_failure {
        command.arg("--inject-failure").arg(failure);
    }
    if spec.forward_stdout {
        command.stdout(Stdio::piped());
    }
    let mut worker = command
        .spawn()
        .map_err(|source| ClusterError::Spawn { role: name, source })?;
    if let Some(stdout) = worker.stdout.take() {
        let forwarder = tokio::spawn(forward_lines(stdout));
        forwarders.lock().expect("forwarders lock").push(forwarder);
    }
    Ok(worker)
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
    let mut command = child_command(spec, &log)?;
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
        .arg(spec.heartbeat_timeout_ms.to_string());
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

/// Starts a new worker in place of each one that died (as a resource manager would ask for a
/// new machine), so the JobMaster finds slots to restart the job in; and a new JobMaster in
/// place of one that died before it ended the job, at the same address, which takes the job
/// over from the workers (as Kubernetes restarts a JobMaster pod).
async fn supervise(
    spec: ClusterSpec,
    job_id: String,
    jobmaster: String,
    jobmasters: Arc<Mutex<Child>>,
    workers: Arc<Mutex<Vec<Child>>>,
    forwarders: Forwarders,
) {
    let mut generations = vec![0u32; spec.workers as usize];
    let mut jobmaster_generation = 0;
    loop {
        tokio::time::sleep(SUPERVISE_INTERVAL).await;
        {
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
        let mut workers = workers.lock().expect("workers lock");
        for (index, worker) in workers.iter_mut().enumerate() {
            let Ok(Some(exit)) = worker.try_wait() else {
                continue;
            };
            if exit.success() {
                continue;
            }
            generations[index] += 1;
            warn!(worker = index, %exit, "worker died; starting a replacement");
            match spawn_worker(&spec, &jobmaster, index, generations[index], &forwarders) {
                Ok(replacement) => *worker = replacement,
                Err(e) => warn!(worker = index, error = %e, "cannot start a replacement worker"),
            }
        }
    }
}

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

        let forwarders = Forwarders::default();
        let mut workers = Vec::new();
        for index in 0..spec.workers {
            workers.push(spawn_worker(
                &spec,
                &address,
                index as usize,
                0,
                &forwarders,
            )?);
        }
        let workers = Arc::new(Mutex::new(workers));
        let jobmaster = Arc::new(Mutex::new(jobmaster));
        let supervisor = spec.checkpoints.is_some().then(|| {
            tokio::spawn(supervise(
                spec.clone(),
                job_id,
                address.clone(),
                jobmaster.clone(),
                workers.clone(),
                forwarders.clone(),
            ))
        });
        Ok(LocalCluster {
            spec,
            jobmaster,
            workers,
            forwarders,
            supervisor,
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

    pub fn worker_pids(&self) -> Vec<Option<u32>> {
        self.workers
            .lock()
            .expect("workers lock")
            .iter()
            .map(Child::id)
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
        Ok(self.workers.lock().expect("workers lock")[index].start_kill()?)
    }

    /// Waits for the JobMaster to end the job, then for the workers to exit.
    pub async fn wait(mut self) -> Result<ClusterOutcome, ClusterError> {
        // A JobMaster that died before ending the job is replaced by the supervisor, unless it
        // ran out of replacements: then the dead one stays.
        let mut dead_since: Option<Instant> = None;
        let jobmaster_exit = loop {
            let exit = self.jobmaster.lock().expect("jobmaster lock").try_wait()?;
            match exit {
                Some(exit) if self.supervisor.is_none() || job_over(&self.spec) => break exit,
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
        let mut workers = std::mem::take(&mut *self.workers.lock().expect("workers lock"));
        let mut worker_exits = Vec::new();
        for (index, worker) in workers.iter_mut().enumerate() {
            match tokio::time::timeout(WORKER_EXIT_TIMEOUT, worker.wait()).await {
                Ok(exit) => worker_exits.push(Some(exit?)),
                Err(_) => {
                    warn!(
                        worker = index,
                        "worker did not exit after its JobMaster; killing it"
                    );
                    worker.start_kill()?;
                    worker.wait().await?;
                    worker_exits.push(None);
                }
            }
        }
        // Every worker has exited, so each forwarder reads to the end of its pipe and stops.
        let forwarders = std::mem::take(&mut *self.forwarders.lock().expect("forwarders lock"));
        for forwarder in forwarders {
            let _ = forwarder.await;
        }
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
