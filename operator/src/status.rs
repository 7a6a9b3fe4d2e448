//! The status the operator reports for a `StreamJob`: what the job's JobMaster says (`fold`),
//! and the phase and Ready/Progressing/Degraded conditions of how the reconciler found the job
//! (`assess`).
//!
//! The status is also the operator's memory of what it deployed (`deployed`, the handled
//! savepoint nonce): the status is written whole, each field derived from the previous status
//! and what was observed since.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use spate_proto::v1::{JobState, JobStatus};

use crate::crd::{CheckpointInfo, Condition, Phase, StreamJob, StreamJobStatus, WorkerCounts};
use crate::resources;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// How the reconciler found the job.
#[derive(Debug, Clone, Copy)]
pub enum Health<'a> {
    /// The spec cannot be turned into objects (nothing was applied).
    Invalid {
        reason: &'a str,
        message: &'a str,
    },
    /// The job's SQL is not there yet (a missing ConfigMap or key); retried.
    Waiting {
        reason: &'a str,
        message: &'a str,
    },
    /// `state: suspended`; `stopping` while the JobMaster pod is still there.
    Suspended {
        stopping: bool,
    },
    /// A new run replaces the previous one, whose pods are being removed.
    Upgrading,
    /// The run's JobMaster or job is starting; `upgrading` keeps the phase of an upgrade.
    Starting {
        upgrading: bool,
        message: &'a str,
        stalled: Option<&'a str>,
    },
    /// The job ran, but its JobMaster is now missing, not ready or not answering: its
    /// replacement adopts the tasks the workers kept running. Not a failure.
    Lost {
        phase: Phase,
        message: &'a str,
    },
    Running,
    /// The job failed (its SQL does not plan, or its restarts ran out).
    Failed {
        message: &'a str,
    },
    /// The job ended by itself (a bounded job), or was canceled or stopped from outside.
    Finished {
        reason: &'a str,
    },
}

