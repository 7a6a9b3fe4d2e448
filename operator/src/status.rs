//! The status the operator reports for a `StreamJob`, computed from the job and what it
//! observed of its JobMaster Deployment: the phase, the Ready/Progressing/Degraded conditions,
//! `observedGeneration`, and the scale subresource's `replicas` and `labelSelector`.
//!
//! Until the operator reads the job's state from the JobMaster itself, `Running` means the
//! JobMaster pod is up and serving, not that every task runs.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use crate::crd::{Condition, DesiredState, Phase, StreamJob, StreamJobStatus};
use crate::resources;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// What the reconciler found.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// The children were applied; the Deployment as the API server returned it.
    Applied(&'a Deployment),
    /// The spec cannot be turned into objects (nothing was applied).
    Invalid { reason: &'a str, message: &'a str },
    /// The job's SQL is not there yet (a missing ConfigMap or key); retried.
    Waiting { reason: &'a str, message: &'a str },
}

/// The status fields the operator owns (the others, such as checkpoints, are left out so that
/// server-side apply does not claim them).
pub fn desired(job: &StreamJob, observed: Observation<'_>, now: &str) -> StreamJobStatus {
    let generation = job.metadata.generation;
    let cond = |type_: &str, status: bool, reason: &str, message: &str| Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now.into(),
        observed_generation: generation,
    };
    let (phase, conditions, error) = match observed {
        Observation::Invalid { reason, message } => (
            Phase::Failed,
            vec![
                cond(READY, false, reason, message),
                cond(PROGRESSING, false, reason, message),
                cond(DEGRADED, true, reason, message),
            ],
            Some(message.to_string()),
        ),
        Observation::Waiting { reason, message } => (
            Phase::Pending,
            vec![
                cond(READY, false, reason, message),
                cond(PROGRESSING, true, reason, message),
                cond(DEGRADED, true, reason, message),
            ],
            Some(message.to_string()),
        ),
        Observation::Applied(deployment) => from_deployment(job, deployment, cond),
    };
    let mut status = StreamJobStatus {
        phase: Some(phase),
        conditions,
        observed_generation: generation,
        job_id: Some(resources::job_id(job)),
        parallelism: Some(job.spec.parallelism),
        replicas: Some(job.spec.parallelism),
        label_selector: Some(resources::worker_selector(&job.name_any())),
        error,
        ..StreamJobStatus::default()
    };
    keep_transition_times(&mut status.conditions, job.status.as_ref());
    status
}

fn from_deployment(
    job: &StreamJob,
    deployment: &Deployment,
    cond: impl Fn(&str, bool, &str, &str) -> Condition,
) -> (Phase, Vec<Condition>, Option<String>) {
    let status = deployment.status.clone().unwrap_or_default();
    let current = status.observed_generation.is_some()
        && status.observed_generation >= deployment.metadata.generation;
    let pods = status.replicas.unwrap_or(0);
    let stalled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing" && c.status == "False" && c.reason.is_some());
    let degraded = match stalled {
        Some(c) => cond(
            DEGRADED,
            true,
            "JobMasterStalled",
            &format!(
                "the JobMaster Deployment is not progressing ({}): {}",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            ),
        ),
        None => cond(DEGRADED, false, "AsExpected", "nothing is wrong"),
    };
    if job.spec.state == DesiredState::Suspended {
        let stopping = !current || pods > 0;
        let (reason, message) = if stopping {
            ("Suspending", "stopping the JobMaster pod")
        } else {
            ("Suspended", "the job is suspended: no JobMaster pod runs")
        };
        return (
            Phase::Suspended,
            vec![
                cond(READY, false, "Suspended", "the job is suspended"),
                cond(PROGRESSING, stopping, reason, message),
                degraded,
            ],
            None,
        );
    }
    let ready = current
        && status.updated_replicas.unwrap_or(0) >= 1
        && status.ready_replicas.unwrap_or(0) >= 1
        && pods == status.updated_replicas.unwrap_or(0);
    if ready {
        (
            Phase::Running,
            vec![
                cond(
                    READY,
                    true,
                    "JobMasterReady",
                    "the JobMaster pod is ready (the job's own state is not read from it yet)",
                ),
                cond(PROGRESSING, false, "Deployed", "the JobMaster is deployed"),
                degraded,
            ],
            None,
        )
    } else {
        (
            Phase::Deploying,
            vec![
                cond(
                    READY,
                    false,
                    "JobMasterStarting",
                    "waiting for the JobMaster pod",
                ),
                cond(
                    PROGRESSING,
                    true,
                    "JobMasterStarting",
                    "waiting for the JobMaster pod",
                ),
                degraded,
            ],
            None,
        )
    }
}

/// A condition whose status did not change keeps the time it last changed.
fn keep_transition_times(conditions: &mut [Condition], previous: Option<&StreamJobStatus>) {
    let Some(previous) = previous else { return };
    for condition in conditions {
        if let Some(before) = previous
            .conditions
            .iter()
            .find(|c| c.type_ == condition.type_ && c.status == condition.status)
        {
            condition.last_transition_time = before.last_transition_time.clone();
        }
    }
}

/// True when applying `desired` would change nothing the operator owns in `current`.
pub fn unchanged(current: Option<&StreamJobStatus>, desired: &StreamJobStatus) -> bool {
    let Some(current) = current else { return false };
    current.phase == desired.phase
        && current.conditions == desired.conditions
        && current.observed_generation == desired.observed_generation
        && current.job_id == desired.job_id
        && current.parallelism == desired.parallelism
        && current.replicas == desired.replicas
        && current.label_selector == desired.label_selector
        && current.error == desired.error
}

