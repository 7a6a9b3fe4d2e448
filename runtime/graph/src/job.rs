use arrow_schema::SchemaRef;
use spate_api::ChangelogMode;

use crate::chain::chain_vertices;
use crate::error::GraphError;
use crate::stream::{NodeId, Partitioning, StreamGraph, StreamNode};

/// A chain of operators that runs as one task per parallel subtask.
#[derive(Debug, Clone)]
pub struct JobVertex {
    pub id: u32,
    pub name: String,
    pub parallelism: u32,
    /// The stream-graph nodes of the chain, upstream first.
    pub nodes: Vec<NodeId>,
}

/// A data exchange between two vertices.
#[derive(Debug, Clone)]
pub struct JobEdge {
    pub id: u32,
    pub from: u32,
    pub to: u32,
    /// The logical input of `to`'s first operator this edge feeds (0 with one input).
    pub to_input: u32,
    pub partitioning: Partitioning,
    pub schema: SchemaRef,
    /// The kinds of rows the edge carries (its producer's mode).
    pub changelog: ChangelogMode,
}

pub struct JobGraph {
    pub stream: StreamGraph,
    pub vertices: Vec<JobVertex>,
    pub edges: Vec<JobEdge>,
    pub max_parallelism: u32,
}

impl JobGraph {
    /// Validates and chains a stream graph.
    pub fn build(stream: StreamGraph) -> Result<Self, GraphError> {
        stream.validate()?;
        let (vertices, edges) = chain_vertices(&stream);
        let max_parallelism = stream.max_parallelism();
        Ok(JobGraph {
            stream,
            vertices,
            edges,
            max_parallelism,
        })
    }

    pub fn vertex(&self, id: u32) -> Option<&JobVertex> {
        self.vertices.get(id as usize)
    }

    pub fn node(&self, id: NodeId) -> &StreamNode {
        &self.stream.nodes[id]
    }

    pub fn inputs(&self, vertex: u32) -> impl Iterator<Item = &JobEdge> {
        self.edges.iter().filter(move |e| e.to == vertex)
    }

    pub fn outputs(&self, vertex: u32) -> impl Iterator<Item = &JobEdge> {
        self.edges.iter().filter(move |e| e.from == vertex)
    }

    /// How many logical inputs the task of `vertex` reads: those of its first operator.
    pub fn num_inputs(&self, vertex: u32) -> usize {
        self.vertex(vertex)
            .map_or(0, |v| self.stream.num_inputs(v.nodes[0]))
    }

    /// The slots a job needs when subtask i of every vertex shares slot i (slot sharing).
    pub fn slots_needed(&self) -> u32 {
        self.vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0)
    }

    /// Identifies the graph's shape: vertices, chains, edges and schemas. The JobMaster and the
    /// workers each build the graph from the job spec; equal fingerprints mean they agree.
    pub fn fingerprint(&self) -> String {
        let mut text = format!("{}|{}", self.stream.name, self.max_parallelism);
        for v in &self.vertices {
            text.push_str(&format!("|v{}:{}:{}", v.id, v.name, v.parallelism));
        }
        for e in &self.edges {
            text.push_str(&format!(
                "|e{}:{}>{}.{}:{}:{}:{:?}",
                e.id,
                e.from,
                e.to,
                e.to_input,
                e.partitioning,
                e.changelog,
                e.schema.fields()
            ));
        }
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }

    /// A human-readable plan: one line per vertex with its chain, one per edge.
    pub fn explain(&self) -> String {
        let mut out = format!(
            "job '{}' (max parallelism {})\n",
            self.stream.name, self.max_parallelism
        );
        for v in &self.vertices {
            let chain: Vec<&str> = v
                .nodes
                .iter()
                .map(|&n| self.node(n).name.as_str())
                .collect();
            out.push_str(&format!(
                "  vertex {} [parallelism {}]: {}\n",
                v.id,
                v.parallelism,
                chain.join(" -> ")
            ));
        }
        for e in &self.edges {
            let into = match self.num_inputs(e.to) {
                n if n > 1 => format!(" input {}", e.to_input),
                _ => String::new(),
            };
            let changes = match &e.changelog {
                ChangelogMode::AppendOnly => String::new(),
                mode => format!(", {mode} changelog"),
            };
            out.push_str(&format!(
                "  edge {}: vertex {} -> vertex {}{into} ({}{changes})\n",
                e.id, e.from, e.to, e.partitioning
            ));
        }
        out
    }
}
