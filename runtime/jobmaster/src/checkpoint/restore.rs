//! From a completed checkpoint or savepoint to what each task of the (possibly rescaled) job
//! restores: keyed state by overlapping key-group ranges, non-keyed entries of every old subtask.

use std::collections::{BTreeSet, HashMap};

use anyhow::bail;
use spate_api::KeyGroupRange;
use spate_checkpoint::CompletedSnapshot;
use spate_graph::JobGraph;
use spate_proto::v1::{OperatorRestore, StateEntry, TaskRestore};

/// Checks that `snapshot` fits `graph`: same max parallelism (key groups), and no state for
/// an operator the job does not have (it would be silently lost).
pub fn check_compatible(snapshot: &CompletedSnapshot, graph: &JobGraph) -> anyhow::Result<()> {
    let metadata = &snapshot.metadata;
    if metadata.max_parallelism != graph.max_parallelism {
        bail!(
            "{} was taken with max parallelism {}, the job has {}: key groups would not match",
            snapshot.location,
            metadata.max_parallelism,
            graph.max_parallelism
        );
    }
    let known: BTreeSet<String> = graph.stream.nodes.iter().map(|n| n.operator_id()).collect();
    let unknown: BTreeSet<&str> = metadata
        .states
        .iter()
        .map(|s| s.operator_id.as_str())
        .filter(|id| !known.contains(*id))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "{} holds state of operators this job does not have: {} (the job's operators: {})",
            snapshot.location,
            unknown.into_iter().collect::<Vec<_>>().join(", "),
            known.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// What subtask `subtask` of `vertex` restores.
pub fn task_restore(
    snapshot: &CompletedSnapshot,
    graph: &JobGraph,
    vertex: u32,
    subtask: u32,
) -> TaskRestore {
    let metadata = &snapshot.metadata;
    let vertex = &graph.vertices[vertex as usize];
    let range = KeyGroupRange::of_subtask(subtask, vertex.parallelism, graph.max_parallelism);
    let mut by_operator: HashMap<String, OperatorRestore> = HashMap::new();
    for &node in &vertex.nodes {
        let id = graph.node(node).operator_id();
        by_operator.insert(
            id.clone(),
            OperatorRestore {
                operator_id: id,
                ..Default::default()
            },
        );
    }
    let mut states: Vec<_> = metadata.states.iter().collect();
    states.sort_by_key(|s| (s.operator_id.as_str(), s.subtask));
    for state in states {
        let Some(restore) = by_operator.get_mut(&state.operator_id) else {
            continue;
        };
        if let Some(keyed) = &state.keyed {
            let theirs = KeyGroupRange::new(keyed.key_group_start, keyed.key_group_end);
            if theirs.intersects(&range) {
                restore.keyed.push(keyed.clone());
            }
        }
        restore
            .entries
            .extend(state.entries.iter().map(|e| StateEntry {
                name: e.name.clone(),
                value: e.value.clone(),
            }));
    }
    let mut operators: Vec<OperatorRestore> = by_operator
        .into_values()
        .filter(|o| !o.keyed.is_empty() || !o.entries.is_empty())
        .collect();
    operators.sort_by(|a, b| a.operator_id.cmp(&b.operator_id));
    TaskRestore {
        checkpoint_id: metadata.checkpoint_id,
        operators,
        location: snapshot.location.to_string(),
    }
}
