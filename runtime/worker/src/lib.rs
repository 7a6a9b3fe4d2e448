//! The worker process: offers slots to its job's JobMaster, runs the subtasks deployed to it (one
//! thread each), serves their output to other workers, and reports state and metrics upwards.

mod checkpoints;
mod config;
mod deploy;
mod faults;
mod jobmaster;
mod local_recovery;
mod service;
mod tasks;

pub use config::WorkerConfig;
pub use faults::InjectedFailure;

use std::sync::Arc;

use anyhow::Context;
use spate_network::{DataServer, Exchange};
use spate_proto::v1::worker_server::WorkerServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{Instrument, Span, info, info_span};

use crate::jobmaster::JobMasterLink;
use crate::service::WorkerService;
use crate::tasks::TaskManager;

/// Runs a worker until its job is over (the JobMaster says so), the JobMaster is lost, or the
/// process is asked to stop.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let exchange = Exchange::new(config.exchange);
    run_with_exchange(config, exchange).await
}

/// [`run`] on an exchange the caller made, so that it can look into the exchange's partition
/// registry (the in-process cluster's tests do).
pub async fn run_with_exchange(config: WorkerConfig, exchange: Exchange) -> anyhow::Result<()> {
    let span = info_span!("worker", id = %config.worker_id);
    serve(config, exchange).instrument(span).await
}

async fn serve(config: WorkerConfig, exchange: Exchange) -> anyhow::Result<()> {
    let data = DataServer::start(
        &format!("{}:0", config.bind_host),
        exchange.registry.clone(),
    )
    .await
    .context("starting the data exchange server")?;
    let listener = TcpListener::bind(format!("{}:{}", config.bind_host, config.control_port))
        .await
        .context("binding the worker's control port")?;
    let control_address = listener.local_addr()?.to_string();
    let data_address = data.local_addr().to_string();
    info!(%control_address, %data_address, slots = config.slots, "worker starting");

    let link = JobMasterLink::connect(&config, &control_address, &data_address).await?;
    let tasks = Arc::new(TaskManager::new(
        config.worker_id.clone(),
        exchange,
        data_address,
        link.reporter(),
        config.state_dir.clone(),
        config.inject_failure,
    ));
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let service = WorkerService::new(tasks.clone(), shutdown.clone(), link.address());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(WorkerServer::new(service))
            .serve_with_incoming(TcpListenerStream::new(listener))
            // Deployments run in the handlers: their task spans sit in the worker's.
            .instrument(Span::current()),
    );

    let outcome = tokio::select! {
        ended = link.heartbeats(tasks.clone()) => ended,
        _ = shutdown.notified() => Ok("the JobMaster asked this worker to shut down".to_string()),
        _ = terminate() => Ok("terminated by signal".to_string()),
    };
    tasks.cancel_all().await;
    server.abort();
    match outcome {
        Ok(reason) => {
            info!(%reason, "worker stopping");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn terminate() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