/// Sets the phase, the conditions, the error and the scale subresource's fields of `status`
/// from `health`. Conditions keep their transition time while their status stays.
pub fn assess(job: &StreamJob, status: &mut StreamJobStatus, health: Health<'_>, now: &str) {
    let generation = job.metadata.generation;
    let cond = |type_: &str, on: bool, reason: &str, message: &str| Condition {
        type_: type_.into(),
        status: if on { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now.into(),
        observed_generation: generation,
    };
    let fine = || cond(DEGRADED, false, "AsExpected", "nothing is wrong");
    let (phase, conditions, error) = match health {
        Health::Invalid { reason, message } => (
            Phase::Failed,
            [
                cond(READY, false, reason, message),
                cond(PROGRESSING, false, reason, message),
                cond(DEGRADED, true, reason, message),
            ],
            Some(message),
        ),
        Health::Waiting { reason, message } => (
            Phase::Pending,
            [
                cond(READY, false, reason, message),
                cond(PROGRESSING, true, reason, message),
                cond(DEGRADED, true, reason, message),
            ],
            Some(message),
        ),
        Health::Suspended { stopping } => {
            let (reason, message) = if stopping {
                ("Suspending", "stopping the JobMaster and worker pods")
            } else {
                ("Suspended", "the job is suspended: no pod runs")
            };
            (
                Phase::Suspended,
                [
                    cond(READY, false, "Suspended", "the job is suspended"),
                    cond(PROGRESSING, stopping, reason, message),
                    fine(),
                ],
                None,
            )
        }
        Health::Upgrading => {
            let message = "stopping the previous run's pods before the new run starts";
            (
                Phase::Upgrading,
                [
                    cond(READY, false, "Upgrading", message),
                    cond(PROGRESSING, true, "Upgrading", message),
                    fine(),
                ],
                None,
            )
        }
        Health::Starting {
            upgrading,
            message,
            stalled,
        } => (
            if upgrading {
                Phase::Upgrading
            } else {
                Phase::Deploying
            },
            [
                cond(READY, false, "JobStarting", message),
                cond(PROGRESSING, true, "JobStarting", message),
                match stalled {
                    Some(why) => cond(DEGRADED, true, "JobMasterStalled", why),
                    None => fine(),
                },
            ],
            None,
        ),
        Health::Lost { phase, message } => (
            phase,
            [
                cond(READY, false, "JobMasterLost", message),
                cond(
                    PROGRESSING,
                    true,
                    "JobMasterLost",
                    "waiting for the JobMaster to be back",
                ),
                cond(DEGRADED, true, "JobMasterLost", message),
            ],
            None,
        ),
        Health::Running => (
            Phase::Running,
            [
                cond(READY, true, "JobRunning", "the job is running"),
                cond(PROGRESSING, false, "Deployed", "the job is deployed"),
                fine(),
            ],
            None,
        ),
        Health::Failed { message } => (
            Phase::Failed,
            [
                cond(READY, false, "JobFailed", message),
                cond(
                    PROGRESSING,
                    false,
                    "JobFailed",
                    "the job failed: change the spec to retry",
                ),
                cond(DEGRADED, true, "JobFailed", message),
            ],
            Some(message),
        ),
        Health::Finished { reason } => {
            let message = "the job ended";
            (
                Phase::Finished,
                [
                    cond(READY, false, reason, message),
                    cond(PROGRESSING, false, reason, message),
                    fine(),
                ],
                None,
            )
        }
    };
    status.phase = Some(phase);
    status.conditions = conditions.to_vec();
    status.error = error.map(str::to_string);
    status.observed_generation = generation;
    status.label_selector = Some(resources::worker_selector(&job.name_any()));
    status.replicas = status.parallelism;
    keep_transition_times(&mut status.conditions, job.status.as_ref());
}

/// Takes what the JobMaster of the current run reports into `status`.
pub fn fold(job: &StreamJob, status: &mut StreamJobStatus, live: &JobStatus) {
    status.job_state = Some(state_name(live.state()).to_string());
    if live.parallelism > 0 {
        status.parallelism = i32::try_from(live.parallelism).ok();
    }
    status.workers = Some(WorkerCounts {
        desired: workers_needed(job),
        ready: i32::try_from(live.workers.len()).unwrap_or(i32::MAX),
    });
    if let Some(checkpoints) = &live.checkpoints {
        if checkpoints.latest_id > 0 && !checkpoints.latest_location.is_empty() {
            status.last_checkpoint = Some(CheckpointInfo {
                id: i64::try_from(checkpoints.latest_id).ok(),
                time: time_of(checkpoints.latest_completed_unix_ms),
                location: checkpoints.latest_location.clone(),
                size_bytes: i64::try_from(checkpoints.latest_state_bytes).ok(),
            });
        }
        // A savepoint this JobMaster took, also one asked for outside the operator.
        if checkpoints.savepoint_id > 0 && !checkpoints.savepoint_location.is_empty() {
            status.last_savepoint = Some(CheckpointInfo {
                id: i64::try_from(checkpoints.savepoint_id).ok(),
                time: time_of(checkpoints.savepoint_completed_unix_ms),
                location: checkpoints.savepoint_location.clone(),
                size_bytes: None,
            });
        }
    }
    status.failover_count = Some(i64::from(live.restarts));
    status.last_failover = Some(live.last_failover.clone()).filter(|f| !f.is_empty());
    // Rounded: a status that changes in the noise of a rate is written for nothing.
    status.records_per_second = Some((live.source_records_per_second * 10.0).round() / 10.0);
    status.back_pressure = Some((live.back_pressure * 100.0).round() / 100.0);
    if live.state() == JobState::Failed {
        let failure = match live.failure.is_empty() {
            true => "the job failed (the JobMaster gave no reason)".to_string(),
            false => live.failure.clone(),
        };
        status.error = Some(failure);
    }
}

/// Forgets what was observed of a run that is replaced.
pub fn forget_run(job: &StreamJob, status: &mut StreamJobStatus) {
    status.job_state = None;
    status.last_checkpoint = None;
    status.failover_count = None;
    status.last_failover = None;
    status.records_per_second = None;
    status.back_pressure = None;
    status.error = None;
    status.parallelism = Some(job.spec.parallelism);
    status.workers = Some(WorkerCounts {
        desired: workers_needed(job),
        ready: 0,
    });
}

/// Worker pods the job needs: its parallelism over the slots of one worker, rounded up.
fn workers_needed(job: &StreamJob) -> i32 {
    let slots = job.spec.worker.slots.max(1);
    (job.spec.parallelism + slots - 1) / slots
}

/// The names the status uses for job states.
pub fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Unspecified => "UNKNOWN",
        JobState::Created => "CREATED",
        JobState::Running => "RUNNING",
        JobState::Finished => "FINISHED",
        JobState::Failed => "FAILED",
        JobState::Canceled => "CANCELED",
        JobState::Stopped => "STOPPED",
    }
}

/// Whether the job of a run is over (the JobMaster serves its final status).
pub fn ended(job_state: Option<&str>) -> bool {
    matches!(
        job_state,
        Some("FINISHED" | "FAILED" | "CANCELED" | "STOPPED")
    )
}

/// Why the JobMaster Deployment does not progress, when it says so.
pub fn stalled(deployment: &Deployment) -> Option<String> {
    let status = deployment.status.as_ref()?;
    let c = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing" && c.status == "False" && c.reason.is_some())?;
    Some(format!(
        "the JobMaster Deployment is not progressing ({}): {}",
        c.reason.as_deref().unwrap_or_default(),
        c.message.as_deref().unwrap_or_default()
    ))
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

/// Milliseconds since the Unix epoch in RFC 3339 (now, when the JobMaster gave none).
fn time_of(unix_ms: u64) -> String {
    let at = i64::try_from(unix_ms)
        .ok()
        .filter(|ms| *ms > 0)
        .and_then(|ms| k8s_openapi::jiff::Timestamp::from_millisecond(ms).ok());
    match at {
        Some(at) => at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => now(),
    }
}

/// Now, in RFC 3339 to the second (as Kubernetes writes condition times).
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests;
