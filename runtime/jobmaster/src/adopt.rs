//! JobMaster failover: a new JobMaster adopts the tasks the workers kept running, instead of
//! restarting them, and cancels what it does not adopt.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use spate_graph::{JobGraph, SubtaskRef};
use spate_proto::v1::{CancelTaskRequest, TaskId, TaskState, TaskStatus};
use tracing::info;

use crate::owner::Owner;
use crate::placement::SlotRef;
use crate::record::{JobRecord, TaskEntry};

/// Waits up to `wait` for the registering workers to report a live attempt of every subtask,
/// and takes the job over as they run it: the record then holds those attempts. Returns the
/// highest of them (restarts go on above it), or `None` when some subtask is missing by then.
pub async fn adopt(graph: &JobGraph, owner: &mut Owner, wait: Duration) -> Option<u32> {
    let deadline = Instant::now() + wait;
    loop {
        {
            let state = owner.record();
            let mut found: BTreeMap<SubtaskRef, (SlotRef, TaskStatus)> = BTreeMap::new();
            for worker in state.workers.iter().filter(|w| !w.lost) {
                for status in &worker.reported {
                    let Some(id) = &status.task else { continue };
                    let newer = found.get(&(id.vertex, id.subtask)).is_none_or(|(_, s)| {
                        s.task.as_ref().is_some_and(|t| t.attempt < id.attempt)
                    });
                    if newer {
                        let slot = SlotRef {
                            worker_id: worker.id.clone(),
                            data_address: worker.data_address.clone(),
                            slot: status.slot,
                        };
                        found.insert((id.vertex, id.subtask), (slot, status.clone()));
                    }
                }
            }
            let total: u32 = graph.vertices.iter().map(|v| v.parallelism).sum();
            if found.len() == total as usize {
                let attempt = take_over(graph, state, found);
                info!(
                    tasks = state.tasks.len(),
                    "adopted the running tasks of the job"
                );
                return Some(attempt);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        owner.wait().await;
    }
}

fn take_over(
    graph: &JobGraph,
    state: &mut JobRecord,
    found: BTreeMap<SubtaskRef, (SlotRef, TaskStatus)>,
) -> u32 {
    state.tasks = found
        .into_values()
        .map(|(slot, status)| {
            let id = status.task.clone().unwrap_or_default();
            let mut entry = TaskEntry::new(id, graph, slot);
            entry.state = TaskState::try_from(status.state).unwrap_or(TaskState::Running);
            if let Some(metrics) = status.metrics {
                entry.metrics = metrics;
            }
            entry
        })
        .collect();
    state.job_state = spate_proto::v1::JobState::Running;
    state.started.get_or_insert_with(Instant::now);
    state.tasks.iter().map(|t| t.id.attempt).max().unwrap_or(0)
}

/// Cancels every task a worker reported that is not the current attempt of its subtask on that
/// worker (a worker the JobMaster had given up on, or tasks a failed adoption left behind).
pub async fn cancel_unadopted(owner: &mut Owner) {
    if owner.view().workers.iter().all(|w| w.reported.is_empty()) {
        return;
    }
    let stale: Vec<(String, TaskId)> = {
        let state = owner.record();
        let mut stale = Vec::new();
        for worker in &mut state.workers {
            for status in std::mem::take(&mut worker.reported) {
                let Some(id) = status.task else { continue };
                let current = state.tasks.iter().any(|t| {
                    t.worker_id() == worker.id
                        && (t.id.vertex, t.id.subtask, t.id.attempt)
                            == (id.vertex, id.subtask, id.attempt)
                });
                if !current {
                    stale.push((worker.id.clone(), id));
                }
            }
        }
        stale
    };
    if stale.is_empty() {
        return;
    }
    let clients = owner.clients();
    let cancels = join_all(stale.into_iter().map(|(worker, task)| {
        let client = clients.get(&worker);
        async move {
        if let Ok(mut client) = client {
            info!(%worker, vertex = task.vertex, subtask = task.subtask, attempt = task.attempt, "canceling a task that is not adopted");
            let _ = client
                .cancel_task(CancelTaskRequest { task: Some(task) })
                .await;
        }
    }}));
    owner.serve_until(cancels).await;
}
