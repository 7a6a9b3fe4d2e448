//! A pod's containers as processes: starting one (binary, env, args, rewriting), and what
//! happens when it exits (restart with back-off, or terminated for good).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Event, PodWorker, host_network};
use crate::binaries::BinaryError;
use crate::env::{self, EnvVars};
use crate::probe::{Check, Readiness, Timing};
use crate::process;
use crate::rewrite::Rewriter;
use crate::sources::Sources;
use crate::status::{State, Termination};

impl PodWorker {
    /// Starts container `index`; a container that cannot start waits with the reason and is
    /// tried again after the restart back-off, as the kubelet does for missing images or
    /// config.
    pub(super) async fn start(&mut self, index: usize) {
        match self.spawn(index).await {
            Ok(()) => {}
            Err((reason, message)) => {
                warn!(pod = %self.key(), container = %self.slots[index].record.name, %reason, %message, "cannot start container");
                let delay = self.backoff(index);
                let slot = &mut self.slots[index];
                slot.record.state = State::Waiting {
                    reason: reason.into(),
                    message: Some(message),
                };
                slot.restart_at = Some(Instant::now() + delay);
            }
        }
    }

    async fn spawn(&mut self, index: usize) -> Result<(), (&'static str, String)> {
        let config_error = |e: String| ("CreateContainerConfigError", e);
        let spec = self.pod.spec.clone().unwrap_or_default();
        if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(config_error(
                "init containers are not supported by spate-node-agent".into(),
            ));
        }
        let container = self.slots[index].spec.clone();
        let sources = Sources::fetch(&self.agent.client, &self.namespace, &spec)
            .await
            .map_err(|e| config_error(e.to_string()))?;
        let env = env::container_env(
            &self.pod,
            &container,
            &sources,
            self.addresses(),
            self.base_env(),
        )
        .map_err(|e| config_error(e.to_string()))?;
        // Expansion uses the values as the spec gives them; rewriting comes after, so a host
        // path is never rewritten twice.
        let expand_all = |items: &Option<Vec<String>>| -> Vec<String> {
            items
                .iter()
                .flatten()
                .map(|s| env::expand(s, |n| env.get(n)))
                .collect()
        };
        let (command, args) = (expand_all(&container.command), expand_all(&container.args));
        let wildcard_ip = self
            .ip
            .filter(|_| self.agent.rewrite_wildcard && !host_network(&self.pod));
        let volumes = self.volumes.clone().unwrap_or_default();
        let rewriter = Rewriter::new(&container, &volumes, wildcard_ip)
            .map_err(|e| ("CreateContainerError", e.to_string()))?;
        for dir in rewriter.host_dirs() {
            if !dir.exists() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        let rewrite = |v: Vec<String>| v.iter().map(|s| rewriter.apply(s)).collect::<Vec<_>>();
        let (command, args) = (rewrite(command), rewrite(args));
        let mut env = env;
        env.map_values(|v| rewriter.apply(v));

        let image = container.image.clone().unwrap_or_default();
        let program = self
            .agent
            .binaries
            .resolve(&image, &command, &args)
            .map_err(|e| {
                let reason = match e {
                    BinaryError::UnmappedImage { .. } => "ErrImagePull",
                    _ => "CreateContainerError",
                };
                (reason, e.to_string())
            })?;
        let mut child = process::spawn(&program, &env, &self.dir, &container.name)
            .map_err(|e| ("RunContainerError", e.to_string()))?;
        let pid = child.id().unwrap_or_default();
        info!(pod = %self.key(), container = %container.name, pid, program = %program.path.display(), "started container");

        let pod_ip = self.addresses().pod_ip;
        let slot = &mut self.slots[index];
        if slot.run > 0 || slot.record.last_termination.is_some() {
            slot.record.restart_count += 1;
        }
        slot.run += 1;
        slot.pid = Some(pid);
        slot.started = Some(Instant::now());
        slot.readiness = Readiness::default();
        slot.probe = container.readiness_probe.as_ref().map(|p| {
            let check = Check::of(p, &container, pod_ip).unwrap_or_else(|e| {
                warn!(container = %container.name, error = %e, "readiness probe can never pass");
                Check::Fail
            });
            (check, Timing::of(p))
        });
        slot.next_probe = slot
            .probe
            .as_ref()
            .map(|(_, timing)| Instant::now() + timing.initial_delay);
        slot.record.state = State::Running {
            started_at: Timestamp::now(),
            ready: slot.probe.is_none(),
            container_id: container_id(pid),
        };
        let (run, tx) = (slot.run, self.events_tx.clone());
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = tx.send(Event::Exited { index, run, status });
        });
        Ok(())
    }

    /// The delay before container `index` is tried again: doubling per failure in a row, where
    /// a run longer than twice the longest delay ends the row.
    fn backoff(&mut self, index: usize) -> Duration {
        let (initial, max) = (self.agent.backoff_initial, self.agent.backoff_max);
        let slot = &mut self.slots[index];
        if slot.started.take().is_some_and(|s| s.elapsed() > max * 2) {
            slot.crashes = 0;
        }
        let delay = backoff(initial, max, slot.crashes);
        slot.crashes += 1;
        delay
    }

    /// What the kubelet (and a container runtime) put in every container's environment.
    fn base_env(&self) -> EnvVars {
        let mut vars = self.agent.api_server.service_env();
        vars.set("HOSTNAME", self.name.clone());
        // Programs are found the way the agent finds them; an image has no PATH of its own here.
        if let Ok(path) = std::env::var("PATH") {
            vars.set("PATH", path);
        }
        if let Some(config) = &self.kubeconfig {
            vars.set("KUBECONFIG", config.to_string_lossy().into_owned());
        }
        vars
    }

    pub(super) fn on_event(&mut self, event: Event, terminating: bool) {
        match event {
            Event::Exited { index, run, status } => {
                let key = self.key();
                let slot = &mut self.slots[index];
                if run != slot.run {
                    return;
                }
                let Some(pid) = slot.pid.take() else { return };
                // What the main process started dies with it, as in a container.
                process::signal_group(pid, libc::SIGKILL);
                let _ = std::fs::remove_file(process::pid_path(&self.dir, &slot.record.name));
                let (exit_code, signal) = match status {
                    Ok(status) => process::exit_code(status),
                    Err(_) => (-1, None),
                };
                let started_at = match &slot.record.state {
                    State::Running { started_at, .. } => Some(*started_at),
                    _ => None,
                };
                let termination = Termination {
                    exit_code,
                    signal,
                    reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
                    message: None,
                    started_at,
                    finished_at: Timestamp::now(),
                    container_id: Some(container_id(pid)),
                };
                info!(pod = %key, container = %slot.record.name, exit_code, ?signal, "container exited");
                slot.next_probe = None;
                if !terminating && self.policy.restarts(exit_code) {
                    let delay = self.backoff(index);
                    let slot = &mut self.slots[index];
                    slot.record.last_termination = Some(termination);
                    slot.record.state = waiting_to_restart(&slot.record.name, delay);
                    slot.restart_at = Some(Instant::now() + delay);
                } else {
                    slot.record.state = State::Terminated(termination);
                }
            }
            Event::Probed { index, run, ok } => {
                let slot = &mut self.slots[index];
                if run != slot.run || slot.pid.is_none() {
                    return;
                }
                if let Some((_, timing)) = &slot.probe {
                    slot.readiness.record(ok, timing);
                    slot.next_probe = Some(Instant::now() + timing.period);
                }
                if let State::Running { ready, .. } = &mut slot.record.state {
                    *ready = slot.readiness.ready;
                }
            }
        }
    }
}

fn container_id(pid: u32) -> String {
    format!("process://{pid}")
}

pub(super) fn waiting_to_restart(container: &str, delay: Duration) -> State {
    State::Waiting {
        reason: "CrashLoopBackOff".into(),
        message: Some(format!(
            "back-off {}s restarting failed container={container}",
            delay.as_secs_f64()
        )),
    }
}

/// The kubelet's restart back-off: doubling from `initial` per consecutive crash, capped.
fn backoff(initial: Duration, max: Duration, crashes: u32) -> Duration {
    initial.saturating_mul(1 << crashes.min(20)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = |n| backoff(Duration::from_secs(1), Duration::from_secs(30), n);
        assert_eq!(b(0), Duration::from_secs(1));
        assert_eq!(b(1), Duration::from_secs(2));
        assert_eq!(b(4), Duration::from_secs(16));
        assert_eq!(b(5), Duration::from_secs(30));
        assert_eq!(b(100), Duration::from_secs(30));
    }
}
