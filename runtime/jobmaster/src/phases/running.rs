use std::collections::BTreeSet;

use spate_proto::v1::TaskState;

use super::{Ending, Job, Outcome, Restarting, Transition, TransitionTo};
use crate::adopt::cancel_unadopted;
use crate::failover::{Failure, FailureCause, WorkerLoss};
use crate::workers::{expire_silent_workers, unreachable_worker};

/// The job runs: checkpoints are taken, and tasks and workers watched, until every task
/// finished, the job is canceled or stopped with a savepoint, or something fails.
pub struct Running;

impl TransitionTo<Ending> for Running {}
impl TransitionTo<Restarting> for Running {}

/// What one look at the job found.
enum Seen {
    Nothing { all_running: bool },
    Over(Outcome),
    TasksFailed(Failure),
    Failed(Failure),
}

impl Running {
    pub async fn run(self, job: &mut Job<'_>) -> Transition {
        loop {
            // A worker that registers again lists tasks it was not given (anymore).
            cancel_unadopted(job.owner).await;
            let seen = match look(job) {
                Seen::Nothing { all_running } => checkpoint_round(job, all_running).await,
                Seen::TasksFailed(failure) => Seen::Failed(blame_lost_worker(job, failure).await),
                seen => seen,
            };
            match seen {
                Seen::Nothing { .. } => job.owner.wait().await,
                Seen::Over(outcome) => return Transition::to(&self, Ending { outcome }),
                Seen::Failed(failure) | Seen::TasksFailed(failure) => {
                    return Transition::to(&self, Restarting { failure });
                }
            }
        }
    }
}

/// The job's end, lost workers and failed tasks, from the record.
fn look(job: &mut Job<'_>) -> Seen {
    if let Some(reason) = job.owner.cancel_requested() {
        return Seen::Over(Outcome::Canceled(reason));
    }
    let record = job.owner.record();
    if record.tasks.iter().all(|t| t.state == TaskState::Finished) {
        return Seen::Over(Outcome::Finished);
    }
    // A lost worker fails the tasks it ran; one that ran none is only forgotten.
    let exited = job.workers.mark_exited(record).into_iter().map(|worker| {
        let cause = FailureCause::WorkerLost {
            worker: worker.clone(),
            why: WorkerLoss::Exited,
        };
        (worker, cause)
    });
    let silent = expire_silent_workers(record, job.config.heartbeat_timeout);
    let mut lost = Failure {
        causes: Vec::new(),
        tasks: BTreeSet::new(),
    };
    for (worker, cause) in exited.chain(silent) {
        let tasks = record.subtasks_on(&worker);
        if !tasks.is_empty() {
            lost.tasks.extend(tasks);
            lost.causes.push(cause);
        }
    }
    if !lost.causes.is_empty() {
        return Seen::Failed(lost);
    }
    job.workers.drop_lost(record);
    let mut failed = record.tasks.iter().filter(|t| t.state == TaskState::Failed);
    if let Some(first) = failed.next() {
        let cause = FailureCause::TaskFailed {
            task: first.describe(),
            worker: first.worker_id().to_string(),
            message: first.failure.clone(),
        };
        let mut tasks: BTreeSet<_> = failed.map(|t| (t.id.vertex, t.id.subtask)).collect();
        tasks.insert((first.id.vertex, first.id.subtask));
        return Seen::TasksFailed(Failure::new(cause, tasks));
    }
    let all_running = record.tasks.iter().all(|t| t.state == TaskState::Running);
    Seen::Nothing { all_running }
}

/// A task failure is often the echo of a dead worker (its exchanges broke): if a worker is
/// gone, that is the cause to report, and its tasks fail with it.
async fn blame_lost_worker(job: &mut Job<'_>, mut failure: Failure) -> Failure {
    if let Some((worker, name)) = unreachable_worker(job.owner).await {
        failure.tasks.extend(job.owner.view().subtasks_on(&worker));
        let gone = FailureCause::WorkerLost {
            worker: name,
            why: WorkerLoss::Unreachable,
        };
        failure.causes.insert(0, gone);
    }
    failure
}

/// Hands the coordinator what came in for checkpoints and lets it trigger, complete and time
/// out checkpoints; a job without checkpoints turns savepoint requests away.
async fn checkpoint_round(job: &mut Job<'_>, all_running: bool) -> Seen {
    let messages = job.owner.checkpoint_messages();
    let Some(coordinator) = job.coordinator.as_mut() else {
        for request in messages.savepoints {
            let _ = request
                .reply
                .send(Err("the job takes no checkpoints".into()));
        }
        return Seen::Nothing { all_running };
    };
    for request in messages.savepoints {
        coordinator.request_savepoint(request);
    }
    let round = job.owner.checkpoint_round();
    let ticked = coordinator.tick(&round, messages.acks, messages.declines, all_running);
    let failed = job.owner.serve_until(ticked).await;
    job.owner.record().checkpoints = coordinator.stats.clone();
    if let Some(savepoint) = coordinator.stopped.take() {
        return Seen::Over(Outcome::Stopped { savepoint });
    }
    if let Some(cause) = failed {
        let tasks = job
            .owner
            .view()
            .tasks
            .iter()
            .map(|t| (t.id.vertex, t.id.subtask))
            .collect();
        return Seen::Failed(Failure::new(cause, tasks));
    }
    if std::mem::take(&mut coordinator.worker_unreachable)
        && let Some((worker, name)) = unreachable_worker(job.owner).await
    {
        let gone = FailureCause::WorkerLost {
            worker: name,
            why: WorkerLoss::Unreachable,
        };
        let tasks = job.owner.view().subtasks_on(&worker);
        return Seen::Failed(Failure::new(gone, tasks));
    }
    Seen::Nothing { all_running }
}
