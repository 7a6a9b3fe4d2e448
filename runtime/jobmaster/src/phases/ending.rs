use std::fmt;

use spate_proto::v1::JobState;
use tracing::info;

use super::{Job, Transition};
use crate::cancel::cancel_unfinished;
use crate::failover::Failure;

/// How the job ended. Only `Ending` writes it into the record, so the job's final state is
/// set in one place.
pub enum Outcome {
    /// Every task finished its input.
    Finished,
    /// Someone canceled the job (the reason they gave).
    Canceled(String),
    /// A stop-with-savepoint completed: the job ends at that savepoint.
    Stopped { savepoint: String },
    /// A failure the job was not restarted after, and why not (none when the cause itself
    /// ends the job, as when slots do not come).
    Failed {
        failure: Failure,
        not_restarted: Option<String>,
    },
}

impl Outcome {
    fn job_state(&self) -> JobState {
        match self {
            Outcome::Finished => JobState::Finished,
            Outcome::Canceled(_) => JobState::Canceled,
            Outcome::Stopped { .. } => JobState::Stopped,
            Outcome::Failed { .. } => JobState::Failed,
        }
    }
}

/// What the status shows as the job's failure (empty for a finished job).
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Finished => Ok(()),
            Outcome::Canceled(reason) => f.write_str(reason),
            Outcome::Stopped { savepoint } => write!(f, "stopped with savepoint {savepoint}"),
            Outcome::Failed {
                failure,
                not_restarted: None,
            } => write!(f, "{failure}"),
            Outcome::Failed {
                failure,
                not_restarted: Some(why),
            } => write!(f, "{failure} (not restarted: {why})"),
        }
    }
}

/// The job is over: its outcome goes into the record, and what still runs is canceled.
pub struct Ending {
    pub outcome: Outcome,
}

impl Ending {
    pub async fn run(self, job: &mut Job<'_>) -> Transition {
        let record = job.owner.record();
        record.job_state = self.outcome.job_state();
        record.failure = self.outcome.to_string();
        info!(state = ?record.job_state, outcome = %self.outcome, "job over");
        cancel_unfinished(job.owner, None).await;
        Transition::done(&self)
    }
}
