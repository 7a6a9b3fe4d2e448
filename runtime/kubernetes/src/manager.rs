//! The resource manager itself: a task that keeps the job's worker pods at the number the
//! JobMaster asks for, reports the ones that end, and points pods of a previous JobMaster at
//! this one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use spate_jobmaster::ResourceManager;
use spate_proto::v1::SwitchJobMasterRequest;
use spate_proto::v1::worker_client::WorkerClient;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::Error;
use crate::pods::{CONTROL_PORT, WorkerPods};

/// How often pods of a previous JobMaster that have not taken this one's address yet are asked
/// again (they may still be starting).
const SWITCH_RETRY: Duration = Duration::from_secs(1);
const SWITCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the worker pods go and what they look like.
#[derive(Debug, Clone)]
pub struct Settings {
    pub namespace: String,
    /// A Pod manifest (JSON) the operator wrote: image, resources, credentials, overrides.
    pub template: PathBuf,
    pub slots_per_worker: u32,
    /// The JobMaster's address as workers reach it.
    pub jobmaster: String,
    /// The JobMaster's Deployment, which owns the worker pods.
    pub owner_deployment: Option<String>,
    pub name_prefix: String,
}

/// A client and everything the pods need, read once when the JobMaster starts.
#[derive(Clone)]
pub struct Connected {
    client: Client,
    namespace: String,
    pods: WorkerPods,
    slots_per_worker: u32,
}

/// Reads the template, connects to the API server and looks up the owner.
pub async fn connect(settings: Settings) -> Result<Connected, Error> {
    let path = settings.template.display().to_string();
    let text = std::fs::read_to_string(&settings.template).map_err(|source| Error::Template {
        path: path.clone(),
        source,
    })?;
    let template: Pod =
        serde_json::from_str(&text).map_err(|source| Error::TemplateFormat { path, source })?;
    let client = Client::try_default().await.map_err(Error::Client)?;
    let owner = match &settings.owner_deployment {
        Some(name) => {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &settings.namespace);
            let deployment = deployments.get(name).await.map_err(|source| Error::Owner {
                name: name.clone(),
                source,
            })?;
            deployment
                .controller_owner_ref(&())
                .map(|owner| OwnerReference {
                    // Deleting the JobMaster pod must not take its workers; deleting the
                    // Deployment (the job) must.
                    controller: Some(false),
                    ..owner
                })
        }
        None => None,
    };
    Ok(Connected {
        client,
        namespace: settings.namespace,
        pods: WorkerPods {
            template,
            job_id: String::new(),
            jobmaster: settings.jobmaster,
            slots: settings.slots_per_worker.max(1),
            owner,
            name_prefix: settings.name_prefix,
        },
        slots_per_worker: settings.slots_per_worker.max(1),
    })
}

enum Command {
    Workers(usize),
    Release(String),
}

/// The JobMaster's side: cheap, non-blocking calls that the pod task carries out.
pub struct KubernetesPods {
    commands: mpsc::UnboundedSender<Command>,
    exited: mpsc::UnboundedReceiver<String>,
    slots_per_worker: u32,
    asked: Option<usize>,
}

impl KubernetesPods {
    /// Starts the pod task for `job_id`; it first adopts the pods a previous JobMaster of the
    /// same job left running.
    pub fn start(connected: Connected, job_id: &str) -> Self {
        let (commands, received) = mpsc::unbounded_channel();
        let (ended, exited) = mpsc::unbounded_channel();
        let mut pods = connected.pods;
        pods.job_id = job_id.to_string();
        let api: Api<Pod> = Api::namespaced(connected.client, &connected.namespace);
        tokio::spawn(PodTask::new(api, pods, ended).run(received));
        KubernetesPods {
            commands,
            exited,
            slots_per_worker: connected.slots_per_worker,
            asked: None,
        }
    }
}

impl ResourceManager for KubernetesPods {
    fn require_slots(&mut self, slots: u32, _jobmaster: &str) {
        let workers = slots.div_ceil(self.slots_per_worker) as usize;
        if self.asked != Some(workers) {
            self.asked = Some(workers);
            let _ = self.commands.send(Command::Workers(workers));
        }
    }

    fn exited(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        while let Ok(worker) = self.exited.try_recv() {
            gone.push(worker);
        }
        if !gone.is_empty() {
            // Replacements are asked for again on the next call.
            self.asked = None;
        }
        gone
    }

    fn release(&mut self, worker: &str) {
        self.asked = None;
        let _ = self.commands.send(Command::Release(worker.to_string()));
    }
}

struct PodTask {
    api: Api<Pod>,
    pods: WorkerPods,
    ended: mpsc::UnboundedSender<String>,
    /// Pods of this job that run or start, by name (the worker id).
    live: BTreeSet<String>,
    /// Pods started for another JobMaster address, by name, with their IP: told ours.
    to_switch: BTreeMap<String, String>,
    wanted: usize,
}

