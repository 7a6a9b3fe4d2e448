use std::time::Instant;

use tracing::{error, warn};

use super::{Ending, Job, Outcome, Transition, TransitionTo, WaitingForSlots};
use crate::cancel::cancel_unfinished;
use crate::checkpoint::Coordinator;
use crate::failover::Failure;

/// Something failed. A failure a restart cannot help, a job without checkpoints to restart
/// from, or a restart the strategy refuses fails the job. Otherwise the pipelined regions the
/// failure hit are canceled, the back-off passes, and they are restored from the latest
/// checkpoint in their previous slots where their worker lives.
pub struct Restarting {
    pub failure: Failure,
}

impl TransitionTo<WaitingForSlots> for Restarting {}
impl TransitionTo<Ending> for Restarting {}

impl Restarting {
    pub async fn run(self, job: &mut Job<'_>) -> Transition {
        let failure = &self.failure;
        let delay = match (failure.permanent(), &job.coordinator) {
            (Some(why), _) => Err(why.to_string()),
            (None, None) => Err("the job takes no checkpoints to restart from".to_string()),
            (None, Some(_)) => job.backoff.on_failure(Instant::now()),
        };
        let delay = match delay {
            Ok(delay) => delay,
            Err(why) => {
                error!(reason = %failure, %why, "job failed");
                let outcome = Outcome::Failed {
                    failure: failure.clone(),
                    not_restarted: Some(why),
                };
                return Transition::to(&self, Ending { outcome });
            }
        };
        let which = job.planner.to_restart(failure);
        warn!(reason = %failure, tasks = which.len(), ?delay, "restarting from the latest checkpoint");
        cancel_unfinished(job.owner, Some(&which)).await;
        let record = job.owner.record();
        job.workers.drop_lost(record);
        // Replacements for the lost workers start now, while the back-off passes, as Flink's
        // active resource managers ask for new workers as soon as one is lost.
        job.workers.require_slots(job.graph.slots_needed());
        record.restarts += 1;
        record.task_restarts += which.len() as u32;
        record.last_failure = failure.to_string();
        if let Some(latest) = job.coordinator.as_ref().and_then(Coordinator::latest) {
            job.restore = Some(latest);
        }
        job.owner.serve_until(tokio::time::sleep(delay)).await;
        job.attempt += 1;
        Transition::to(&self, WaitingForSlots::Replacing(which))
    }
}
