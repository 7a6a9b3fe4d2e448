//! The pod status the agent reports, built from what it knows of its processes (a pure function,
//! so the phase rules are tested without an API server).

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// How a process ended, in the API's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// "Completed", "Error", or why it never ran.
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        ready: bool,
        container_id: String,
    },
    Terminated(Termination),
}

/// One container as the agent tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub state: State,
    pub restart_count: i32,
    pub last_termination: Option<Termination>,
}

impl Container {
    pub fn creating(name: &str, image: &str) -> Self {
        Self {
            name: name.to_string(),
            image: image.to_string(),
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            restart_count: 0,
            last_termination: None,
        }
    }

    fn ready(&self) -> bool {
        matches!(self.state, State::Running { ready: true, .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(policy: Option<&str>) -> Self {
        match policy {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }

    /// Whether a container that ended with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

/// The kubelet's phase rules (`getPhase`): a container waiting for its first start keeps the pod
/// Pending; one waiting to be restarted counts by its last termination. `terminating` is a pod
/// being deleted, whose stopped containers are not restarted any more.
pub fn phase(containers: &[Container], policy: RestartPolicy, terminating: bool) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        let ended = match &c.state {
            State::Running { .. } => {
                running += 1;
                continue;
            }
            State::Terminated(t) => Some(t),
            State::Waiting { .. } => c.last_termination.as_ref(),
        };
        match ended {
            Some(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            None => waiting += 1,
        }
    }
    if waiting > 0 && !terminating {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        // Nothing ever ran and nothing will.
        return if terminating { "Failed" } else { "Pending" };
    }
    let policy = if terminating {
        RestartPolicy::Never
    } else {
        policy
    };
    match policy {
        RestartPolicy::Always => "Running",
        RestartPolicy::OnFailure if stopped != succeeded => "Running",
        _ if stopped == succeeded && waiting == 0 => "Succeeded",
        _ => "Failed",
    }
}

/// Everything the status is built from.
pub struct Input<'a> {
    pub containers: &'a [Container],
    pub policy: RestartPolicy,
    pub terminating: bool,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub start_time: Timestamp,
    /// The status as last seen, for the transition times of unchanged conditions and the
    /// scheduler's PodScheduled condition.
    pub previous: Option<&'a PodStatus>,
    pub now: Timestamp,
}

pub fn pod_status(input: &Input) -> PodStatus {
    let phase = phase(input.containers, input.policy, input.terminating);
    let completed = matches!(phase, "Succeeded" | "Failed");
    let unready: Vec<&str> = input
        .containers
        .iter()
        .filter(|c| !c.ready())
        .map(|c| c.name.as_str())
        .collect();
    let ready_condition = |type_: &str| {
        if completed {
            condition(type_, false, Some("PodCompleted"), None)
        } else if unready.is_empty() {
            condition(type_, true, None, None)
        } else {
            condition(
                type_,
                false,
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                )),
            )
        }
    };
    let scheduled = input
        .previous
        .and_then(|p| {
            p.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled")
        })
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, None));
    let mut conditions = vec![
        condition(
            "Initialized",
            true,
            completed.then_some("PodCompleted"),
            None,
        ),
        ready_condition("ContainersReady"),
        ready_condition("Ready"),
    ];
    let previous = input.previous.and_then(|p| p.conditions.as_ref());
    for c in &mut conditions {
        c.last_transition_time = previous
            .and_then(|old| {
                old.iter()
                    .find(|o| o.type_ == c.type_ && o.status == c.status)
            })
            .and_then(|o| o.last_transition_time.clone())
            .or(Some(Time(input.now)));
    }
    conditions.insert(0, scheduled);

    // A completed pod keeps reporting its address, as with the kubelet, although the agent
    // may hand it to another pod.
    let pod_ip = input.pod_ip;
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: input.host_ip.to_string(),
        }]),
        pod_ip: pod_ip.map(|ip| ip.to_string()),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        start_time: Some(Time(input.start_time)),
        // The API server sets the QoS class at creation and refuses any change to it.
        qos_class: input.previous.and_then(|p| p.qos_class.clone()),
        container_statuses: Some(input.containers.iter().map(container_status).collect()),
        ..PodStatus::default()
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..PodCondition::default()
    }
}

fn container_status(c: &Container) -> ContainerStatus {
    let (state, container_id) = match &c.state {
        State::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..ContainerState::default()
            },
            None,
        ),
        State::Running {
            started_at,
            container_id,
            ..
        } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..ContainerState::default()
            },
            Some(container_id.clone()),
        ),
        State::Terminated(t) => (terminated(t), t.container_id.clone()),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: String::new(),
        container_id,
        ready: c.ready(),
        started: Some(matches!(c.state, State::Running { .. })),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: Some(
            c.last_termination
                .as_ref()
                .map(terminated)
                .unwrap_or_default(),
        ),
        ..ContainerStatus::default()
    }
}

fn terminated(t: &Termination) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: t.started_at.map(Time),
            finished_at: Some(Time(t.finished_at)),
            container_id: t.container_id.clone(),
        }),
        ..ContainerState::default()
    }
}

