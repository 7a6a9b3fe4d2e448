//! Where each subtask runs, and what each one must be told to find its inputs and outputs.

use spate_graph::{JobGraph, Partitioning};
use spate_proto::v1::{
    self, DeployTaskRequest, InputChannelDescriptor, InputGateDescriptor, JobSpec,
    OutputDescriptor, TaskId,
};

/// A slot offered by a worker.
#[derive(Debug, Clone)]
pub struct SlotRef {
    pub worker_id: String,
    pub data_address: String,
    pub slot: u32,
}

/// Slot i holds subtask i of every vertex, so a job needs as many slots as its largest
/// parallelism, and a pipeline of forward-connected subtasks shares a slot and a worker.
pub fn place(graph: &JobGraph, slots: &[SlotRef]) -> Vec<Vec<SlotRef>> {
    graph
        .vertices
        .iter()
        .map(|v| {
            (0..v.parallelism as usize)
                .map(|s| slots[s].clone())
                .collect()
        })
        .collect()
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
    placement: &[Vec<SlotRef>],
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
            let channels = match edge.partitioning {
                Partitioning::Forward => vec![InputChannelDescriptor {
                    producer_subtask: subtask,
                    subpartition: 0,
                    data_address: producers[subtask as usize].data_address.clone(),
                    producer_attempt: task.attempt,
                }],
                _ => producers
                    .iter()
                    .enumerate()
                    .map(|(p, slot)| InputChannelDescriptor {
                        producer_subtask: p as u32,
                        subpartition: subtask,
                        data_address: slot.data_address.clone(),
                        producer_attempt: task.attempt,
                    })
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
    let slot = placement[vertex as usize][subtask as usize].slot;
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
