use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "spate", version, about = "Spate: a stream processing runtime")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a job on an embedded local cluster (one JobMaster and workers as child processes).
    Run(RunArgs),
    /// Run a job's JobMaster.
    Jobmaster(Box<JobMasterArgs>),
    /// Run a worker that offers slots to a JobMaster.
    Worker(WorkerArgs),
    /// List the jobs built into this binary.
    Jobs,
    /// Print a job's graph: vertices (operator chains) with parallelism, and edges.
    Explain(JobArgs),
    /// Measure throughput of built-in pipelines on the embedded cluster.
    Bench(BenchArgs),
    /// Measure recovery from a failed task, a killed worker and a killed JobMaster with large
    /// keyed state.
    BenchFailover(BenchFailoverArgs),
    /// Take a savepoint of a running job and print its location.
    Savepoint(SavepointArgs),
}

#[derive(Args, Clone)]
pub struct JobArgs {
    /// A Flink SQL script to run (CREATE TABLE, CREATE VIEW, INSERT INTO statements).
    #[arg(value_name = "JOB.sql", conflicts_with = "job")]
    pub sql_file: Option<PathBuf>,
    /// A job from `spate jobs`.
    #[arg(long, default_value = "window-count")]
    pub job: String,
    /// A job argument, KEY=VALUE; repeat for more.
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub args: Vec<(String, String)>,
    /// Parallelism of the job's operators (sets the job argument `parallelism`).
    #[arg(short, long)]
    pub parallelism: Option<u32>,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Worker processes to keep running; by default enough for the parallelism (the JobMaster
    /// starts more when the job needs more slots).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// Slots per worker.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: u32,
    /// Logs and state of the run; by default a fresh temporary directory, removed when the job
    /// finishes (kept when it fails or took a savepoint).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the temporary work directory after the job finishes.
    #[arg(long)]
    pub keep_work_dir: bool,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
}

/// Checkpoints: exactly-once state and output, and recovery from failures.
#[derive(Args, Clone)]
pub struct CheckpointArgs {
    /// Take a checkpoint this often; 0 takes none (no recovery, sinks commit at the end).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_interval_ms: u64,
    /// Checkpoint storage: file:///dir, s3://bucket/prefix, gs://..., az://... (by default a
    /// directory under the work directory for `spate run`).
    #[arg(long)]
    pub checkpoint_dir: Option<String>,
    /// A storage option, KEY=VALUE (endpoint, region, allow_http, credentials_file, ...).
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub storage_options: Vec<(String, String)>,
    /// Checkpoints that may fail in a row before the job restarts from the latest completed
    /// one (Flink's execution.checkpointing.tolerable-failed-checkpoints).
    #[arg(long, default_value_t = 3)]
    pub tolerable_failed_checkpoints: u32,
    /// Keyed state backend: heap or rocksdb.
    #[arg(long, default_value = "heap", value_parser = ["heap", "rocksdb"])]
    pub state_backend: String,
    /// Restarts from the latest checkpoint before the job fails for good (for failure-rate:
    /// failures allowed per interval).
    #[arg(long, default_value_t = 10)]
    pub max_restarts: u32,
    /// none, fixed-delay, exponential-delay or failure-rate.
    #[arg(long, default_value = "fixed-delay")]
    pub restart_strategy: String,
    /// Delay before a restart (the first one for exponential-delay).
    #[arg(long, default_value_t = 500)]
    pub restart_delay_ms: u64,
    /// Longest delay of exponential-delay.
    #[arg(long, default_value_t = 30_000)]
    pub restart_max_delay_ms: u64,
    /// failure-rate's interval; exponential-delay's quiet time before its delay resets.
    #[arg(long, default_value_t = 60_000)]
    pub restart_interval_ms: u64,
    /// What restarts after a failure: region (the failed tasks' pipelined regions) or full.
    #[arg(long, default_value = "region")]
    pub failover: String,
    /// Start from this checkpoint or savepoint (its directory or its _metadata file).
    #[arg(long)]
    pub from: Option<String>,
}

#[derive(Args)]
pub struct JobMasterArgs {
    #[command(flatten)]
    pub job: JobArgs,
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: String,
    /// The address workers reach this JobMaster at, when not the bound one (a pod binds
    /// 0.0.0.0 and is reached at its IP: `--advertise $(POD_IP):6123`).
    #[arg(long)]
    pub advertise: Option<String>,
    /// After the job ended (or could not be built), keep serving its status until stopped
    /// (SIGTERM), so that an orchestrator reads why instead of restarting the JobMaster.
    #[arg(long)]
    pub keep_serving: bool,
    /// Write the bound address here once listening.
    #[arg(long)]
    pub address_file: Option<PathBuf>,
    /// Write the final job status (protobuf) here.
    #[arg(long)]
    pub status_file: Option<PathBuf>,
    #[arg(long, default_value_t = 5000)]
    pub heartbeat_timeout_ms: u64,
    #[arg(long, default_value_t = 60)]
    pub slot_timeout_s: u64,
    /// The job's id, which names its checkpoint directory (by default NAME-PID).
    #[arg(long)]
    pub job_id: Option<String>,
    /// Replace a JobMaster of the same job id that died: adopt the tasks its workers kept
    /// running, or restore the job's latest completed checkpoint.
    #[arg(long)]
    pub recover: bool,
    /// Where workers come from: standalone (they are started elsewhere and register), local
    /// (this JobMaster starts worker processes for the slots the job needs, and replaces them)
    /// or kubernetes (worker pods in the JobMaster's namespace, from --worker-pod-template).
    #[arg(long, default_value = "standalone")]
    pub resource_manager: String,
    /// Slots of each worker a local resource manager starts.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub worker_slots: u32,
    /// Logs (`logs/<worker>.log`), printed output (`logs/<worker>.out`), state
    /// (`state/<job id>/<worker>`) and process ledger (`processes/<job id>`) of the workers a
    /// local resource manager starts (by default a directory in the system's temporary
    /// directory). A JobMaster that recovers the job (`--recover`) adopts the running workers
    /// its ledger in the same directory lists.
    #[arg(long)]
    pub workers_dir: Option<PathBuf>,
    /// Where the local resource manager's workers keep their state instead of
    /// `<workers dir>/state` (`<dir>/<job id>/<worker>`).
    #[arg(long)]
    pub worker_state_dir: Option<PathBuf>,
    /// Workers a local resource manager keeps running even when the job needs fewer slots.
    #[arg(long, default_value_t = 0)]
    pub min_workers: u32,
    /// A `spate worker` argument for every worker a local resource manager starts
    /// (`--worker-arg=--credits=4`); repeat for more.
    #[arg(long, allow_hyphen_values = true)]
    pub worker_arg: Vec<String>,
    /// The Pod manifest (JSON) the kubernetes resource manager completes for each worker.
    #[arg(long, default_value = "/etc/spate/worker-pod.json")]
    pub worker_pod_template: PathBuf,
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
}

#[derive(Args)]
pub struct WorkerArgs {
    /// The JobMaster's address, host:port.
    #[arg(long)]
    pub jobmaster: String,
    /// Fail the first ATTEMPTS (default 1) attempts of subtask SUBTASK of vertex VERTEX after
    /// they read RECORDS records, or before they connect their inputs with RECORDS `connect`
    /// (VERTEX/SUBTASK/RECORDS[/ATTEMPTS]): recovery tests and benchmarks.
    #[arg(long, hide = true, value_parser = spate_worker::InjectedFailure::parse)]
    pub inject_failure: Option<spate_worker::InjectedFailure>,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: u32,
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Port of the worker's control (gRPC) service; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub control_port: u16,
    /// Elements a subpartition queue holds before its producer waits.
    #[arg(long, default_value_t = 4)]
    pub queue_capacity: usize,
    /// Credits each remote input channel grants.
    #[arg(long, default_value_t = 2)]
    pub credits: u32,
    /// Give up when the JobMaster has not answered for this long.
    #[arg(long, default_value_t = 15)]
    pub jobmaster_timeout_s: u64,
    /// Where tasks keep local state; a temporary directory by default.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct SavepointArgs {
    /// The JobMaster's address, host:port (the embedded cluster writes it to
    /// <work dir>/jobmaster.addr).
    #[arg(long)]
    pub jobmaster: String,
    /// Stop the job once the savepoint completes (nothing is committed after it).
    #[arg(long)]
    pub stop: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Events per run.
    #[arg(long, default_value_t = 20_000_000)]
    pub events: u64,
    /// Append the results as a Markdown table to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Run only the pipelines whose name contains this text.
    #[arg(long)]
    pub only: Option<String>,
}

#[derive(Args)]
pub struct BenchFailoverArgs {
    /// Checkpointed keyed state per window task to build up before each failure, in MB.
    #[arg(long, default_value_t = 100)]
    pub state_mb: u64,
    /// Events per second per source subtask.
    #[arg(long, default_value_t = 200_000)]
    pub rate: u64,
    /// Distinct keys of the generator; by default ten times the keys the target state holds.
    #[arg(long)]
    pub keys: Option<u64>,
    #[arg(long, default_value_t = 3000)]
    pub checkpoint_interval_ms: u64,
    /// A worker silent for this long is lost.
    #[arg(long, default_value_t = 3000)]
    pub heartbeat_timeout_ms: u64,
    /// Append the results as a Markdown table to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// `RUST_LOG` of the cluster's JobMaster and workers.
    #[arg(long, default_value = "warn")]
    pub log_filter: String,
    /// Keep every scenario's logs (its state and checkpoints are removed), to trace a recovery.
    #[arg(long)]
    pub keep_logs: bool,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))
}
