//! Pipelined regions: the sets of subtasks that must restart together after a failure.
//!
//! Every exchange is pipelined, so a consumer that lost its producer (or a producer that lost
//! its consumer) cannot go on alone: subtasks joined by an edge share a region. A forward edge
//! joins subtask i to subtask i; any other partitioning joins every producer to every consumer.
//! A job of forward-only chains therefore has one region per parallel pipeline, and a keyed
//! exchange makes the whole job one region.

use crate::job::JobGraph;
use crate::stream::Partitioning;

/// A subtask: (vertex, subtask index).
pub type SubtaskRef = (u32, u32);

/// The job's pipelined regions, each sorted, ordered by their first subtask.
pub fn pipelined_regions(graph: &JobGraph) -> Vec<Vec<SubtaskRef>> {
    let offsets: Vec<usize> = graph
        .vertices
        .iter()
        .scan(0, |next, v| {
            let start = *next;
            *next += v.parallelism as usize;
            Some(start)
        })
        .collect();
    let total = graph.vertices.iter().map(|v| v.parallelism as usize).sum();
    let index = |vertex: u32, subtask: u32| offsets[vertex as usize] + subtask as usize;
    let mut sets = DisjointSets::new(total);
    for edge in &graph.edges {
        let producers = graph.vertices[edge.from as usize].parallelism;
        let consumers = graph.vertices[edge.to as usize].parallelism;
        match edge.partitioning {
            Partitioning::Forward => {
                for s in 0..producers.min(consumers) {
                    sets.union(index(edge.from, s), index(edge.to, s));
                }
            }
            _ => {
                for p in 0..producers {
                    for c in 0..consumers {
                        sets.union(index(edge.from, p), index(edge.to, c));
                    }
                }
            }
        }
    }
    let mut regions: Vec<Vec<SubtaskRef>> = Vec::new();
    let mut region_of_root = vec![usize::MAX; total];
    for vertex in &graph.vertices {
        for subtask in 0..vertex.parallelism {
            let root = sets.find(index(vertex.id, subtask));
            if region_of_root[root] == usize::MAX {
                region_of_root[root] = regions.len();
                regions.push(Vec::new());
            }
            regions[region_of_root[root]].push((vertex.id, subtask));
        }
    }
    for region in &mut regions {
        region.sort_unstable();
    }
    regions.sort();
    regions
}

struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(size: usize) -> Self {
        DisjointSets {
            parent: (0..size).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::Schema;

    use super::*;
    use crate::job::{JobEdge, JobVertex};
    use crate::stream::StreamGraph;

    fn graph(parallelism: &[u32], edges: &[(u32, u32, Partitioning)]) -> JobGraph {
        JobGraph {
            stream: StreamGraph::new("regions"),
            vertices: parallelism
                .iter()
                .enumerate()
                .map(|(id, &parallelism)| JobVertex {
                    id: id as u32,
                    name: format!("v{id}"),
                    parallelism,
                    nodes: Vec::new(),
                })
                .collect(),
            edges: edges
                .iter()
                .enumerate()
                .map(|(id, (from, to, partitioning))| JobEdge {
                    id: id as u32,
                    from: *from,
                    to: *to,
                    to_input: 0,
                    partitioning: partitioning.clone(),
                    schema: Arc::new(Schema::empty()),
                    changelog: Default::default(),
                })
                .collect(),
            max_parallelism: 128,
        }
    }

    #[test]
    fn forward_pipelines_are_one_region_each() {
        let g = graph(&[3, 3], &[(0, 1, Partitioning::Forward)]);
        assert_eq!(
            pipelined_regions(&g),
            vec![
                vec![(0, 0), (1, 0)],
                vec![(0, 1), (1, 1)],
                vec![(0, 2), (1, 2)]
            ]
        );
    }

    #[test]
    fn an_all_to_all_exchange_joins_every_subtask() {
        let g = graph(
            &[2, 3, 3],
            &[
                (0, 1, Partitioning::Rebalance),
                (1, 2, Partitioning::Forward),
            ],
        );
        let regions = pipelined_regions(&g);
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].len(), 8);
    }

    #[test]
    fn unconnected_vertices_form_their_own_regions() {
        let g = graph(&[2, 1], &[]);
        assert_eq!(
            pipelined_regions(&g),
            vec![vec![(0, 0)], vec![(0, 1)], vec![(1, 0)]]
        );
    }
}
