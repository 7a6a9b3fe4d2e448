//! `spate-node-agent`: registers a Node and runs the pods bound to it as local processes.

use std::io::IsTerminal as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use spate_node_agent::binaries::{Binaries, ImageMapping};
use spate_node_agent::identity::ApiServer;
use spate_node_agent::ip::IpPool;
use spate_node_agent::node::{self, NodeInfo};
use spate_node_agent::pods::{self, Agent};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

#[derive(Parser)]
#[command(
    name = "spate-node-agent",
    version,
    about = "A kubelet stand-in for the e2e suite: runs the pods bound to its Node as local processes"
)]
struct Args {
    /// Kubeconfig of the agent itself (it needs to manage nodes, leases, pods and their status,
    /// read ConfigMaps and Secrets, and create service-account tokens); by default $KUBECONFIG.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Name of the Node to register.
    #[arg(long, default_value = "spate-node")]
    node_name: String,
    /// The node's address (its InternalIP and every pod's hostIP).
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: Ipv4Addr,
    /// Loopback range the pods' addresses come from.
    #[arg(long, default_value = "127.1.0.0/16")]
    pod_cidr: String,
    /// Directory for the pods' files: ROOT/pods/<uid>/ holds volumes/, kube/ (the pod's
    /// kubeconfig and token), <container>.log and <container>.pid; ROOT/pods/<namespace>_<name>
    /// links to it.
    #[arg(long)]
    root: PathBuf,
    /// REPOSITORY=BINARY: an image whose repository is REPOSITORY or ends with /REPOSITORY runs
    /// BINARY, as does a container command naming REPOSITORY or BINARY's file name. Repeatable.
    #[arg(long = "image", value_name = "REPOSITORY=BINARY")]
    images: Vec<ImageMapping>,
    /// A command from the agent's PATH that containers may run by name (for example `sleep`),
    /// whatever their image. Repeatable.
    #[arg(long = "host-command", value_name = "NAME")]
    host_commands: Vec<String>,
    /// Leave `0.0.0.0` in args and env as it is instead of replacing it by the pod's address.
    #[arg(long)]
    keep_wildcard_address: bool,
    /// First delay before a crashed container is restarted; doubled per crash in a row.
    #[arg(long, default_value_t = 1000)]
    restart_backoff_ms: u64,
    /// Longest delay before a restart.
    #[arg(long, default_value_t = 30_000)]
    max_restart_backoff_ms: u64,
    /// How often the Ready condition's heartbeat is written.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// Longest wait for a pod's processes to exit after SIGTERM when the agent itself stops.
    #[arg(long, default_value_t = 10)]
    shutdown_grace_seconds: u64,
    /// Pods the node accepts.
    #[arg(long, default_value_t = 250)]
    max_pods: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Absolute, because the root's paths end up in the pods' args, env and kubeconfig.
    std::fs::create_dir_all(args.root.join("pods"))
        .with_context(|| format!("creating {}", args.root.display()))?;
    let root = args.root.canonicalize()?;
    for mapping in &args.images {
        anyhow::ensure!(
            mapping.binary().is_file(),
            "--image {}: {} is not a file",
            mapping.repository(),
            mapping.binary().display()
        );
    }

    let kubeconfig_path = args
        .kubeconfig
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
        .context("no --kubeconfig and no KUBECONFIG")?;
    let kubeconfig = Kubeconfig::read_from(&kubeconfig_path)
        .with_context(|| format!("reading {}", kubeconfig_path.display()))?;
    let api_server = ApiServer::from_kubeconfig(&kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading the kubeconfig")?;
    let client = kube::Client::try_from(config)?;

    let info = NodeInfo {
        name: args.node_name.clone(),
        ip: args.node_ip,
        max_pods: args.max_pods,
    };
    let node_object = node::register(&client, &info)
        .await
        .with_context(|| format!("registering node {} with {}", info.name, api_server.server))?;
    let heartbeat = Duration::from_secs(args.heartbeat_seconds.max(1));
    let keep_ready = tokio::spawn(node::keep_ready(
        client.clone(),
        info,
        node_object,
        heartbeat,
    ));

    let agent = Arc::new(Agent {
        client,
        node_name: args.node_name,
        node_ip: args.node_ip,
        root,
        binaries: Binaries::new(args.images, args.host_commands),
        api_server,
        rewrite_wildcard: !args.keep_wildcard_address,
        backoff_initial: Duration::from_millis(args.restart_backoff_ms),
        backoff_max: Duration::from_millis(
            args.max_restart_backoff_ms.max(args.restart_backoff_ms),
        ),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        ips: Mutex::new(IpPool::new(&args.pod_cidr)?),
    });
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM: stopping"),
            _ = interrupt.recv() => info!("SIGINT: stopping"),
        }
    };
    let result = pods::run(agent, shutdown).await;
    keep_ready.abort();
    result.context("watching pods")?;
    info!("stopped");
    Ok(())
}