impl PodTask {
    fn new(api: Api<Pod>, pods: WorkerPods, ended: mpsc::UnboundedSender<String>) -> Self {
        PodTask {
            api,
            pods,
            ended,
            live: BTreeSet::new(),
            to_switch: BTreeMap::new(),
            wanted: 0,
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let selector = self.pods.selector();
        match self
            .api
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => {
                for pod in list {
                    self.observe(pod).await;
                }
                if !self.live.is_empty() {
                    info!(
                        pods = self.live.len(),
                        "adopting the worker pods of a previous JobMaster"
                    );
                }
            }
            Err(e) => warn!(error = %e, "cannot list worker pods; starting new ones"),
        }
        let events = watcher::watcher(
            self.api.clone(),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff();
        let mut events = std::pin::pin!(events);
        let mut retry = tokio::time::interval(SWITCH_RETRY);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Workers(wanted)) => {
                        self.wanted = wanted;
                        self.start_missing().await;
                    }
                    Some(Command::Release(name)) => {
                        if self.live.remove(&name) {
                            self.delete(&name).await;
                        }
                    }
                    // The JobMaster is done with its workers.
                    None => return,
                },
                event = events.next() => match event {
                    Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => self.observe(pod).await,
                    Some(Ok(Event::Delete(pod))) => self.gone(&pod.name_any()),
                    Some(Ok(Event::Init | Event::InitDone)) => {}
                    Some(Err(e)) => warn!(error = %e, "watching worker pods"),
                    None => return,
                },
                _ = retry.tick() => self.switch_pending().await,
            }
        }
    }

    /// Takes in what a pod's latest state says.
    async fn observe(&mut self, pod: Pod) {
        let name = pod.name_any();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        if pod.meta().deletion_timestamp.is_some() || matches!(phase, "Succeeded" | "Failed") {
            self.gone(&name);
            if pod.meta().deletion_timestamp.is_none() {
                self.delete(&name).await;
            }
            return;
        }
        self.live.insert(name.clone());
        if let Some(ip) = status.and_then(|s| s.pod_ip.clone())
            && self.started_for_another(&pod)
            && phase == "Running"
        {
            self.to_switch.entry(name).or_insert(ip);
        }
    }

    fn gone(&mut self, name: &str) {
        self.to_switch.remove(name);
        if self.live.remove(name) {
            warn!(worker = %name, "worker pod ended");
            let _ = self.ended.send(name.to_string());
        }
    }

    /// Whether the pod was told another JobMaster address than this one's.
    fn started_for_another(&self, pod: &Pod) -> bool {
        let args = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == "worker"))
            .and_then(|c| c.args.clone())
            .unwrap_or_default();
        let given = args
            .iter()
            .position(|a| a == "--jobmaster")
            .and_then(|i| args.get(i + 1));
        given.is_some_and(|given| *given != self.pods.jobmaster)
    }

    async fn start_missing(&mut self) {
        while self.live.len() < self.wanted {
            match self
                .api
                .create(&PostParams::default(), &self.pods.pod())
                .await
            {
                Ok(pod) => {
                    info!(worker = %pod.name_any(), "created a worker pod");
                    self.live.insert(pod.name_any());
                }
                Err(e) => {
                    // Asked again on the JobMaster's next round while it waits for slots.
                    warn!(error = %e, "cannot create a worker pod");
                    return;
                }
            }
        }
    }

    async fn delete(&self, name: &str) {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => info!(worker = %name, "deleted the worker pod"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => warn!(worker = %name, error = %e, "cannot delete a worker pod"),
        }
    }

    async fn switch_pending(&mut self) {
        let pending: Vec<(String, String)> = self
            .to_switch
            .iter()
            .map(|(name, ip)| (name.clone(), ip.clone()))
            .collect();
        for (name, ip) in pending {
            match self.switch(&ip).await {
                Ok(()) => {
                    info!(worker = %name, jobmaster = %self.pods.jobmaster, "told a worker pod this JobMaster's address");
                    self.to_switch.remove(&name);
                }
                Err(e) => warn!(worker = %name, error = %e, "cannot reach a worker pod yet"),
            }
        }
    }

    async fn switch(&self, ip: &str) -> Result<(), String> {
        let request = SwitchJobMasterRequest {
            job_id: self.pods.job_id.clone(),
            address: self.pods.jobmaster.clone(),
        };
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let call = async {
            let mut client = WorkerClient::connect(format!("http://{host}:{CONTROL_PORT}"))
                .await
                .map_err(|e| e.to_string())?;
            client
                .switch_job_master(request)
                .await
                .map(drop)
                .map_err(|s| s.message().to_string())
        };
        tokio::time::timeout(SWITCH_TIMEOUT, call)
            .await
            .map_err(|_| "no answer".to_string())?
    }
}
