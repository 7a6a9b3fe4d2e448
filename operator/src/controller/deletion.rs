//! The deletion of a job, under its finalizer: with `upgradeMode: savepoint` the job is first
//! stopped with a savepoint (what Flink's operator calls savepoint-on-deletion), then its worker
//! pods are deleted. Its other objects are owned by it and the garbage collector removes them.
//!
//! Nothing here fails the deletion: the savepoint's wait is bounded and a failure is reported
//! as an event, and so is a failure to delete the workers (their owner, the JobMaster
//! Deployment, takes them with it anyway). A namespace being deleted refuses new events, and
//! a finalizer kept because of that would hang the namespace's deletion.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::warn;

use super::{Context, Error, backoff_key, observe, upgrade, workers};
use crate::crd::{StreamJob, UpgradeMode};
use crate::resources::SpecError;

/// Longest wait for the savepoint before the deletion goes on without it.
pub const DELETE_SAVEPOINT_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn cleanup(job: &StreamJob, ctx: &Context) -> Result<Action, Error> {
    let namespace = job.namespace().ok_or(SpecError::NoNamespace)?;
    ctx.publish(
        job,
        EventType::Normal,
        "Deleting",
        "the JobMaster and the job's objects are removed with the StreamJob".into(),
    )
    .await;
    if job.spec.upgrade_mode == UpgradeMode::Savepoint {
        final_savepoint(job, ctx, &namespace).await;
    }
    if let Err(e) = workers::delete(ctx, job, &namespace).await {
        warn!(job = %job.name_any(), error = %e, "could not delete the worker pods");
        let note = format!("{e}; the garbage collector removes them with the JobMaster");
        ctx.publish(job, EventType::Warning, "WorkersNotDeleted", note)
            .await;
    }
    ctx.failures().remove(&backoff_key(job));
    Ok(Action::await_change())
}

/// Stops the job with a savepoint, when it runs; says where it went, or why there is none.
async fn final_savepoint(job: &StreamJob, ctx: &Context, namespace: &str) {
    let job_id = job.status.as_ref().and_then(|s| s.job_id.as_deref());
    let outcome = match observe::jobmaster(ctx, job, namespace).await {
        Err(e) => Err(e.to_string()),
        Ok(jobmaster) => match jobmaster.running(job_id) {
            None => Err("the job is not running".to_string()),
            Some(address) => upgrade::savepoint(ctx, address, true, DELETE_SAVEPOINT_TIMEOUT)
                .await
                .map_err(|e| e.to_string()),
        },
    };
    match outcome {
        Ok(savepoint) => {
            let note = format!(
                "stopped with savepoint {} at {}",
                savepoint.id, savepoint.location
            );
            ctx.publish(job, EventType::Normal, "SavepointTaken", note)
                .await;
        }
        Err(why) => {
            warn!(job = %job.name_any(), %why, "deleting without a savepoint");
            let note = format!("no savepoint before the deletion: {why}");
            ctx.publish(job, EventType::Warning, "SavepointSkipped", note)
                .await;
        }
    }
}
