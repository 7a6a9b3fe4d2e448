//! Canceling tasks and shutting workers down at the end of an attempt or of the job.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::future::join_all;
use spate_graph::SubtaskRef;
use spate_proto::v1::{CancelTaskRequest, JobState, ShutdownRequest, TaskId, TaskState};
use tracing::warn;

use crate::clients::RPC_TIMEOUT;
use crate::owner::Owner;
use crate::record::TaskEntry;

/// Cancels what still runs (of `which`, or every task) and waits briefly for the reports;
/// what did not answer by then counts as canceled.
pub async fn cancel_unfinished(owner: &mut Owner, which: Option<&BTreeSet<SubtaskRef>>) {
    let selected = |t: &TaskEntry| which.is_none_or(|w| w.contains(&(t.id.vertex, t.id.subtask)));
    let running: Vec<(String, TaskId)> = {
        let record = owner.record();
        if record.job_state == JobState::Finished {
            return;
        }
        // Tasks of a lost worker will never answer; waiting for them only delays the end.
        let lost: Vec<String> = record
            .workers
            .iter()
            .filter(|w| w.lost)
            .map(|w| w.id.clone())
            .collect();
        for task in record
            .tasks
            .iter_mut()
            .filter(|t| !t.is_terminal() && lost.iter().any(|l| l == t.worker_id()))
        {
            task.state = TaskState::Canceled;
        }
        record
            .tasks
            .iter()
            .filter(|t| !t.is_terminal() && selected(t))
            .map(|t| (t.worker_id().to_string(), t.id.clone()))
            .collect()
    };
    let clients = owner.clients();
    let cancels = join_all(running.into_iter().map(|(worker, task)| {
        let client = clients.get(&worker);
        async move {
            if let Ok(mut client) = client {
                let _ = client
                    .cancel_task(CancelTaskRequest { task: Some(task) })
                    .await;
            }
        }
    }));
    owner.serve_until(cancels).await;
    let deadline = Instant::now() + RPC_TIMEOUT;
    while Instant::now() < deadline {
        let answered = owner
            .view()
            .tasks
            .iter()
            .filter(|t| selected(t))
            .all(TaskEntry::is_terminal);
        if answered {
            return;
        }
        owner.wait().await;
    }
    for task in owner
        .record()
        .tasks
        .iter_mut()
        .filter(|t| !t.is_terminal() && selected(t))
    {
        task.state = TaskState::Canceled;
    }
}

/// Tells heartbeating workers that the job is over, and the live ones to stop now.
pub async fn shut_down_workers(owner: &mut Owner) {
    let (workers, reason): (Vec<String>, String) = {
        let record = owner.record();
        record.shutdown = true;
        let workers = record
            .workers
            .iter()
            .filter(|w| !w.lost)
            .map(|w| w.id.clone())
            .collect();
        let reason = format!("job {} is {:?}", record.job_id, record.job_state);
        (workers, reason)
    };
    let clients = owner.clients();
    let shutdowns = join_all(workers.into_iter().map(|worker| {
        let reason = reason.clone();
        let client = clients.get(&worker);
        async move {
            match client {
                Ok(client) => {
                    // A busy machine can drop a call; the worker would then stay up until it
                    // gives up on the JobMaster, long after the job ended. Tried a few times
                    // while heartbeats (which also carry the shutdown) are still served.
                    let shutdown = || {
                        let (mut client, reason) = (client.clone(), reason.clone());
                        async move { client.shutdown(ShutdownRequest { reason }).await }
                    };
                    let tried = shutdown
                        .retry(
                            ExponentialBuilder::default()
                                .with_min_delay(Duration::from_millis(100))
                                .with_max_delay(Duration::from_secs(1))
                                .with_max_times(5),
                        )
                        .await;
                    if let Err(e) = tried {
                        warn!(%worker, error = %e.message(), "worker did not take the shutdown");
                    }
                }
                Err(e) => {
                    warn!(%worker, error = %format!("{e:#}"), "worker unreachable for shutdown")
                }
            }
        }
    }));
    owner.serve_until(shutdowns).await;
}
