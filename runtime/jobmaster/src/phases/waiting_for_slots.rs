use std::collections::BTreeSet;
use std::time::Instant;

use spate_graph::SubtaskRef;
use tracing::info;

use super::{Deploying, Ending, Job, Outcome, Transition, TransitionTo};
use crate::adopt::cancel_unadopted;
use crate::failover::{Failure, FailureCause};
use crate::placement::{place, replace};

/// Asks the resource manager for workers offering the slots the job needs, and waits until the
/// live workers offer enough, the job is canceled, or the slot timeout passes (which fails it).
pub enum WaitingForSlots {
    /// The whole job, placed anew: subtask i of every vertex in slot i.
    Whole,
    /// The subtasks a failure restarts: each in its previous slot where its worker lives.
    Replacing(BTreeSet<SubtaskRef>),
}

impl TransitionTo<Deploying> for WaitingForSlots {}
impl TransitionTo<Ending> for WaitingForSlots {}

impl WaitingForSlots {
    pub async fn run(self, job: &mut Job<'_>) -> Transition {
        if let WaitingForSlots::Whole = self {
            // Tasks a worker still runs from before a JobMaster failover that was not adopted.
            cancel_unadopted(job.owner).await;
        }
        let needed = job.graph.slots_needed();
        let deadline = Instant::now() + job.config.slot_timeout;
        loop {
            let cancel = job.owner.cancel_requested();
            let record = job.owner.record();
            let live = job
                .workers
                .live_slots(record, needed, job.config.heartbeat_timeout);
            let placed = match &self {
                WaitingForSlots::Whole => (live.len() as u32 >= needed).then(|| {
                    let mut placement = place(job.graph, &live);
                    for assignment in placement.iter_mut().flatten() {
                        assignment.attempt = job.attempt;
                    }
                    (placement, job.planner.all())
                }),
                WaitingForSlots::Replacing(which) => {
                    let mut placement = record.placement();
                    replace(&mut placement, which, &live, job.attempt)
                        .map(|()| (placement, which.clone()))
                }
            };
            if let Some((placement, which)) = placed {
                let workers = record.workers.len();
                info!(offered = live.len(), workers, "enough slots; deploying");
                return Transition::to(&self, Deploying { which, placement });
            }
            if let Some(reason) = cancel {
                let outcome = Outcome::Canceled(reason);
                return Transition::to(&self, Ending { outcome });
            }
            if Instant::now() > deadline {
                let cause = FailureCause::NotEnoughSlots {
                    needed: needed as usize,
                    offered: live.len(),
                    waited: job.config.slot_timeout,
                };
                let outcome = Outcome::Failed {
                    failure: Failure::new(cause, BTreeSet::new()),
                    not_restarted: None,
                };
                return Transition::to(&self, Ending { outcome });
            }
            job.owner.wait().await;
        }
    }
}
