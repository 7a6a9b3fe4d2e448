use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use spate_cluster::{CheckpointSpec, ClusterSpec, LocalCluster, log_tail};
use spate_graph::JobGraph;
use spate_jobmaster::{
    CheckpointSettings, FailoverScope, JobMasterConfig, LocalSettings, ResourceSettings,
    RestartStrategy,
};
use spate_network::ExchangeConfig;
use spate_proto::v1::job_master_client::JobMasterClient;
use spate_proto::v1::{JobState, TriggerSavepointRequest};
use spate_worker::WorkerConfig;

use crate::cli::{CheckpointArgs, Cli, JobArgs, JobMasterArgs, RunArgs, SavepointArgs, WorkerArgs};
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
    if matches!(state, JobState::Finished | JobState::Stopped) {
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
    // A directory of our own making is removed after a clean end; one the user named is theirs.
    let temporary = args.work_dir.is_none() && !args.keep_work_dir;
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
    spec.checkpoints = checkpoint_spec(&args.checkpoints);
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
            // No answer while a dead JobMaster is being replaced: the line waits for the new
            // one, and ends only when the job is over.
            let Ok(status) = cluster.status().await else {
                if cluster.job_over() {
                    break;
                }
                continue;
            };
            eprint!("\r{}", progress.line(&status));
            if JobState::try_from(status.state).is_ok_and(|s| {
                matches!(
                    s,
                    JobState::Finished | JobState::Failed | JobState::Canceled | JobState::Stopped
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
    if !matches!(state, JobState::Finished | JobState::Stopped) {
        eprintln!("JobMaster log (last lines):\n{}", log_tail(&log, 15));
    }
    // Only a finished job that took no savepoint leaves nothing worth keeping: savepoints
    // belong to the user (they may be in there), and a failed job's logs say why it failed.
    let savepoint_taken = outcome
        .status
        .checkpoints
        .as_ref()
        .is_some_and(|c| c.savepoint_id > 0);
    if temporary && state == JobState::Finished && !savepoint_taken {
        if let Err(e) = std::fs::remove_dir_all(&work_dir) {
            eprintln!("spate: could not remove {}: {e}", work_dir.display());
        }
    } else {
        eprintln!("spate: logs and state kept in {}", work_dir.display());
    }
    Ok(exit_code(state))
}

pub async fn jobmaster(args: JobMasterArgs) -> anyhow::Result<ExitCode> {
    let (name, job_args) = job_spec(&args.job)?;
    let local_only = [
        ("--workers-dir", args.workers_dir.is_some()),
        ("--worker-state-dir", args.worker_state_dir.is_some()),
        ("--min-workers", args.min_workers > 0),
        ("--worker-arg", !args.worker_arg.is_empty()),
    ];
    if args.resource_manager != "local"
        && let Some((flag, _)) = local_only.iter().find(|(_, given)| *given)
    {
        anyhow::bail!("{flag} is an option of --resource-manager local");
    }
    let local = match args.resource_manager.as_str() {
        "local" => Some(local_settings(&args)?),
        _ => None,
    };
    let mut config = JobMasterConfig::new(&name, job_args);
    config.bind = args.bind;
    config.advertise = args.advertise;
    config.keep_serving = args.keep_serving;
    config.address_file = args.address_file;
    config.status_file = args.status_file;
    config.heartbeat_timeout = Duration::from_millis(args.heartbeat_timeout_ms);
    config.slot_timeout = Duration::from_secs(args.slot_timeout_s);
    if let Some(id) = args.job_id {
        config.job_id = id;
    }
    config.recover = args.recover;
    config.resources = match (args.resource_manager.as_str(), local) {
        (_, Some(local)) => ResourceSettings::Local(local),
        ("standalone", _) => ResourceSettings::Standalone,
        ("kubernetes", _) => {
            kubernetes_pods(args.worker_pod_template.clone(), args.worker_slots, &config).await?
        }
        (other, _) => {
            anyhow::bail!("--resource-manager: unknown '{other}' (standalone, local, kubernetes)")
        }
    };
    let checkpoints = &args.checkpoints;
    if checkpoints.checkpoint_interval_ms > 0 || checkpoints.from.is_some() {
        let url = checkpoints
            .checkpoint_dir
            .clone()
            .context("--checkpoint-dir is needed with --checkpoint-interval-ms or --from")?;
        let interval = match checkpoints.checkpoint_interval_ms {
            // Restoring without periodic checkpoints: only the final one.
            0 => Duration::MAX,
            ms => Duration::from_millis(ms),
        };
        let mut settings = CheckpointSettings::new(url, interval);
        settings.storage_options = checkpoints.storage_options.iter().cloned().collect();
        settings.state_backend = checkpoints.state_backend.clone();
        settings.tolerable_failures = checkpoints.tolerable_failed_checkpoints;
        config.checkpointing = Some(settings);
        config.restart = RestartStrategy::parse(
            &checkpoints.restart_strategy,
            checkpoints.max_restarts,
            Duration::from_millis(checkpoints.restart_delay_ms),
            Duration::from_millis(checkpoints.restart_max_delay_ms),
            Duration::from_millis(checkpoints.restart_interval_ms),
        )
        .map_err(|e| anyhow::anyhow!("--restart-strategy: {e}"))?;
        config.failover = FailoverScope::parse(&checkpoints.failover)
            .map_err(|e| anyhow::anyhow!("--failover: {e}"))?;
        config.restore_from = checkpoints.from.clone();
    }
    let status = spate_jobmaster::run(config).await?;
    let state = JobState::try_from(status.state).unwrap_or(JobState::Failed);
    if !matches!(state, JobState::Finished | JobState::Stopped) {
        eprintln!(
            "job {} ended {:?}: {}",
            status.job_id, state, status.failure
        );
    }
    Ok(exit_code(state))
}

/// Worker processes of this binary, children of the JobMaster; their arguments are checked
/// here, so that a mistake stops the JobMaster instead of every worker it starts.
fn local_settings(args: &JobMasterArgs) -> anyhow::Result<LocalSettings> {
    let dir = args.workers_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("spate-workers-{}", std::process::id()))
    });
    let probe = ["spate", "worker", "--jobmaster", "127.0.0.1:1"]
        .into_iter()
        .map(String::from)
        .chain(args.worker_arg.iter().cloned());
    if let Err(e) = Cli::try_parse_from(probe) {
        let error = e.to_string();
        let first = error.lines().next().unwrap_or_default();
        anyhow::bail!("--worker-arg: {}", first.trim_start_matches("error: "));
    }
    Ok(LocalSettings {
        binary: std::env::current_exe().context("finding the spate binary")?,
        slots_per_worker: args.worker_slots,
        min_workers: args.min_workers,
        worker_args: args.worker_arg.clone(),
        state_root: args
            .worker_state_dir
            .clone()
            .unwrap_or_else(|| dir.join("state")),
        log_dir: dir.join("logs"),
        ledger_root: dir.join("processes"),
    })
}

