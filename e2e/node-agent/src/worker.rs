//! One pod's life on this node: address, volumes, token, its containers' processes with
//! restarts and readiness, status reports, and the end (termination, deletion, clean-up).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container as ContainerSpec, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::downward::Addresses;
use crate::identity::{self, IdentityError};
use crate::pods::Agent;
use crate::probe::{Check, Readiness, Timing};
use crate::process;
use crate::sources::Sources;
use crate::status::{self, RestartPolicy, State, Termination};
use crate::volumes::{self, DEFAULT_TOKEN_SECONDS, TokenKey, VolumeError};

mod containers;

use containers::waiting_to_restart;

/// What the pod watch tells a worker.
#[derive(Debug)]
pub enum Message {
    Updated(Box<Pod>),
    /// The pod object is gone from the API (its last state, when known).
    Removed(Option<Box<Pod>>),
    /// The agent stops: stop the processes, leave the pod as it is.
    Shutdown,
}

/// What the worker's own tasks tell it.
enum Event {
    Exited {
        index: usize,
        run: u64,
        status: std::io::Result<std::process::ExitStatus>,
    },
    Probed {
        index: usize,
        run: u64,
        ok: bool,
    },
}

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Identity(#[from] IdentityError),
    #[error("{0}")]
    Volume(#[from] VolumeError),
}

/// How long after a failed setup (a missing ConfigMap, say) the next attempt comes.
const SETUP_RETRY: Duration = Duration::from_secs(2);
/// A failed status update is sent again this soon.
const REPORT_RETRY: Duration = Duration::from_secs(2);

struct Slot {
    spec: ContainerSpec,
    record: status::Container,
    /// The running process's group, while it runs.
    pid: Option<u32>,
    /// Counts starts, so events of an earlier run are recognized as stale.
    run: u64,
    started: Option<Instant>,
    restart_at: Option<Instant>,
    /// Consecutive short-lived runs, for the back-off.
    crashes: u32,
    probe: Option<(Check, Timing)>,
    readiness: Readiness,
    next_probe: Option<Instant>,
}

struct PodWorker {
    agent: Arc<Agent>,
    pod: Pod,
    uid: String,
    namespace: String,
    name: String,
    dir: PathBuf,
    ip: Option<Ipv4Addr>,
    /// Whether `ip` came from the pool (a hostNetwork pod uses the node's).
    ip_from_pool: bool,
    policy: RestartPolicy,
    start_time: Timestamp,
    slots: Vec<Slot>,
    /// Host directories of the volumes, once written.
    volumes: Option<BTreeMap<String, PathBuf>>,
    kubeconfig: Option<PathBuf>,
    /// When to (re)do the setup: a retry, or the token refresh.
    setup_at: Option<Instant>,
    reported: Option<PodStatus>,
    report_at: Option<Instant>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
}

/// How the pod's run on this node ended.
enum End {
    Deleted,
    Removed,
    Shutdown,
}

pub async fn run(agent: Arc<Agent>, pod: Pod, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut worker = PodWorker::new(agent, pod);
    // Whether this run of the agent ran the pod (and so has a status of its own to report).
    let mut ran = false;
    let end = if worker.pod.metadata.deletion_timestamp.is_some() {
        End::Deleted
    } else if worker.is_terminal_in_api() {
        // Done before this agent saw it (an earlier run finished it): nothing to start.
        worker.wait_for_end(&mut rx).await
    } else {
        ran = true;
        worker.live(&mut rx).await
    };
    match end {
        End::Shutdown => {
            worker.terminate(worker.agent.shutdown_grace, &mut rx).await;
        }
        End::Deleted | End::Removed => {
            let grace = worker.grace_period();
            let stopped = worker.terminate(grace, &mut rx).await;
            if stopped && matches!(end, End::Deleted) && ran {
                worker.report().await;
            }
            // As the kubelet does, the pod's files go before its object: whoever sees the
            // object gone (`kubectl delete` returning) finds nothing of the pod left.
            worker.clean_up();
            if stopped && matches!(end, End::Deleted) {
                worker.delete_from_api().await;
            }
        }
    }
    worker.release_ip();
}

impl PodWorker {
    fn new(agent: Arc<Agent>, pod: Pod) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let dir = agent.pods_dir().join(&uid);
        let spec = pod.spec.clone().unwrap_or_default();
        let now = Timestamp::now();
        let previous = pod.status.as_ref();
        let slots = spec
            .containers
            .iter()
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                let last = previous
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|all| all.iter().find(|s| s.name == c.name));
                Slot {
                    spec: c.clone(),
                    record: status::resume(last, &c.name, &image, now),
                    pid: None,
                    run: 0,
                    started: None,
                    restart_at: None,
                    crashes: 0,
                    probe: None,
                    readiness: Readiness::default(),
                    next_probe: None,
                }
            })
            .collect();
        let start_time = previous
            .and_then(|s| s.start_time.as_ref())
            .map_or(now, |t| t.0);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Self {
            policy: RestartPolicy::parse(spec.restart_policy.as_deref()),
            agent,
            pod,
            uid,
            namespace,
            name,
            dir,
            ip: None,
            ip_from_pool: false,
            start_time,
            slots,
            volumes: None,
            kubeconfig: None,
            setup_at: None,
            reported: None,
            report_at: None,
            events_tx,
            events_rx,
        }
    }

    fn is_terminal_in_api(&self) -> bool {
        let phase = self.pod.status.as_ref().and_then(|s| s.phase.as_deref());
        matches!(phase, Some("Succeeded" | "Failed"))
    }

    fn phase(&self, terminating: bool) -> &'static str {
        let records: Vec<status::Container> = self.slots.iter().map(|s| s.record.clone()).collect();
        status::phase(&records, self.policy, terminating)
    }

    /// Runs the pod until it is deleted, removed or the agent stops.
    async fn live(&mut self, rx: &mut mpsc::UnboundedReceiver<Message>) -> End {
        if let Err(e) = self.prepare_dir() {
            warn!(pod = %self.key(), error = %e, "cannot create the pod directory");
        }
        if !self.assign_ip() {
            for slot in &mut self.slots {
                slot.record.state = State::Waiting {
                    reason: "ContainerCreating".into(),
                    message: Some("no free pod address in the pod CIDR".into()),
                };
            }
        }
        // Containers that an earlier agent run left dead are restarted (or not) by policy.
        let now = Instant::now();
        for slot in &mut self.slots {
            if let State::Terminated(t) = slot.record.state.clone()
                && self.policy.restarts(t.exit_code)
            {
                slot.record.last_termination = Some(t);
                slot.record.state = waiting_to_restart(&slot.record.name, Duration::ZERO);
                slot.restart_at = Some(now);
            }
        }
        self.setup_at = self.ip.map(|_| now);
        loop {
            self.report().await;
            if matches!(self.phase(false), "Succeeded" | "Failed") {
                info!(pod = %self.key(), phase = self.phase(false), "pod completed");
                self.release_ip();
                return self.wait_for_end(rx).await;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                message = rx.recv() => if let Some(end) = self.on_message(message) {
                    return end;
                },
                Some(event) = self.events_rx.recv() => self.on_event(event, false),
                () = sleep_until(deadline) => self.on_due().await,
            }
        }
    }

    /// A pod with nothing left to run waits for its deletion.
    async fn wait_for_end(&mut self, rx: &mut mpsc::UnboundedReceiver<Message>) -> End {
        loop {
            if let Some(end) = self.on_message(rx.recv().await) {
                return end;
            }
        }
    }

    /// Takes in the pod's latest object; returns how the pod's life ends when the message says.
    fn on_message(&mut self, message: Option<Message>) -> Option<End> {
        match message {
            Some(Message::Updated(pod)) => {
                let deleting = pod.metadata.deletion_timestamp.is_some();
                self.pod = *pod;
                deleting.then_some(End::Deleted)
            }
            Some(Message::Removed(last)) => {
                self.pod = last.map_or_else(|| self.pod.clone(), |p| *p);
                Some(End::Removed)
            }
            Some(Message::Shutdown) | None => Some(End::Shutdown),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let per_slot = self.slots.iter().flat_map(|s| [s.restart_at, s.next_probe]);
        per_slot
            .chain([self.setup_at, self.report_at])
            .flatten()
            .min()
    }

    async fn on_due(&mut self) {
        let now = Instant::now();
        if self.setup_at.is_some_and(|t| t <= now) {
            self.setup().await;
        }
        if self.report_at.is_some_and(|t| t <= now) {
            self.report_at = None;
        }
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            if slot.restart_at.is_some_and(|t| t <= now) {
                slot.restart_at = None;
                if self.volumes.is_some() {
                    self.start(index).await;
                }
            }
            let slot = &mut self.slots[index];
            if slot.next_probe.is_some_and(|t| t <= now) {
                slot.next_probe = None;
                if let (Some((check, timing)), Some(_)) = (&slot.probe, slot.pid) {
                    let (check, timeout, run, tx) = (
                        check.clone(),
                        timing.timeout,
                        slot.run,
                        self.events_tx.clone(),
                    );
                    tokio::spawn(async move {
                        let ok = check.run(timeout).await;
                        let _ = tx.send(Event::Probed { index, run, ok });
                    });
                }
            }
        }
    }

    /// Volumes and the pod's kubeconfig; on the first success the containers start. Repeated
    /// before the tokens expire, which also brings ConfigMap and Secret changes into the files.
    async fn setup(&mut self) {
        let first = self.volumes.is_none();
        match self.write_volumes().await {
            Ok(refresh_in) => {
                self.setup_at = Some(Instant::now() + refresh_in);
                if first {
                    for index in 0..self.slots.len() {
                        let waiting_first_start = self.slots[index].restart_at.is_none()
                            && matches!(self.slots[index].record.state, State::Waiting { .. });
                        if waiting_first_start {
                            self.start(index).await;
                        }
                    }
                }
            }
            Err(e) => {
                warn!(pod = %self.key(), error = %e, "cannot prepare the pod's volumes; retrying");
                self.setup_at = Some(Instant::now() + SETUP_RETRY);
                if first {
                    for slot in &mut self.slots {
                        slot.record.state = State::Waiting {
                            reason: "ContainerCreating".into(),
                            message: Some(e.to_string()),
                        };
                    }
                }
            }
        }
    }

    /// Writes every volume and the kubeconfig token; returns when to do it again.
    async fn write_volumes(&mut self) -> Result<Duration, SetupError> {
        let client = &self.agent.client;
        let spec = self.pod.spec.clone().unwrap_or_default();
        let sources = Sources::fetch(client, &self.namespace, &spec).await?;
        let mut tokens = BTreeMap::new();
        for key in volumes::token_requests(&spec) {
            let token = identity::request_token(client, &self.pod, &key).await?;
            tokens.insert(key, token);
        }
        let mut shortest = tokens
            .keys()
            .map(|k| k.expiration_seconds)
            .min()
            .unwrap_or(DEFAULT_TOKEN_SECONDS);
        let inputs = volumes::Inputs {
            pod: &self.pod,
            sources: &sources,
            tokens: &tokens,
            addresses: self.addresses(),
        };
        let mut dirs = BTreeMap::new();
        for volume in spec.volumes.iter().flatten() {
            let content = volumes::content(volume, &inputs)?;
            let dir = self.dir.join("volumes").join(&volume.name);
            dirs.insert(
                volume.name.clone(),
                volumes::write(&volume.name, &dir, &content)?,
            );
        }
        // A pod that opted out of a service-account token gets no kubeconfig either.
        if spec.automount_service_account_token != Some(false) {
            let key = TokenKey {
                audience: None,
                expiration_seconds: DEFAULT_TOKEN_SECONDS,
            };
            let token = identity::request_token(client, &self.pod, &key).await?;
            let kube_dir = self.dir.join("kube");
            std::fs::create_dir_all(&kube_dir)
                .map_err(|e| IdentityError::Write(kube_dir.clone(), e))?;
            let token_file = kube_dir.join("token");
            identity::write_atomically(&token_file, token.as_bytes())?;
            let config = self
                .agent
                .api_server
                .pod_kubeconfig(&self.namespace, &token_file);
            let config_file = kube_dir.join("config");
            identity::write_atomically(&config_file, config.to_string().as_bytes())?;
            self.kubeconfig = Some(config_file);
            shortest = shortest.min(DEFAULT_TOKEN_SECONDS);
        }
        self.volumes = Some(dirs);
        // Refreshed at 80% of the shortest lifetime, as the kubelet does.
        Ok(Duration::from_secs(shortest.max(60) as u64 * 4 / 5))
    }

    fn addresses(&self) -> Addresses {
        Addresses {
            pod_ip: self.ip.unwrap_or(self.agent.node_ip),
            host_ip: self.agent.node_ip,
        }
    }

    /// SIGTERM to every container's process group, SIGKILL to what is left after `grace`;
    /// returns once all have exited. False when the agent was told to stop meanwhile (the
    /// caller then leaves the pod object alone).
    async fn terminate(
        &mut self,
        grace: Duration,
        rx: &mut mpsc::UnboundedReceiver<Message>,
    ) -> bool {
        let mut carry_on = true;
        let key = self.key();
        for slot in &mut self.slots {
            slot.restart_at = None;
            slot.next_probe = None;
            if let Some(pid) = slot.pid {
                info!(pod = %key, container = %slot.record.name, pid, ?grace, "stopping container");
                process::signal_group(pid, libc::SIGTERM);
            } else if matches!(slot.record.state, State::Waiting { .. }) {
                // Never started, or waiting to be restarted: it ends here.
                let ended = slot.record.last_termination.clone();
                slot.record.state = match ended {
                    Some(t) => State::Terminated(t),
                    None => State::Terminated(Termination {
                        exit_code: 137,
                        signal: None,
                        reason: "ContainerStatusUnknown".into(),
                        message: Some("the pod was deleted before the container started".into()),
                        started_at: None,
                        finished_at: Timestamp::now(),
                        container_id: None,
                    }),
                };
            }
        }
        let kill_at = Instant::now() + grace;
        let mut killed = false;
        while self.slots.iter().any(|s| s.pid.is_some()) {
            let deadline = (!killed).then_some(kill_at);
            tokio::select! {
                Some(event) = self.events_rx.recv() => self.on_event(event, true),
                () = sleep_until(deadline) => {
                    killed = true;
                    for pid in self.slots.iter().filter_map(|s| s.pid) {
                        process::signal_group(pid, libc::SIGKILL);
                    }
                }
                message = rx.recv() => match message {
                    Some(Message::Updated(pod)) => self.pod = *pod,
                    Some(Message::Removed(_)) => {}
                    Some(Message::Shutdown) | None => {
                        carry_on = false;
                        killed = true;
                        for pid in self.slots.iter().filter_map(|s| s.pid) {
                            process::signal_group(pid, libc::SIGKILL);
                        }
                    }
                },
            }
        }
        carry_on
    }

    /// The grace period of a pod being deleted: what the deletion asked for, else the spec's.
    fn grace_period(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(seconds.max(0) as u64)
    }

    /// Sends the status if it changed since the last report.
    async fn report(&mut self) {
        let terminating = self.pod.metadata.deletion_timestamp.is_some();
        let records: Vec<status::Container> = self.slots.iter().map(|s| s.record.clone()).collect();
        let previous = self.reported.as_ref().or(self.pod.status.as_ref());
        let status = status::pod_status(&status::Input {
            containers: &records,
            policy: self.policy,
            terminating,
            pod_ip: self.ip,
            host_ip: self.agent.node_ip,
            start_time: self.start_time,
            previous,
            now: Timestamp::now(),
        });
        if self.reported.as_ref() == Some(&status) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.agent.client.clone(), &self.namespace);
        let patch = serde_json::json!({ "status": status });
        match pods
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.reported = Some(status);
                self.report_at = None;
            }
            Err(e) => {
                warn!(pod = %self.key(), error = %e, "cannot update the pod status; retrying");
                self.report_at = Some(Instant::now() + REPORT_RETRY);
            }
        }
    }

    /// The kubelet's last word on a deleted pod: its processes are gone, so the object can go.
    async fn delete_from_api(&self) {
        let pods: Api<Pod> = Api::namespaced(self.agent.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods.delete(&self.name, &params).await {
            Ok(_) => info!(pod = %self.key(), "pod deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => warn!(pod = %self.key(), error = %e, "cannot delete the pod"),
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `ROOT/pods/<uid>`, and `ROOT/pods/<namespace>_<name>` linking to it for tests that know
    /// a pod by name.
    fn prepare_dir(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let link = self.link_path();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&self.uid, &link)
    }

    fn link_path(&self) -> PathBuf {
        self.agent
            .pods_dir()
            .join(format!("{}_{}", self.namespace, self.name))
    }

    fn clean_up(&self) {
        let link = self.link_path();
        // The name may have been taken by a newer pod since.
        if std::fs::read_link(&link).is_ok_and(|target| target == Path::new(&self.uid)) {
            let _ = std::fs::remove_file(&link);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(pod = %self.key(), error = %e, "cannot remove the pod directory");
        }
    }

    /// The address the pod had (kept across agent restarts: the supervisor reserved the
    /// addresses of the pods present at start), else a new one; false when the range is
    /// exhausted.
    fn assign_ip(&mut self) -> bool {
        if host_network(&self.pod) {
            self.ip = Some(self.agent.node_ip);
            return true;
        }
        let mut pool = self.agent.ips.lock().expect("IP pool lock");
        let previous = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        self.ip = match previous {
            Some(ip) if pool.contains(ip) => {
                pool.reserve(ip);
                Some(ip)
            }
            _ => pool.allocate(),
        };
        self.ip_from_pool = self.ip.is_some();
        self.ip_from_pool
    }

    fn release_ip(&mut self) {
        if let (Some(ip), true) = (self.ip, self.ip_from_pool) {
            self.agent.ips.lock().expect("IP pool lock").release(ip);
            self.ip_from_pool = false;
        }
    }
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
