//! Where each subtask runs, and what each one must be told to find its inputs and outputs.

use std::collections::BTreeSet;

use spate_graph::{JobGraph, Partitioning, SubtaskRef};
use spate_proto::v1::{
    self, DeployTaskRequest, InputChannelDescriptor, InputGateDescriptor, JobSpec,
    OutputDescriptor, TaskId,
};

/// A slot offered by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRef {
    pub worker_id: String,
    pub data_address: String,
    pub slot: u32,
}

/// Where a subtask runs and which attempt of it runs there.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub slot: SlotRef,
    pub attempt: u32,
}

/// Assignments by vertex, then subtask.
pub type Placement = Vec<Vec<Assignment>>;

/// Slot i holds subtask i of every vertex, so a job needs as many slots as its largest
/// parallelism, and a pipeline of forward-connected subtasks shares a slot and a worker.
pub fn place(graph: &JobGraph, slots: &[SlotRef]) -> Placement {
    graph
        .vertices
        .iter()
        .map(|v| {
            (0..v.parallelism as usize)
                .map(|s| Assignment {
                    slot: slots[s].clone(),
                    attempt: 0,
                })
                .collect()
        })
        .collect()
}

/// Gives the next attempt of every subtask in `restart` a slot: its previous one when that
/// worker is among `live` (allocation-preserving), else a free live slot, the subtasks of one
/// lost slot moving together so that slot sharing holds. `None` while too few slots are free.
pub fn replace(
    placement: &mut Placement,
    restart: &BTreeSet<SubtaskRef>,
    live: &[SlotRef],
    attempt: u32,
) -> Option<()> {
    let all = || placement.iter().flatten();
    let is_live = |slot: &SlotRef| live.iter().any(|l| l.worker_id == slot.worker_id);
    let used: Vec<&SlotRef> = all().map(|a| &a.slot).filter(|s| is_live(s)).collect();
    let mut lost: Vec<SlotRef> = Vec::new();
    for &(vertex, subtask) in restart {
        let slot = &placement[vertex as usize][subtask as usize].slot;
        if !is_live(slot) && !lost.contains(slot) {
            lost.push(slot.clone());
        }
    }
    let free: Vec<&SlotRef> = live.iter().filter(|s| !used.contains(s)).collect();
    if free.len() < lost.len() {
        return None;
    }
    let moves: Vec<(SlotRef, SlotRef)> = lost.into_iter().zip(free.into_iter().cloned()).collect();
    for &(vertex, subtask) in restart {
        let assignment = &mut placement[vertex as usize][subtask as usize];
        if let Some((_, to)) = moves.iter().find(|(from, _)| *from == assignment.slot) {
            assignment.slot = to.clone();
        }
        assignment.attempt = attempt;
    }
    Some(())
}

fn partitioning(p: &Partitioning) -> v1::Partitioning {
    match p {
        Partitioning::Forward => v1::Partitioning::Forward,
        Partitioning::Hash(_) => v1::Partitioning::Hash,
        Partitioning::Rebalance => v1::Partitioning::Rebalance,
        Partitioning::Broadcast => v1::Partitioning::Broadcast,
    }
}

pub fn deployment(
    graph: &JobGraph,
    placement: &Placement,
    job: &JobSpec,
    task: TaskId,
    fingerprint: &str,
) -> DeployTaskRequest {
    let (vertex, subtask) = (task.vertex, task.subtask);
    let outputs = graph
        .outputs(vertex)
        .map(|edge| OutputDescriptor {
            edge: edge.id,
            consumer_vertex: edge.to,
            partitioning: partitioning(&edge.partitioning) as i32,
            subpartitions: match edge.partitioning {
                Partitioning::Forward => 1,
                _ => graph.vertices[edge.to as usize].parallelism,
            },
        })
        .collect();
    let inputs = graph
        .inputs(vertex)
        .map(|edge| {
            let producers = &placement[edge.from as usize];
            let channel = |producer: u32, subpartition: u32| {
                let assignment = &producers[producer as usize];
                InputChannelDescriptor {
                    producer_subtask: producer,
                    subpartition,
                    data_address: assignment.slot.data_address.clone(),
                    producer_attempt: assignment.attempt,
                }
            };
            let channels = match edge.partitioning {
                Partitioning::Forward => vec![channel(subtask, 0)],
                _ => (0..producers.len() as u32)
                    .map(|p| channel(p, subtask))
                    .collect(),
            };
            InputGateDescriptor {
                edge: edge.id,
                producer_vertex: edge.from,
                partitioning: partitioning(&edge.partitioning) as i32,
                channels,
            }
        })
        .collect();
    let slot = placement[vertex as usize][subtask as usize].slot.slot;
    DeployTaskRequest {
        task: Some(task),
        job: Some(job.clone()),
        slot,
        parallelism: graph.vertices[vertex as usize].parallelism,
        inputs,
        outputs,
        graph_fingerprint: fingerprint.to_string(),
        checkpointing: None,
        restore: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(worker: &str, slot: u32) -> SlotRef {
        SlotRef {
            worker_id: worker.into(),
            data_address: format!("{worker}:data"),
            slot,
        }
    }

    fn placement() -> Placement {
        // Two vertices at parallelism 2: slot 0 of worker a, slot 0 of worker b.
        let row = vec![
            Assignment {
                slot: slot("a", 0),
                attempt: 0,
            },
            Assignment {
                slot: slot("b", 0),
                attempt: 0,
            },
        ];
        vec![row.clone(), row]
    }

    #[test]
    fn restarted_subtasks_keep_the_slots_of_live_workers() {
        let mut p = placement();
        let restart: BTreeSet<SubtaskRef> = [(0, 0), (1, 0)].into();
        replace(&mut p, &restart, &[slot("a", 0), slot("b", 0)], 1).unwrap();
        assert_eq!(p[0][0].slot, slot("a", 0));
        assert_eq!((p[0][0].attempt, p[1][0].attempt), (1, 1));
        assert_eq!(p[0][1].attempt, 0, "the other region keeps its attempt");
    }

    #[test]
    fn the_subtasks_of_a_lost_slot_move_together_to_a_free_one() {
        let mut p = placement();
        let restart: BTreeSet<SubtaskRef> = [(0, 1), (1, 1)].into();
        let live_without_b = [slot("a", 0), slot("c", 0)];
        assert!(replace(&mut p, &restart, &live_without_b[..1], 1).is_none());
        replace(&mut p, &restart, &live_without_b, 1).unwrap();
        assert_eq!(p[0][1].slot, slot("c", 0));
        assert_eq!(p[1][1].slot, slot("c", 0));
        assert_eq!(p[0][0].slot, slot("a", 0), "healthy subtasks stay");
    }
}