/// Worker pods in the JobMaster's own namespace, owned by its Deployment (both from the
/// downward API environment the operator sets).
async fn kubernetes_pods(
    template: std::path::PathBuf,
    slots_per_worker: u32,
    config: &JobMasterConfig,
) -> anyhow::Result<ResourceSettings> {
    let namespace = std::env::var("POD_NAMESPACE")
        .context("POD_NAMESPACE is not set: the kubernetes resource manager runs in a pod")?;
    let jobmaster = config.advertise.clone().context(
        "--resource-manager kubernetes needs --advertise (workers reach the JobMaster there)",
    )?;
    let owner_deployment = std::env::var("SPATE_OWNER_DEPLOYMENT").ok();
    let settings = spate_kubernetes::Settings {
        namespace,
        template,
        slots_per_worker,
        jobmaster,
        name_prefix: owner_deployment
            .clone()
            .unwrap_or_else(|| spate_kubernetes::job_label(&config.job_id)),
        owner_deployment,
    };
    let connected = spate_kubernetes::connect(settings).await?;
    Ok(ResourceSettings::External {
        name: "kubernetes".into(),
        build: std::sync::Arc::new(move |job_id: &str| {
            Box::new(spate_kubernetes::KubernetesPods::start(
                connected.clone(),
                job_id,
            )) as Box<dyn spate_jobmaster::ResourceManager>
        }),
    })
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let mut config = WorkerConfig::new(args.jobmaster, args.slots);
    if let Some(id) = args.id {
        config.worker_id = id;
    }
    config.bind_host = args.bind_host;
    config.control_port = args.control_port;
    config.inject_failure = args.inject_failure;
    config.jobmaster_timeout = Duration::from_secs(args.jobmaster_timeout_s);
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    config.exchange = ExchangeConfig {
        queue_capacity: args.queue_capacity,
        credits_per_channel: args.credits,
    };
    spate_worker::run(config).await?;
    Ok(ExitCode::SUCCESS)
}

