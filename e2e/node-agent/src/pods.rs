//! The pods bound to this node: one worker task per pod, fed by a watch on
//! `spec.nodeName=<node>`; orphans of an earlier run are killed before anything starts.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::binaries::Binaries;
use crate::identity::ApiServer;
use crate::ip::IpPool;
use crate::process;
use crate::worker::{self, Message};

/// Everything the pod workers share.
pub struct Agent {
    pub client: kube::Client,
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    pub root: PathBuf,
    pub binaries: Binaries,
    pub api_server: ApiServer,
    /// Replace `0.0.0.0` in args and env by the pod's address (see `rewrite`).
    pub rewrite_wildcard: bool,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The longest the agent waits for a pod's processes when it is itself stopped.
    pub shutdown_grace: Duration,
    pub ips: Mutex<IpPool>,
}

impl Agent {
    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }
}

/// Runs until `shutdown` completes, then stops every pod's processes.
pub async fn run(agent: Arc<Agent>, shutdown: impl Future<Output = ()>) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::all(agent.client.clone());
    let selector = format!("spec.nodeName={}", agent.node_name);
    let present = pods.list(&ListParams::default().fields(&selector)).await?;
    let uids: HashSet<String> = present
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    clean_orphans(&agent.pods_dir(), &uids);
    // Pods keep their address across agent restarts; reserved before any worker allocates.
    {
        let mut ips = agent.ips.lock().expect("IP pool lock");
        for status in present.items.iter().filter_map(|p| p.status.as_ref()) {
            let running = !matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
            if let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok())
                && running
            {
                ips.reserve(ip);
            }
        }
    }

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    // Pods whose worker finished because they were deleted: later events about them are the
    // deletion going through, not pods to run again.
    let mut finished: HashSet<String> = HashSet::new();
    // Uids seen during a watch (re)list, to find pods deleted while the watch was down.
    let mut relisted: Option<HashSet<String>> = None;

    let stream =
        watcher::watcher(pods, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut shutdown = std::pin::pin!(shutdown);
    info!(node = %agent.node_name, "watching pods");
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                finished.insert(uid);
            }
            event = stream.next() => match event {
                Some(Ok(Event::Init)) => relisted = Some(HashSet::new()),
                Some(Ok(Event::InitApply(pod))) => {
                    if let (Some(seen), Some(uid)) = (relisted.as_mut(), pod.metadata.uid.clone()) {
                        seen.insert(uid);
                    }
                    dispatch(&agent, pod, &mut workers, &finished, &done_tx);
                }
                Some(Ok(Event::InitDone)) => {
                    let seen = relisted.take().unwrap_or_default();
                    for (uid, worker) in &workers {
                        if !seen.contains(uid) {
                            let _ = worker.tx.send(Message::Removed(None));
                        }
                    }
                }
                Some(Ok(Event::Apply(pod))) => dispatch(&agent, pod, &mut workers, &finished, &done_tx),
                Some(Ok(Event::Delete(pod))) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    match workers.get(&uid) {
                        Some(worker) => { let _ = worker.tx.send(Message::Removed(Some(Box::new(pod)))); }
                        None => { finished.remove(&uid); }
                    }
                }
                Some(Err(e)) => warn!(error = %e, "pod watch failed; retrying"),
                None => break,
            },
        }
    }

    info!(pods = workers.len(), "stopping every pod's processes");
    for worker in workers.values() {
        let _ = worker.tx.send(Message::Shutdown);
    }
    let grace = agent.shutdown_grace + Duration::from_secs(5);
    for (uid, worker) in workers {
        if tokio::time::timeout(grace, worker.handle).await.is_err() {
            warn!(%uid, "pod worker did not stop in time");
        }
    }
    Ok(())
}

struct Worker {
    tx: mpsc::UnboundedSender<Message>,
    handle: tokio::task::JoinHandle<()>,
}

fn dispatch(
    agent: &Arc<Agent>,
    pod: Pod,
    workers: &mut HashMap<String, Worker>,
    finished: &HashSet<String>,
    done: &mpsc::UnboundedSender<String>,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    if let Some(worker) = workers.get(&uid) {
        let _ = worker.tx.send(Message::Updated(Box::new(pod)));
        return;
    }
    if finished.contains(&uid) {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let agent = agent.clone();
    let done = done.clone();
    let worker_uid = uid.clone();
    let handle = tokio::spawn(async move {
        worker::run(agent, pod, rx).await;
        let _ = done.send(worker_uid);
    });
    workers.insert(uid, Worker { tx, handle });
}

/// Kills processes an earlier run of the agent left behind (all of them: pods still present
/// are started again by their workers, which count the restart), and removes the directories
/// of pods that are gone.
fn clean_orphans(pods_dir: &Path, present: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(pods_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_symlink() {
            // A <namespace>_<name> link: kept while its pod directory is.
            if !path.exists() {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let killed = process::kill_recorded(&path);
        if !killed.is_empty() {
            info!(pod_uid = %name, pids = ?killed, "killed processes left by an earlier run");
        }
        if !present.contains(&name) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    // Links whose directory was just removed.
    for entry in std::fs::read_dir(pods_dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_symlink() && !path.exists() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_orphans_keeps_present_pods_and_their_links() {
        let root = tempfile::tempdir().unwrap();
        let pods = root.path();
        for uid in ["kept", "gone"] {
            std::fs::create_dir_all(pods.join(uid)).unwrap();
            std::fs::write(pods.join(uid).join("main.log"), "x").unwrap();
        }
        std::os::unix::fs::symlink("kept", pods.join("ns_a")).unwrap();
        std::os::unix::fs::symlink("gone", pods.join("ns_b")).unwrap();
        clean_orphans(pods, &HashSet::from(["kept".to_string()]));
        assert!(pods.join("kept/main.log").exists());
        assert!(pods.join("ns_a/main.log").exists());
        assert!(!pods.join("gone").exists());
        assert!(!pods.join("ns_b").is_symlink());
    }
}
