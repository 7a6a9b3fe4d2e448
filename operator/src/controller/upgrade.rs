//! Replacing the job's run: on a spec change per `upgradeMode` (upgrade, rescale, restart),
//! and on suspension. The new run gets a new job id and starts `--from` the state the old one
//! hands on; the old run's JobMaster is scaled away and its worker pods deleted first
//! (`DeployedRun::stopping`). Also the savepoints asked for by `savepointTriggerNonce`.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::events::EventType;
use spate_proto::v1::JobState;
use tracing::info;

use super::jobmaster_api::{Savepoint, within};
use super::lifecycle;
use super::observe::JobMasterView;
use super::{Context, Error};
use crate::crd::{CheckpointInfo, DeployedRun, StreamJob, StreamJobStatus, UpgradeMode};
use crate::resources;
use crate::status;

/// Longest wait for a savepoint on an upgrade or a suspension; the job keeps running when it
/// fails, and the reconciliation is retried.
pub const SAVEPOINT_TIMEOUT: Duration = Duration::from_secs(600);

/// How the state of the run being replaced reaches the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// Nothing: the next run starts empty.
    Nothing,
    /// A stop-with-savepoint, or the run's last state when the job does not run.
    Savepoint,
    /// The latest completed checkpoint, or a savepoint when there is none.
    LastCheckpoint,
}

impl Carry {
    pub fn for_upgrade(mode: UpgradeMode) -> Carry {
        match mode {
            UpgradeMode::Stateless => Carry::Nothing,
            UpgradeMode::Savepoint => Carry::Savepoint,
            UpgradeMode::LastState => Carry::LastCheckpoint,
        }
    }

    /// A suspension keeps the state whenever there is checkpoint storage to keep it in, so
    /// that resuming continues the job whatever its upgrade mode.
    pub fn for_suspension(job: &StreamJob) -> Carry {
        match job.spec.checkpointing {
            Some(_) => Carry::Savepoint,
            None => Carry::Nothing,
        }
    }
}

/// Replaces the current run by the next one, which starts from the state `carry` hands on.
/// Returns whether a savepoint was taken (the status must then be written before anything
/// else, so that the savepoint is not lost).
pub async fn replace_run(
    ctx: &Context,
    job: &StreamJob,
    status: &mut StreamJobStatus,
    jobmaster: &JobMasterView,
    carry: Carry,
    spec_hash: String,
) -> Result<bool, Error> {
    let current = status.job_id.clone();
    let mut took_savepoint = false;
    let last_checkpoint = status.last_checkpoint.as_ref().map(|c| c.location.clone());
    let from = match (carry, last_checkpoint) {
        (Carry::Nothing, _) => None,
        // Folded from the running JobMaster at the start of this reconciliation, or the last
        // one it reported before it was lost.
        (Carry::LastCheckpoint, Some(location)) => Some(location),
        (Carry::Savepoint | Carry::LastCheckpoint, _) => {
            match jobmaster.running(current.as_deref()) {
                Some(address) => {
                    let savepoint = savepoint(ctx, address, true, SAVEPOINT_TIMEOUT).await?;
                    status.last_savepoint = Some(checkpoint_info(&savepoint));
                    took_savepoint = true;
                    Some(savepoint.location)
                }
                None => {
                    let live = jobmaster.status_of(current.as_deref());
                    let from = stopped_savepoint(live).or_else(|| lifecycle::last_state(status));
                    let note = format!(
                        "no savepoint: the job is not running ({}); the next run starts from {}",
                        status.job_state.as_deref().unwrap_or("no JobMaster"),
                        from.as_deref().unwrap_or("empty state")
                    );
                    ctx.publish(job, EventType::Warning, "SavepointSkipped", note)
                        .await;
                    from
                }
            }
        }
    };
    let previous = status.deployed.clone().unwrap_or_default();
    let next = DeployedRun {
        run: previous.run + 1,
        generation: job.metadata.generation.unwrap_or_default(),
        spec_hash,
        restored_from: from,
        stopping: previous.stopping.clone().or(current),
    };
    info!(
        job = %job.name_any(), run = next.run, from = ?next.restored_from, ?carry,
        "replacing the run"
    );
    status.job_id = Some(resources::job_id(job, next.run));
    status.deployed = Some(next);
    status::forget_run(job, status);
    Ok(took_savepoint)
}

/// Takes the savepoint `savepointTriggerNonce` asks for, once the job runs. Returns whether
/// one was taken.
pub async fn savepoint_on_nonce(
    ctx: &Context,
    job: &StreamJob,
    status: &mut StreamJobStatus,
    jobmaster: &JobMasterView,
) -> Result<bool, Error> {
    let nonce = job.spec.savepoint_trigger_nonce;
    if nonce == status.savepoint_trigger_nonce {
        return Ok(false);
    }
    // While the job does not run the request waits.
    let Some(address) = jobmaster.running(status.job_id.as_deref()) else {
        return Ok(false);
    };
    let savepoint = savepoint(ctx, address, false, SAVEPOINT_TIMEOUT).await?;
    ctx.publish(
        job,
        EventType::Normal,
        "SavepointTaken",
        format!("savepoint {} at {}", savepoint.id, savepoint.location),
    )
    .await;
    status.last_savepoint = Some(checkpoint_info(&savepoint));
    status.savepoint_trigger_nonce = nonce;
    Ok(true)
}

/// Takes a savepoint through the JobMaster at `address`.
pub async fn savepoint(
    ctx: &Context,
    address: &str,
    stop: bool,
    limit: Duration,
) -> Result<Savepoint, Error> {
    within(
        limit,
        address,
        ctx.jobmaster.trigger_savepoint(address, stop),
    )
    .await
    .map_err(|source| Error::JobMaster {
        what: if stop {
            "stop-with-savepoint"
        } else {
            "savepoint"
        },
        source,
    })
}

/// The savepoint of a job stopped with a savepoint (one the operator did not see complete).
fn stopped_savepoint(live: Option<&spate_proto::v1::JobStatus>) -> Option<String> {
    let checkpoints = live?.checkpoints.as_ref()?;
    (live?.state() == JobState::Stopped && !checkpoints.savepoint_location.is_empty())
        .then(|| checkpoints.savepoint_location.clone())
}

fn checkpoint_info(savepoint: &Savepoint) -> CheckpointInfo {
    CheckpointInfo {
        id: i64::try_from(savepoint.id).ok(),
        time: status::now(),
        location: savepoint.location.clone(),
        size_bytes: None,
    }
}