/// The embedded cluster's checkpointing, from `spate run`'s flags.
fn checkpoint_spec(args: &CheckpointArgs) -> Option<CheckpointSpec> {
    if args.checkpoint_interval_ms == 0 && args.from.is_none() {
        return None;
    }
    // Restoring without a storage named: the snapshot's own storage root, which holds the files
    // it shares with earlier checkpoints; the new run's checkpoints go there too.
    let storage_url = args
        .checkpoint_dir
        .clone()
        .or_else(|| args.from.as_deref().and_then(snapshot_root));
    Some(CheckpointSpec {
        storage_url,
        storage_options: args.storage_options.iter().cloned().collect(),
        interval_ms: args.checkpoint_interval_ms,
        state_backend: args.state_backend.clone(),
        restart: vec![
            "--max-restarts".into(),
            args.max_restarts.to_string(),
            "--restart-strategy".into(),
            args.restart_strategy.clone(),
            "--restart-delay-ms".into(),
            args.restart_delay_ms.to_string(),
            "--restart-max-delay-ms".into(),
            args.restart_max_delay_ms.to_string(),
            "--restart-interval-ms".into(),
            args.restart_interval_ms.to_string(),
            "--failover".into(),
            args.failover.clone(),
        ],
        restore_from: args.from.clone(),
    })
}

/// The storage root of a checkpoint (`<root>/<job>/chk-<id>`) or savepoint
/// (`<root>/<job>/savepoints/sp-<id>-<nonce>`), given as a URL or a local path, with or without
/// its `_metadata` file; `None` when `location` is not shaped like one.
fn snapshot_root(location: &str) -> Option<String> {
    let url = match location.contains("://") {
        true => location.trim().to_string(),
        false => {
            let path = std::path::absolute(location.trim()).ok()?;
            format!("file://{}", path.display())
        }
    };
    let mut parts: Vec<&str> = url.trim_end_matches('/').split('/').collect();
    if parts.last() == Some(&"_metadata") {
        parts.pop();
    }
    let depth = match parts.as_slice() {
        [.., _job, dir] if dir.starts_with("chk-") => 2,
        [.., _job, "savepoints", dir] if dir.starts_with("sp-") => 3,
        _ => return None,
    };
    let root = parts[..parts.len() - depth].join("/");
    // A root must keep a path after the scheme's `//`.
    (root.len() > root.find("://")? + 3).then_some(root)
}

pub async fn savepoint(args: SavepointArgs) -> anyhow::Result<ExitCode> {
    let mut client = JobMasterClient::connect(format!("http://{}", args.jobmaster))
        .await
        .with_context(|| format!("connecting to the JobMaster at {}", args.jobmaster))?;
    let response = client
        .trigger_savepoint(TriggerSavepointRequest { stop: args.stop })
        .await
        .map_err(|status| anyhow::anyhow!("savepoint failed: {}", status.message()))?
        .into_inner();
    let stopped = if args.stop { "; the job stops" } else { "" };
    eprintln!("savepoint {} complete{stopped}", response.checkpoint_id);
    println!("{}", response.location);
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

#[cfg(test)]
mod tests {
    use super::snapshot_root;

    #[test]
    fn a_snapshot_names_its_storage_root() {
        for (location, root) in [
            ("/data/cp/job-1/chk-7", Some("file:///data/cp")),
            ("/data/cp/job-1/chk-7/_metadata", Some("file:///data/cp")),
            (
                "/data/cp/job-1/savepoints/sp-3-ab12/",
                Some("file:///data/cp"),
            ),
            ("s3://bucket/prefix/job/chk-2", Some("s3://bucket/prefix")),
            (
                "file:///cp/job/savepoints/sp-1-x/_metadata",
                Some("file:///cp"),
            ),
            ("/data/cp/job-1", None),
            ("s3://job/chk-2", None),
        ] {
            assert_eq!(snapshot_root(location).as_deref(), root, "{location}");
        }
    }
}
