use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use spate_cluster::{ClusterSpec, LocalCluster, log_tail};
use spate_graph::JobGraph;
use spate_jobmaster::JobMasterConfig;
use spate_network::ExchangeConfig;
use spate_proto::v1::JobState;
use spate_worker::WorkerConfig;

use crate::cli::{JobArgs, JobMasterArgs, RunArgs, WorkerArgs};
use crate::progress::{Progress, Roles};

/// The job's catalog name and arguments; a SQL file becomes the `sql` job with its text.
pub fn job_spec(job: &JobArgs) -> anyhow::Result<(String, BTreeMap<String, String>)> {
    let mut args: BTreeMap<String, String> = job.args.iter().cloned().collect();
    if let Some(p) = job.parallelism {
        args.insert("parallelism".into(), p.to_string());
    }
    let name = match &job.sql_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            args.insert("sql".into(), text);
            "sql".to_string()
        }
        None => job.job.clone(),
    };
    Ok((name, args))
}

/// Builds the job here first, so that a mistake is reported before any process starts.
pub fn job_graph(job: &JobArgs) -> anyhow::Result<JobGraph> {
    let (name, args) = job_spec(job)?;
    let stream = spate_jobs::build(&name, &args)?;
    Ok(JobGraph::build(stream)?)
}

fn exit_code(state: JobState) -> ExitCode {
    if state == JobState::Finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let graph = job_graph(&args.job)?;
    let slots_needed = graph.slots_needed();
    let workers = args
        .workers
        .unwrap_or_else(|| slots_needed.div_ceil(args.slots).max(1));
    let work_dir = match args.work_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("spate-run-{}", std::process::id())),
    };
    let (name, job_args) = job_spec(&args.job)?;
    let mut spec = ClusterSpec::new(std::env::current_exe()?, &name, &work_dir);
    spec.workers = workers;
    spec.slots_per_worker = args.slots;
    spec.job_args = job_args;
    spec.forward_stdout = true;
    let label = args
        .job
        .sql_file
        .as_ref()
        .map_or(name.clone(), |p| p.display().to_string());
    eprintln!(
        "spate: running '{}' at parallelism {} on {} worker(s) x {} slot(s); logs in {}",
        label,
        slots_needed,
        workers,
        args.slots,
        work_dir.join("logs").display()
    );
    let mut cluster = LocalCluster::start(spec).await?;
    let mut progress = Progress::new(Roles::of(&graph));
    if !args.quiet {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Ok(status) = cluster.status().await else {
                break;
            };
            eprint!("\r{}", progress.line(&status));
            if JobState::try_from(status.state).is_ok_and(|s| {
                matches!(
                    s,
                    JobState::Finished | JobState::Failed | JobState::Canceled
                )
            }) {
                break;
            }
        }
        eprintln!();
    }
    let log = cluster.log_path("jobmaster");
    let outcome = cluster
        .wait()
        .await
        .with_context(|| format!("see {}", log.display()))?;
    let state = JobState::try_from(outcome.status.state).unwrap_or(JobState::Failed);
    println!("{}", progress.summary(&outcome.status));
    if state != JobState::Finished {
        eprintln!("JobMaster log (last lines):\n{}", log_tail(&log, 15));
    }
    Ok(exit_code(state))
}

pub async fn jobmaster(args: JobMasterArgs) -> anyhow::Result<ExitCode> {
    let (name, job_args) = job_spec(&args.job)?;
    let mut config = JobMasterConfig::new(&name, job_args);
    config.bind = args.bind;
    config.address_file = args.address_file;
    config.status_file = args.status_file;
    config.heartbeat_timeout = Duration::from_millis(args.heartbeat_timeout_ms);
    config.slot_timeout = Duration::from_secs(args.slot_timeout_s);
    let status = spate_jobmaster::run(config).await?;
    let state = JobState::try_from(status.state).unwrap_or(JobState::Failed);
    if state != JobState::Finished {
        eprintln!(
            "job {} ended {:?}: {}",
            status.job_id, state, status.failure
        );
    }
    Ok(exit_code(state))
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let mut config = WorkerConfig::new(args.jobmaster, args.slots);
    if let Some(id) = args.id {
        config.worker_id = id;
    }
    config.bind_host = args.bind_host;
    config.jobmaster_timeout = Duration::from_secs(args.jobmaster_timeout_s);
    config.exchange = ExchangeConfig {
        queue_capacity: args.queue_capacity,
        credits_per_channel: args.credits,
    };
    spate_worker::run(config).await?;
    Ok(ExitCode::SUCCESS)
}

pub fn list_jobs() -> anyhow::Result<ExitCode> {
    for (name, description, _) in spate_jobs::CATALOG {
        println!("{name:14} {description}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn explain(job: JobArgs) -> anyhow::Result<ExitCode> {
    print!("{}", job_graph(&job)?.explain());
    Ok(ExitCode::SUCCESS)
}
