//! The decisions of the job's lifecycle that need no I/O: which spec changes redeploy the job,
//! what the first run is, how many JobMaster pods a run gets, and which state a run that is
//! replaced without a new savepoint hands on.

use kube::ResourceExt;

use crate::crd::{DeployedRun, DesiredState, Phase, StreamJob, StreamJobStatus};
use crate::resources::{self, Run, fnv1a};
use crate::status;

/// Fingerprint of what shapes the running job: the SQL, and the spec but what is acted on
/// without a redeployment (`state`, `savepointTriggerNonce`), what only matters at an upgrade
/// or the first start (`upgradeMode`, `initialSavepoint`) and `autoscaler`.
pub fn spec_hash(job: &StreamJob, sql: &str) -> String {
    let mut spec = serde_json::to_value(&job.spec).unwrap_or_default();
    if let Some(fields) = spec.as_object_mut() {
        for field in [
            "job",
            "state",
            "savepointTriggerNonce",
            "upgradeMode",
            "initialSavepoint",
            "autoscaler",
        ] {
            fields.remove(field);
        }
        fields.insert("sql".into(), sql.into());
    }
    format!("{:016x}", fnv1a(spec.to_string().as_bytes()))
}

/// The first run of a new job: from `initialSavepoint`, if any.
pub fn first_run(job: &StreamJob, spec_hash: String) -> DeployedRun {
    DeployedRun {
        run: 1,
        generation: job.metadata.generation.unwrap_or_default(),
        spec_hash,
        restored_from: job.spec.initial_savepoint.clone(),
        stopping: None,
    }
}

/// The JobMaster Deployment's share of the deployed run: one JobMaster pod while the job is to
/// run, none while it is suspended, while the previous run's pods are being removed, or once
/// the run's job ended (a failed job is not restarted until its spec changes).
pub fn run_of(job: &StreamJob, status: &StreamJobStatus, deployed: &DeployedRun) -> Run {
    let runs = job.spec.state == DesiredState::Running
        && deployed.stopping.is_none()
        && !status::ended(status.job_state.as_deref());
    Run {
        job_id: resources::job_id(job, deployed.run),
        from: deployed.restored_from.clone(),
        replicas: i32::from(runs),
    }
}

/// Whether the run the status names has ever been started: a run prepared by a suspension has
/// not, so a spec change while suspended re-stamps it instead of replacing it.
pub fn prepared_only(status: &StreamJobStatus) -> bool {
    status.phase == Some(Phase::Suspended)
}

/// The state the current run hands on when no savepoint is taken now: the latest checkpoint it
/// completed, or else what it started from.
pub fn last_state(status: &StreamJobStatus) -> Option<String> {
    status
        .last_checkpoint
        .as_ref()
        .map(|c| c.location.clone())
        .or_else(|| status.deployed.as_ref()?.restored_from.clone())
}

/// A label selector of the job's worker pods (of every run).
pub fn worker_pods(job: &StreamJob) -> String {
    format!(
        "{}={},{}={}",
        resources::LABEL_JOB,
        job.name_any(),
        resources::LABEL_COMPONENT,
        resources::COMPONENT_WORKER
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::CheckpointInfo;
    use crate::fixtures;
    use serde_json::json;

    #[test]
    fn what_is_acted_on_without_a_redeployment_does_not_change_the_hash() {
        let job = fixtures::job(json!({}));
        let base = spec_hash(&job, "SELECT 1");
        for change in [
            json!({"state": "suspended"}),
            json!({"savepointTriggerNonce": 7}),
            json!({"upgradeMode": "savepoint", "checkpointing": null}),
            json!({"initialSavepoint": "s3://b/sp"}),
            json!({"autoscaler": {"enabled": true}}),
        ] {
            let mut changed = fixtures::job(change.clone());
            changed.spec.checkpointing = None;
            assert_eq!(spec_hash(&changed, "SELECT 1"), base, "{change}");
        }
        for change in [
            json!({"parallelism": 3}),
            json!({"image": "spate:1.1"}),
            json!({"restartNonce": 1}),
            json!({"worker": {"slots": 4}}),
        ] {
            let changed = fixtures::job(change.clone());
            assert_ne!(spec_hash(&changed, "SELECT 1"), base, "{change}");
        }
        assert_ne!(spec_hash(&job, "SELECT 2"), base, "the SQL is part of it");
        let from_config_map =
            fixtures::job(json!({"job": {"configMapRef": {"name": "q", "key": "k"}}}));
        assert_eq!(
            spec_hash(&from_config_map, "SELECT 1"),
            base,
            "the same SQL from a ConfigMap is the same job"
        );
    }

    #[test]
    fn a_run_has_one_jobmaster_only_while_it_is_to_run() {
        let job = fixtures::job(json!({}));
        let deployed = first_run(&job, "h".into());
        let mut status = StreamJobStatus::default();
        let run = run_of(&job, &status, &deployed);
        assert_eq!(run.replicas, 1);
        assert_eq!(run.job_id, "streams-hop-6f1c5e0a-1");

        status.job_state = Some("FAILED".into());
        assert_eq!(run_of(&job, &status, &deployed).replicas, 0);
        status.job_state = Some("RUNNING".into());
        let stopping = DeployedRun {
            stopping: Some("old".into()),
            ..deployed.clone()
        };
        assert_eq!(run_of(&job, &status, &stopping).replicas, 0);
        let suspended = fixtures::job(json!({"state": "suspended"}));
        assert_eq!(run_of(&suspended, &status, &deployed).replicas, 0);
    }

    #[test]
    fn the_last_state_is_the_latest_checkpoint_or_else_where_the_run_started() {
        let job = fixtures::job(json!({"initialSavepoint": "s3://b/sp-0"}));
        let mut status = StreamJobStatus {
            deployed: Some(first_run(&job, "h".into())),
            ..StreamJobStatus::default()
        };
        assert_eq!(last_state(&status).as_deref(), Some("s3://b/sp-0"));
        status.last_checkpoint = Some(CheckpointInfo {
            id: Some(9),
            time: "T".into(),
            location: "s3://b/chk-9".into(),
            size_bytes: None,
        });
        assert_eq!(last_state(&status).as_deref(), Some("s3://b/chk-9"));
    }
}
