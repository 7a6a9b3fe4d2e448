//! The JobMaster process's job: builds it, serves the gRPC API, runs the job's phases on the
//! owner's task, shuts its workers down and keeps serving the status when asked to.

use anyhow::{Context, bail};
use prost::Message;
use spate_checkpoint::CompletedSnapshot;
use spate_graph::JobGraph;
use spate_proto::v1::JobStatus;
use spate_proto::v1::job_master_server::JobMasterServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{Instrument, Span, error, info, info_span};

use crate::cancel::shut_down_workers;
use crate::checkpoint::{Coordinator, check_compatible, resolve};
use crate::config::JobMasterConfig;
use crate::failover::{FailoverPlanner, RestartBackoff};
use crate::owner::Owner;
use crate::phases::{Job, drive};
use crate::record::JobRecord;
use crate::service::JobMasterService;
use crate::workers::Workers;

/// Checkpoint acknowledgements carry state handles: allow more than gRPC's default 4 MiB.
const MAX_MESSAGE: usize = 256 << 20;

/// Runs the job to its end and returns its final status. An `Err` means the job could not even
/// be built (bad job name, arguments or graph, a checkpoint to restore that does not fit):
/// nothing was started. With `keep_serving`, that failure is the job's status instead, and the
/// status stays readable until the process is stopped.
pub async fn run(config: JobMasterConfig) -> anyhow::Result<JobStatus> {
    let span = info_span!("job", job = %config.job_id);
    run_job(config).instrument(span).await
}

async fn run_job(config: JobMasterConfig) -> anyhow::Result<JobStatus> {
    let prepared = prepare(&config).await;
    if let Err(e) = &prepared
        && !config.keep_serving
    {
        bail!("{e:#}");
    }
    let (mut owner, handle) = Owner::new(JobRecord::new(&config.job_id, &config.job_name));
    let listener = TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("binding the JobMaster to {}", config.bind))?;
    let address = listener.local_addr()?.to_string();
    let service = JobMasterService {
        owner: handle,
        job_id: config.job_id.clone(),
        heartbeat_interval: config.heartbeat_interval,
    };
    // The handlers log in the job's span too (a task failure names its task as fields).
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JobMasterServer::new(service).max_decoding_message_size(MAX_MESSAGE))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .instrument(Span::current()),
    );
    if let Some(path) = &config.address_file {
        // Written whole and renamed, so a reader never sees half an address.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &address)?;
        std::fs::rename(&partial, path)?;
    }
    let advertised = config.advertise.clone().unwrap_or(address);
    info!(address = %advertised, "JobMaster listening");

    let mut resources = config.resources.build(&config.job_id);
    match prepared {
        Ok(Prepared {
            graph,
            coordinator,
            restore,
        }) => {
            let parallelism = graph.vertices.iter().map(|v| v.parallelism).max();
            owner.record().parallelism = parallelism.unwrap_or(0);
            let job = Job {
                config: &config,
                graph: &graph,
                owner: &mut owner,
                workers: Workers {
                    resources: resources.as_mut(),
                    jobmaster: &advertised,
                },
                coordinator,
                planner: FailoverPlanner::new(&graph, config.failover),
                backoff: RestartBackoff::new(config.restart.clone()),
                attempt: 0,
                restore,
            };
            drive(job).await;
            shut_down_workers(&mut owner).await;
        }
        Err(e) => {
            error!(error = %format!("{e:#}"), "the job cannot be built");
            owner.record().fail(format!("{e:#}"));
        }
    }
    // The job is over: a savepoint asked for from now on, or still waiting, is answered that
    // the job ended; a cancel changes nothing.
    owner.job_over();
    owner.publish();
    let status = owner.view().status();
    if let Some(path) = &config.status_file {
        std::fs::write(path, status.encode_to_vec())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if config.keep_serving {
        info!(state = ?status.state(), "the job is over; serving its status until stopped");
        owner.serve_until(terminated()).await;
    }
    drop(resources);
    server.abort();
    Ok(status)
}

/// What a job needs before it can start: its graph, its checkpoint coordinator, and the
/// snapshot it starts from.
struct Prepared {
    graph: JobGraph,
    coordinator: Option<Coordinator>,
    restore: Option<CompletedSnapshot>,
}

async fn prepare(config: &JobMasterConfig) -> anyhow::Result<Prepared> {
    let stream = spate_jobs::build(&config.job_name, &config.job_args)?;
    let graph = JobGraph::build(stream).with_context(|| format!("job '{}'", config.job_name))?;
    info!(plan = %graph.explain(), "job graph");
    let coordinator = match &config.checkpointing {
        Some(settings) => Some(Coordinator::new(settings.clone(), &config.job_id, &graph).await?),
        None => None,
    };
    // A recovering JobMaster goes on from the job's own latest checkpoint; the snapshot the job
    // was first started from (`--from`) only counts while the job has none.
    let latest = match (&coordinator, config.recover) {
        (Some(coordinator), true) => coordinator.latest(),
        _ => None,
    };
    let restore = match (&config.restore_from, &coordinator) {
        _ if latest.is_some() => latest,
        (None, _) => None,
        (Some(_), None) => bail!("restoring needs checkpoint storage to read from"),
        (Some(location), Some(coordinator)) => {
            let snapshot = resolve(coordinator.storage(), location).await?;
            check_compatible(&snapshot, &graph)?;
            info!(location = %snapshot.location, "restoring");
            Some(snapshot)
        }
    };
    Ok(Prepared {
        graph,
        coordinator,
        restore,
    })
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
