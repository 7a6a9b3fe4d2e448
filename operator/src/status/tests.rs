use super::*;
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use serde_json::json;
use spate_proto::v1::WorkerStatus;

use crate::fixtures;

fn condition<'a>(status: &'a StreamJobStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

fn assessed(job: &StreamJob, health: Health<'_>, now: &str) -> StreamJobStatus {
    let mut status = job.status.clone().unwrap_or_default();
    status.parallelism = Some(job.spec.parallelism);
    assess(job, &mut status, health, now);
    status
}

#[test]
fn a_running_job_is_ready_and_not_progressing() {
    let job = fixtures::job(json!({}));
    let status = assessed(&job, Health::Running, "T1");
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(condition(&status, READY).status, "True");
    assert_eq!(condition(&status, PROGRESSING).status, "False");
    assert_eq!(condition(&status, DEGRADED).status, "False");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&status, READY).observed_generation, Some(1));
    assert_eq!(status.replicas, Some(2));
    assert_eq!(
        status.label_selector.as_deref(),
        Some("app.kubernetes.io/name=spate,spate.dev/component=worker,spate.dev/job=hop")
    );
}

#[test]
fn a_failed_job_is_degraded_with_its_failure_as_the_error() {
    let job = fixtures::job(json!({}));
    let message = "SQL error at line 1, column 8: unknown table 'a'";
    let status = assessed(&job, Health::Failed { message }, "T1");
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(status.error.as_deref(), Some(message));
    let degraded = condition(&status, DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "JobFailed")
    );
    assert_eq!(degraded.message, message);
    assert_eq!(condition(&status, READY).status, "False");
}

#[test]
fn a_lost_jobmaster_keeps_the_phase_and_is_degraded_but_not_failed() {
    let job = fixtures::job(json!({}));
    let health = Health::Lost {
        phase: Phase::Running,
        message: "the JobMaster pod is missing",
    };
    let status = assessed(&job, health, "T1");
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(status.error, None);
    assert_eq!(condition(&status, READY).status, "False");
    assert_eq!(condition(&status, PROGRESSING).reason, "JobMasterLost");
    assert_eq!(condition(&status, DEGRADED).status, "True");
    assert_eq!(
        condition(&status, DEGRADED).message,
        "the JobMaster pod is missing"
    );
}

#[test]
fn a_starting_job_is_deploying_or_upgrading_and_a_stalled_rollout_is_degraded() {
    let job = fixtures::job(json!({}));
    let starting = |upgrading, stalled| Health::Starting {
        upgrading,
        message: "waiting",
        stalled,
    };
    let status = assessed(&job, starting(false, None), "T1");
    assert_eq!(status.phase, Some(Phase::Deploying));
    assert_eq!(condition(&status, PROGRESSING).status, "True");
    assert_eq!(condition(&status, DEGRADED).status, "False");
    let status = assessed(&job, starting(true, Some("too slow")), "T1");
    assert_eq!(status.phase, Some(Phase::Upgrading));
    assert_eq!(condition(&status, DEGRADED).reason, "JobMasterStalled");

    let deployment = Deployment {
        status: Some(DeploymentStatus {
            conditions: Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("took too long".into()),
                ..DeploymentCondition::default()
            }]),
            ..DeploymentStatus::default()
        }),
        ..Deployment::default()
    };
    assert!(
        stalled(&deployment)
            .unwrap()
            .contains("ProgressDeadlineExceeded")
    );
    assert_eq!(stalled(&Deployment::default()), None);
}

#[test]
fn a_suspended_job_is_progressing_until_its_pods_are_gone() {
    let job = fixtures::job(json!({"state": "suspended"}));
    let status = assessed(&job, Health::Suspended { stopping: true }, "T1");
    assert_eq!(status.phase, Some(Phase::Suspended));
    assert_eq!(condition(&status, PROGRESSING).reason, "Suspending");
    let status = assessed(&job, Health::Suspended { stopping: false }, "T1");
    assert_eq!(condition(&status, PROGRESSING).status, "False");
    assert_eq!(condition(&status, PROGRESSING).reason, "Suspended");
}

