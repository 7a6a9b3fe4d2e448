//! The job's lifecycle as phases, one file each. A phase runs until it knows what comes next
//! and says so with a typed transition (`transition.rs`); the allowed ones:
//!
//! | phase             | what it does                                                   | next                        |
//! |-------------------|----------------------------------------------------------------|-----------------------------|
//! | `Adopting`        | (a JobMaster replacing a dead one) waits for the workers to report a live attempt of every subtask and takes the job over as it runs | `Running`, `WaitingForSlots` |
//! | `WaitingForSlots` | asks the resource manager for workers until the live ones offer the slots needed, then places the subtasks | `Deploying`, `Ending` |
//! | `Deploying`       | writes the new attempts into the record and deploys them       | `Running`, `Restarting`     |
//! | `Running`         | checkpoints; watches tasks and workers until the job finishes, is canceled or stopped with a savepoint, or something fails | `Ending`, `Restarting` |
//! | `Restarting`      | decides whether the failure may be restarted; if so cancels the regions it hit, waits the back-off and restores the latest checkpoint | `WaitingForSlots`, `Ending` |
//! | `Ending`          | writes the outcome (finished, canceled, stopped, failed) into the record; cancels what still runs | (the job is over) |
//!
//! Every phase runs on the owner's task (`owner.rs`) and takes events in whenever it waits.

mod adopting;
mod deploying;
mod ending;
mod restarting;
mod running;
mod transition;
mod waiting_for_slots;

#[cfg(test)]
mod tests;

use spate_checkpoint::CompletedSnapshot;
use spate_graph::JobGraph;
use tracing::info;

pub use adopting::Adopting;
pub use deploying::Deploying;
pub use ending::{Ending, Outcome};
pub use restarting::Restarting;
pub use running::Running;
pub use transition::{Transition, TransitionTo};
pub use waiting_for_slots::WaitingForSlots;

use crate::checkpoint::Coordinator;
use crate::config::JobMasterConfig;
use crate::failover::{FailoverPlanner, RestartBackoff};
use crate::owner::Owner;
use crate::workers::Workers;

/// What every phase works with.
pub struct Job<'a> {
    pub config: &'a JobMasterConfig,
    pub graph: &'a JobGraph,
    pub owner: &'a mut Owner,
    pub workers: Workers<'a>,
    pub coordinator: Option<Coordinator>,
    pub planner: FailoverPlanner,
    pub backoff: RestartBackoff,
    /// The attempt number of the latest deployment; a restart deploys the next.
    pub attempt: u32,
    /// The snapshot the next deployment restores.
    pub restore: Option<CompletedSnapshot>,
}

pub enum Phase {
    Adopting(Adopting),
    WaitingForSlots(WaitingForSlots),
    Deploying(Deploying),
    Running(Running),
    Restarting(Restarting),
    Ending(Ending),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Adopting(_) => "adopting",
            Phase::WaitingForSlots(_) => "waiting for slots",
            Phase::Deploying(_) => "deploying",
            Phase::Running(_) => "running",
            Phase::Restarting(_) => "restarting",
            Phase::Ending(_) => "ending",
        }
    }

    async fn run(self, job: &mut Job<'_>) -> Transition {
        match self {
            Phase::Adopting(phase) => phase.run(job).await,
            Phase::WaitingForSlots(phase) => phase.run(job).await,
            Phase::Deploying(phase) => phase.run(job).await,
            Phase::Running(phase) => phase.run(job).await,
            Phase::Restarting(phase) => phase.run(job).await,
            Phase::Ending(phase) => phase.run(job).await,
        }
    }
}

macro_rules! into_phase {
    ($($phase:ident),*) => {$(
        impl From<$phase> for Phase {
            fn from(phase: $phase) -> Phase {
                Phase::$phase(phase)
            }
        }
    )*};
}
into_phase!(
    Adopting,
    WaitingForSlots,
    Deploying,
    Running,
    Restarting,
    Ending
);

/// Runs the job through its phases to its end: a recovering JobMaster first tries to adopt
/// what the workers kept running, a new one starts by asking for slots.
pub async fn drive(mut job: Job<'_>) {
    let mut phase = match job.config.recover {
        true => Phase::Adopting(Adopting),
        false => Phase::WaitingForSlots(WaitingForSlots::Whole),
    };
    info!(to = phase.name(), "phase");
    loop {
        let from = phase.name();
        let Some(next) = phase.run(&mut job).await.next() else {
            return;
        };
        info!(from, to = next.name(), "phase");
        phase = next;
    }
}
