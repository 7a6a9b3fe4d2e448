use super::{Job, Transition};
use crate::cancel::cancel_unfinished;

/// The job is over, its outcome already in the record (finished, canceled, stopped, failed):
/// what still runs is canceled.
pub struct Ending;

impl Ending {
    pub async fn run(self, job: &mut Job<'_>) -> Transition {
        cancel_unfinished(job.owner, None).await;
        Transition::done(&self)
    }
}