#[test]
fn an_invalid_spec_fails_with_its_message() {
    let job = fixtures::job(json!({}));
    let health = Health::Invalid {
        reason: "InvalidSpec",
        message: "bad template",
    };
    let status = assessed(&job, health, "T1");
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(status.error.as_deref(), Some("bad template"));
    assert_eq!(condition(&status, DEGRADED).reason, "InvalidSpec");
}

#[test]
fn conditions_keep_their_transition_time_until_their_status_changes() {
    let mut job = fixtures::job(json!({}));
    let starting = Health::Starting {
        upgrading: false,
        message: "waiting",
        stalled: None,
    };
    job.status = Some(assessed(&job, starting, "T1"));
    let again = assessed(&job, starting, "T2");
    assert!(
        again
            .conditions
            .iter()
            .all(|c| c.last_transition_time == "T1")
    );
    assert_eq!(job.status.as_ref(), Some(&again));

    let running = assessed(&job, Health::Running, "T3");
    assert_eq!(condition(&running, READY).last_transition_time, "T3");
    assert_eq!(condition(&running, PROGRESSING).last_transition_time, "T3");
    assert_eq!(condition(&running, DEGRADED).last_transition_time, "T1");
}

#[test]
fn the_jobmasters_report_becomes_checkpoint_savepoint_counts_and_rates() {
    let job = fixtures::job(json!({"parallelism": 5, "worker": {"slots": 2}}));
    let mut live = fixtures::job_status(1, JobState::Running, Some(42));
    live.parallelism = 5;
    live.workers = vec![WorkerStatus::default(), WorkerStatus::default()];
    if let Some(checkpoints) = live.checkpoints.as_mut() {
        checkpoints.savepoint_id = 40;
        checkpoints.savepoint_location = "s3://ckpt/sp-40".into();
        checkpoints.savepoint_completed_unix_ms = 1_749_999_000_000;
    }
    let mut status = StreamJobStatus::default();
    fold(&job, &mut status, &live);
    assert_eq!(status.job_state.as_deref(), Some("RUNNING"));
    assert_eq!(status.parallelism, Some(5));
    assert_eq!(
        status.workers,
        Some(WorkerCounts {
            desired: 3,
            ready: 2
        })
    );
    let checkpoint = status.last_checkpoint.clone().unwrap();
    assert_eq!(checkpoint.id, Some(42));
    assert_eq!(checkpoint.location, "s3://ckpt/run-1/chk-42");
    assert_eq!(checkpoint.time, "2025-06-15T15:06:40Z");
    assert_eq!(checkpoint.size_bytes, Some(4096));
    let savepoint = status.last_savepoint.clone().unwrap();
    assert_eq!(savepoint.id, Some(40));
    assert_eq!(savepoint.location, "s3://ckpt/sp-40");
    assert_eq!(status.failover_count, Some(1));
    assert_eq!(status.records_per_second, Some(1234.6));
    assert_eq!(status.back_pressure, Some(0.12));
    assert_eq!(status.error, None);

    let mut failed = fixtures::job_status(1, JobState::Failed, None);
    failed.failure = "SQL error at line 2, column 15: no table 'bids'".into();
    fold(&job, &mut status, &failed);
    assert_eq!(status.job_state.as_deref(), Some("FAILED"));
    assert_eq!(status.error.as_deref(), Some(failed.failure.as_str()));
    assert!(ended(status.job_state.as_deref()));
    assert!(!ended(Some("RUNNING")) && !ended(None));
}

#[test]
fn now_is_rfc3339_to_the_second() {
    let now = now();
    assert_eq!(now.len(), "2025-01-01T00:00:00Z".len(), "{now}");
    assert!(now.ends_with('Z'));
}
