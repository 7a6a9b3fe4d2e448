//! JobMaster failover: a new JobMaster adopts the tasks the workers kept running, instead of
//! restarting them, and cancels what it does not adopt.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use spate_graph::{JobGraph, SubtaskRef};
use spate_proto::v1::{CancelTaskRequest, TaskId, TaskState, TaskStatus};
use tracing::info;

use crate::checkpoint::TaskRef;
use crate::placement::{Assignment, Placement, SlotRef};
use crate::state::{Shared, TaskEntry};
use crate::workers::worker_client;

const POLL: Duration = Duration::from_millis(50);

/// The running job as the workers reported it.
pub struct Adopted {
    pub placement: Placement,
    pub tasks: Vec<TaskRef>,
    /// The highest attempt among the tasks: restarts go on above it.
    pub attempt: u32,
}

/// Waits up to `wait` for the registering workers to report a live attempt of every subtask,
/// and takes the job over as they run it. `None` when some subtask is missing by then.
pub async fn adopt(graph: &JobGraph, shared: &Shared, wait: Duration) -> Option<Adopted> {
    let deadline = Instant::now() + wait;
    loop {
        {
            let mut state = shared.state.lock().await;
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
                let adopted = take_over(graph, &mut state, found);
                info!(
                    tasks = adopted.tasks.len(),
                    "adopted the running tasks of the job"
                );
                return Some(adopted);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn take_over(
    graph: &JobGraph,
    state: &mut crate::state::State,
    found: BTreeMap<SubtaskRef, (SlotRef, TaskStatus)>,
) -> Adopted {
    let mut placement: Placement = graph
        .vertices
        .iter()
        .map(|v| Vec::with_capacity(v.parallelism as usize))
        .collect();
    let mut tasks = Vec::new();
    state.tasks.clear();
    for ((vertex, _), (slot, status)) in found {
        let id = status.task.clone().unwrap_or_default();
        let job_vertex = &graph.vertices[vertex as usize];
        let mut entry = TaskEntry::new(id.clone(), job_vertex, &slot);
        entry.state = TaskState::try_from(status.state).unwrap_or(TaskState::Running);
        if let Some(metrics) = status.metrics {
            entry.metrics = metrics;
        }
        state.tasks.push(entry);
        tasks.push(TaskRef {
            id: id.clone(),
            worker_id: slot.worker_id.clone(),
            is_source: graph.node(job_vertex.nodes[0]).is_source(),
        });
        placement[vertex as usize].push(Assignment {
            slot,
            attempt: id.attempt,
        });
    }
    state.job_state = spate_proto::v1::JobState::Running;
    state.started.get_or_insert_with(Instant::now);
    let attempt = tasks.iter().map(|t| t.id.attempt).max().unwrap_or(0);
    Adopted {
        placement,
        tasks,
        attempt,
    }
}

/// Cancels every task a worker reported that is not the current attempt of its subtask on that
/// worker (a worker the JobMaster had given up on, or tasks a failed adoption left behind).
pub async fn cancel_unadopted(shared: &Shared) {
    let stale: Vec<(String, TaskId)> = {
        let mut state = shared.state.lock().await;
        let state = &mut *state;
        let mut stale = Vec::new();
        for worker in &mut state.workers {
            for status in std::mem::take(&mut worker.reported) {
                let Some(id) = status.task else { continue };
                let current = state.tasks.iter().any(|t| {
                    t.worker_id == worker.id
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
    join_all(stale.into_iter().map(|(worker, task)| async move {
        if let Ok(mut client) = worker_client(shared, &worker).await {
            info!(%worker, vertex = task.vertex, subtask = task.subtask, attempt = task.attempt, "canceling a task that is not adopted");
            let _ = client
                .cancel_task(CancelTaskRequest { task: Some(task) })
                .await;
        }
    }))
    .await;
}