/// The container as an earlier agent (or an earlier run of this one) last reported it, so that
/// a restarted agent carries on counting restarts. A container that was running then has been
/// killed with its agent and is treated as having died.
pub fn resume(
    status: Option<&ContainerStatus>,
    name: &str,
    image: &str,
    now: Timestamp,
) -> Container {
    let mut container = Container::creating(name, image);
    let Some(status) = status else {
        return container;
    };
    let from_state = |state: &ContainerState| -> Option<Termination> {
        if let Some(t) = &state.terminated {
            return Some(Termination {
                exit_code: t.exit_code,
                signal: t.signal,
                reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
                message: t.message.clone(),
                started_at: t.started_at.as_ref().map(|t| t.0),
                finished_at: t.finished_at.as_ref().map_or(now, |t| t.0),
                container_id: t.container_id.clone(),
            });
        }
        state.running.as_ref().map(|r| Termination {
            exit_code: 137,
            signal: Some(libc::SIGKILL),
            reason: "Error".into(),
            message: Some("the node agent restarted and killed the process".into()),
            started_at: r.started_at.as_ref().map(|t| t.0),
            finished_at: now,
            container_id: status.container_id.clone(),
        })
    };
    container.restart_count = status.restart_count;
    container.last_termination = status.last_state.as_ref().and_then(from_state);
    if let Some(ended) = status.state.as_ref().and_then(from_state) {
        container.state = State::Terminated(ended);
    }
    container
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn ended(exit_code: i32) -> Termination {
        Termination {
            exit_code,
            signal: None,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: Some(ts(1)),
            finished_at: ts(2),
            container_id: Some("process://42".into()),
        }
    }

    fn with(state: State) -> Container {
        Container {
            state,
            ..Container::creating("main", "spate")
        }
    }

    fn running(ready: bool) -> Container {
        with(State::Running {
            started_at: ts(1),
            ready,
            container_id: "process://42".into(),
        })
    }

    fn backing_off(exit_code: i32) -> Container {
        Container {
            restart_count: 1,
            last_termination: Some(ended(exit_code)),
            ..with(State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: None,
            })
        }
    }

    #[test]
    fn phases() {
        use RestartPolicy::*;
        let creating = Container::creating("main", "spate");
        let done = |code| with(State::Terminated(ended(code)));
        let cases = [
            (vec![creating.clone()], Always, false, "Pending"),
            (
                vec![creating.clone(), running(true)],
                Never,
                false,
                "Pending",
            ),
            (vec![running(false)], Never, false, "Running"),
            (vec![backing_off(1)], Always, false, "Running"),
            (vec![backing_off(1)], OnFailure, false, "Running"),
            (vec![done(0)], Never, false, "Succeeded"),
            (vec![done(0)], OnFailure, false, "Succeeded"),
            (vec![done(1)], Never, false, "Failed"),
            (vec![done(0), done(137)], Never, false, "Failed"),
            (vec![done(0), running(true)], Never, false, "Running"),
            (vec![done(143)], Always, true, "Failed"),
            (vec![done(0)], Always, true, "Succeeded"),
            (vec![creating], Always, true, "Failed"),
        ];
        for (containers, policy, terminating, want) in cases {
            assert_eq!(
                phase(&containers, policy, terminating),
                want,
                "{containers:?} {policy:?} terminating={terminating}"
            );
        }
    }

    fn input<'a>(containers: &'a [Container], previous: Option<&'a PodStatus>) -> Input<'a> {
        Input {
            containers,
            policy: RestartPolicy::Never,
            terminating: false,
            pod_ip: Some(Ipv4Addr::new(127, 1, 0, 2)),
            host_ip: Ipv4Addr::new(127, 0, 0, 1),
            start_time: ts(1),
            previous,
            now: ts(10),
        }
    }

    fn condition_of<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn running_status_has_addresses_conditions_and_container_state() {
        let containers = [running(false)];
        let status = pod_status(&input(&containers, None));
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.1.0.2"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "127.1.0.2");
        assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
        let types: Vec<&str> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            types,
            ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        );
        let ready = condition_of(&status, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [main]")
        );
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert!(!cs.ready);
        assert_eq!(cs.started, Some(true));
        assert!(cs.state.as_ref().unwrap().running.is_some());
        assert_eq!(cs.container_id.as_deref(), Some("process://42"));

        // Becoming ready moves only the transition times of the conditions that changed.
        let later = [running(true)];
        let mut next = input(&later, Some(&status));
        next.now = ts(20);
        let status2 = pod_status(&next);
        let time = |s: &PodStatus, t: &str| condition_of(s, t).last_transition_time.clone();
        assert_eq!(condition_of(&status2, "Ready").status, "True");
        assert_eq!(time(&status2, "Ready"), Some(Time(ts(20))));
        assert_eq!(time(&status2, "Initialized"), Some(Time(ts(10))));
        assert!(status2.container_statuses.unwrap()[0].ready);
    }

    #[test]
    fn completed_pods_report_the_exit() {
        let containers = [with(State::Terminated(ended(3)))];
        let status = pod_status(&input(&containers, None));
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(
            condition_of(&status, "Ready").reason.as_deref(),
            Some("PodCompleted")
        );
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            3
        );
    }

    #[test]
    fn restarts_show_the_last_termination() {
        let containers = [backing_off(137)];
        let status = pod_status(&input(&containers, None));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 1);
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 137);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
    }

    #[test]
    fn resume_counts_a_running_container_as_killed() {
        let containers = [Container {
            restart_count: 2,
            ..running(true)
        }];
        let status = pod_status(&input(&containers, None));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        let resumed = resume(Some(cs), "main", "spate", ts(30));
        assert_eq!(resumed.restart_count, 2);
        let State::Terminated(t) = &resumed.state else {
            panic!("{resumed:?}");
        };
        assert_eq!(t.exit_code, 137);
        assert_eq!(t.finished_at, ts(30));
        assert_eq!(
            resume(None, "main", "spate", ts(30)),
            Container::creating("main", "spate")
        );
    }
}