/// Now, in RFC 3339 to the second (as Kubernetes writes condition times).
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    fn job(state: DesiredState) -> StreamJob {
        let spec = serde_json::from_value(serde_json::json!({
            "image": "spate:1.0",
            "parallelism": 3,
            "state": state,
            "job": {"sql": "SELECT 1"},
        }))
        .unwrap();
        let mut job = StreamJob::new("hop", spec);
        job.metadata.namespace = Some("streams".into());
        job.metadata.generation = Some(4);
        job
    }

    fn deployment(status: Option<DeploymentStatus>) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(2);
        d.status = status;
        d
    }

    fn running_pod() -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(1),
            updated_replicas: Some(1),
            ready_replicas: Some(1),
            available_replicas: Some(1),
            ..DeploymentStatus::default()
        }
    }

    fn condition<'a>(status: &'a StreamJobStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_new_deployment_is_deploying_and_progressing() {
        let job = job(DesiredState::Running);
        let d = deployment(None);
        let status = desired(&job, Observation::Applied(&d), "T1");
        assert_eq!(status.phase, Some(Phase::Deploying));
        assert_eq!(condition(&status, READY).status, "False");
        assert_eq!(condition(&status, PROGRESSING).status, "True");
        assert_eq!(condition(&status, DEGRADED).status, "False");
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(condition(&status, READY).observed_generation, Some(4));
        assert_eq!(status.replicas, Some(3));
        assert_eq!(status.parallelism, Some(3));
        assert_eq!(status.job_id.as_deref(), Some("streams-hop"));
        assert_eq!(
            status.label_selector.as_deref(),
            Some("app.kubernetes.io/name=spate,spate.dev/component=worker,spate.dev/job=hop")
        );
    }

    #[test]
    fn a_ready_jobmaster_makes_the_job_running() {
        let job = job(DesiredState::Running);
        let d = deployment(Some(running_pod()));
        let status = desired(&job, Observation::Applied(&d), "T1");
        assert_eq!(status.phase, Some(Phase::Running));
        assert_eq!(condition(&status, READY).status, "True");
        assert_eq!(condition(&status, READY).reason, "JobMasterReady");
        assert_eq!(condition(&status, PROGRESSING).status, "False");
    }

    #[test]
    fn a_deployment_status_of_an_older_generation_is_not_ready_yet() {
        let job = job(DesiredState::Running);
        let mut d = deployment(Some(running_pod()));
        d.metadata.generation = Some(3);
        let status = desired(&job, Observation::Applied(&d), "T1");
        assert_eq!(status.phase, Some(Phase::Deploying));
    }

    #[test]
    fn a_stalled_rollout_is_degraded() {
        let job = job(DesiredState::Running);
        let d = deployment(Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(1),
            updated_replicas: Some(1),
            ready_replicas: Some(0),
            conditions: Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("took too long".into()),
                ..DeploymentCondition::default()
            }]),
            ..DeploymentStatus::default()
        }));
        let status = desired(&job, Observation::Applied(&d), "T1");
        assert_eq!(status.phase, Some(Phase::Deploying));
        let degraded = condition(&status, DEGRADED);
        assert_eq!(degraded.status, "True");
        assert!(degraded.message.contains("ProgressDeadlineExceeded"));
    }

    #[test]
    fn a_suspended_job_is_suspended_and_progressing_until_its_pod_is_gone() {
        let job = job(DesiredState::Suspended);
        let d = deployment(Some(running_pod()));
        let status = desired(&job, Observation::Applied(&d), "T1");
        assert_eq!(status.phase, Some(Phase::Suspended));
        assert_eq!(condition(&status, READY).status, "False");
        assert_eq!(condition(&status, PROGRESSING).reason, "Suspending");

        let d = deployment(Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: None,
            ..DeploymentStatus::default()
        }));
        let status = desired(&job, Observation::Applied(&d), "T1");
        assert_eq!(condition(&status, PROGRESSING).status, "False");
        assert_eq!(condition(&status, PROGRESSING).reason, "Suspended");
    }

    #[test]
    fn an_invalid_spec_fails_with_its_message() {
        let job = job(DesiredState::Running);
        let observed = Observation::Invalid {
            reason: "InvalidSpec",
            message: "bad template",
        };
        let status = desired(&job, observed, "T1");
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(status.error.as_deref(), Some("bad template"));
        assert_eq!(condition(&status, DEGRADED).reason, "InvalidSpec");
    }

    #[test]
    fn conditions_keep_their_transition_time_until_their_status_changes() {
        let mut job = job(DesiredState::Running);
        let d = deployment(None);
        job.status = Some(desired(&job, Observation::Applied(&d), "T1"));
        let again = desired(&job, Observation::Applied(&d), "T2");
        assert!(
            again
                .conditions
                .iter()
                .all(|c| c.last_transition_time == "T1")
        );
        assert!(unchanged(job.status.as_ref(), &again));

        let d = deployment(Some(running_pod()));
        let ready = desired(&job, Observation::Applied(&d), "T3");
        assert_eq!(condition(&ready, READY).last_transition_time, "T3");
        assert_eq!(condition(&ready, PROGRESSING).last_transition_time, "T3");
        assert_eq!(condition(&ready, DEGRADED).last_transition_time, "T1");
        assert!(!unchanged(job.status.as_ref(), &ready));
    }

    #[test]
    fn now_is_rfc3339_to_the_second() {
        let now = now();
        assert_eq!(now.len(), "2025-01-01T00:00:00Z".len(), "{now}");
        assert!(now.ends_with('Z'));
    }
}
