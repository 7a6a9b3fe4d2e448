//! `spate-operator`: runs the StreamJob controller (with `--leader-election`, only while it holds
//! the lease), and serves `/metrics` (Prometheus text) and `/healthz` over HTTP.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use kube::{Client, CustomResourceExt};
use prometheus_client::registry::Registry;
use spate_operator::controller::jobmaster_api::GrpcJobMaster;
use spate_operator::controller::{self, Context};
use spate_operator::crd::StreamJob;
use spate_operator::leader::LeaderElection;
use spate_operator::metrics::{self, Metrics};
use spate_operator::telemetry;
use tracing::info;

#[derive(Parser)]
#[command(
    name = "spate-operator",
    version,
    about = "The Kubernetes operator of Spate"
)]
struct Args {
    /// Watch StreamJobs (and their objects) in this namespace only; by default in every
    /// namespace. Also read from SPATE_WATCH_NAMESPACE.
    #[arg(long)]
    namespace: Option<String>,
    /// Address of the HTTP endpoint serving /metrics and /healthz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_bind: String,
    /// Reconcile only while holding a coordination.k8s.io Lease, so that several replicas can
    /// run (one leads, the others wait to take over).
    #[arg(long)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "spate-operator")]
    lease_name: String,
    /// Namespace of the Lease; by default the operator's own (POD_NAMESPACE).
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Export spans over OTLP (HTTP/protobuf) to this collector base URL, e.g.
    /// http://otel-collector:4318 (spans go to <url>/v1/traces). Also read from
    /// OTEL_EXPORTER_OTLP_ENDPOINT. Needs a build with the `otel` feature.
    #[arg(long)]
    otlp_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let telemetry =
        match telemetry::init(telemetry::otlp_endpoint(args.otlp_endpoint.clone()).as_deref()) {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let outcome = run(args).await;
    // The spans not exported yet, including the last reconciliations'.
    telemetry.shutdown().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let namespace = args
        .namespace
        .or_else(|| std::env::var("SPATE_WATCH_NAMESPACE").ok())
        .filter(|ns| !ns.is_empty());

    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or kubeconfig)")?;
    let jobs: Api<StreamJob> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    jobs.list(&ListParams::default().limit(1))
        .await
        .with_context(|| {
            format!(
                "cannot list {}: is the CRD installed (kubectl apply -f crds/streamjob.yaml)?",
                StreamJob::crd_name()
            )
        })?;

    let mut registry = Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    let app = metrics::router(Arc::new(registry));
    let listener = tokio::net::TcpListener::bind(&args.metrics_bind)
        .await
        .with_context(|| format!("binding {}", args.metrics_bind))?;
    info!(address = %listener.local_addr()?, "serving /metrics and /healthz");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let reporter = Reporter {
        controller: "spate-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        reporter,
        metrics,
        Arc::new(GrpcJobMaster),
    ));
    let watch = async {
        info!(
            namespace = namespace.as_deref().unwrap_or("(all)"),
            "watching StreamJobs"
        );
        controller::run(ctx, namespace.as_deref()).await;
    };
    let outcome = match args.leader_election {
        false => {
            watch.await;
            Ok(())
        }
        true => {
            let lease_namespace = args
                .lease_namespace
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .filter(|ns| !ns.is_empty())
                .context("--leader-election needs --lease-namespace or POD_NAMESPACE")?;
            let identity = std::env::var("POD_NAME")
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| format!("spate-operator-{}", std::process::id()));
            let mut election =
                LeaderElection::new(client, &lease_namespace, &args.lease_name, &identity);
            tokio::select! {
                () = election.acquire() => {}
                () = shutdown_signal() => return Ok(()),
            }
            election.lead(watch).await
        }
    };
    server.abort();
    info!("stopped");
    // A lost lease ends the process: its restart campaigns again, from a clean state.
    outcome.context("leader election")
}

/// SIGINT or SIGTERM (what Kubernetes sends a pod it stops).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
