use super::{Job, Running, Transition, TransitionTo, WaitingForSlots};
use crate::adopt::adopt;

/// A JobMaster that replaces a dead one waits for the workers to report a live attempt of
/// every subtask, and takes the job over as it runs; when some subtask is missing by the
/// heartbeat timeout, it starts the job anew above every attempt reported.
pub struct Adopting;

impl TransitionTo<Running> for Adopting {}
impl TransitionTo<WaitingForSlots> for Adopting {}

impl Adopting {
    pub async fn run(self, job: &mut Job<'_>) -> Transition {
        let Some(attempt) = adopt(job.graph, job.owner, job.config.heartbeat_timeout).await else {
            // Attempts above any a worker may still run from before the JobMaster failover.
            job.attempt = 1 + job.owner.view().max_reported_attempt();
            return Transition::to(&self, WaitingForSlots::Whole);
        };
        job.attempt = attempt;
        if let Some(coordinator) = job.coordinator.as_mut() {
            let last_seen = job.owner.view().last_checkpoint_seen;
            let round = job.owner.checkpoint_round();
            job.owner
                .serve_until(coordinator.adopted(&round, last_seen))
                .await;
        }
        Transition::to(&self, Running)
    }
}
