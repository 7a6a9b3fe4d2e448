use crate::job::{JobEdge, JobVertex};
use crate::stream::{Partitioning, StreamEdge, StreamGraph};

/// Whether `edge` can be collapsed into a function call inside one task: a one-to-one forward
/// edge between operators of equal parallelism, with no fan-in or fan-out, into an operator of
/// one input. A multi-input operator therefore always heads its task, which reads each input
/// from its own gate; what follows it may chain.
fn chainable(graph: &StreamGraph, edge: &StreamEdge) -> bool {
    let (from, to) = (edge.from, edge.to);
    edge.partitioning == Partitioning::Forward
        && graph.nodes[from].parallelism == graph.nodes[to].parallelism
        && graph.outputs(from).count() == 1
        && graph.inputs(to).count() == 1
        && graph.num_inputs(to) == 1
}

/// Groups stream-graph nodes into chains (job vertices) and turns the edges between chains into
/// job edges. Nodes are in topological order (validated), so a single pass suffices.
pub fn chain_vertices(graph: &StreamGraph) -> (Vec<JobVertex>, Vec<JobEdge>) {
    let mut vertex_of: Vec<Option<u32>> = vec![None; graph.nodes.len()];
    let mut vertices: Vec<JobVertex> = Vec::new();
    for node in &graph.nodes {
        let upstream = graph
            .inputs(node.id)
            .find(|e| chainable(graph, e))
            .and_then(|e| vertex_of[e.from]);
        let vertex = match upstream {
            Some(v) => {
                let vertex = &mut vertices[v as usize];
                vertex.nodes.push(node.id);
                vertex.name = format!("{} -> {}", vertex.name, node.name);
                v
            }
            None => {
                let id = vertices.len() as u32;
                vertices.push(JobVertex {
                    id,
                    name: node.name.clone(),
                    parallelism: node.parallelism,
                    nodes: vec![node.id],
                });
                id
            }
        };
        vertex_of[node.id] = Some(vertex);
    }
    let edges = graph
        .edges
        .iter()
        .filter(|e| !chainable(graph, e))
        .enumerate()
        .map(|(i, e)| JobEdge {
            id: i as u32,
            from: vertex_of[e.from].expect("every node has a vertex"),
            to: vertex_of[e.to].expect("every node has a vertex"),
            to_input: e.to_input as u32,
            partitioning: e.partitioning.clone(),
            schema: graph.nodes[e.from].output_schema.clone(),
            changelog: graph.nodes[e.from].changelog.clone(),
        })
        .collect();
    (vertices, edges)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema, SchemaRef};
    use spate_api::{
        ChangelogMode, Operator, OperatorContext, OperatorFactory, Output, Result, SourceFactory,
        SourceReader, Split, changelog_schema,
    };

    use crate::{GraphError, JobGraph, NodeKind, Partitioning, StreamGraph};

    struct NoSource;
    impl SourceFactory for NoSource {
        fn splits(&self, _: u32) -> Vec<Split> {
            Vec::new()
        }
        fn create_reader(
            &self,
            _: Vec<Split>,
            _: &OperatorContext,
        ) -> Result<Box<dyn SourceReader>> {
            unreachable!("graph tests never run the source")
        }
    }

    struct Identity;
    impl Operator for Identity {
        fn process_batch(
            &mut self,
            batch: arrow_array::RecordBatch,
            out: &mut Output,
        ) -> Result<()> {
            out.batch(batch);
            Ok(())
        }
    }

    fn identity() -> Arc<dyn OperatorFactory> {
        Arc::new(|_: &OperatorContext| -> Result<Box<dyn Operator>> { Ok(Box::new(Identity)) })
    }

    fn schema(cols: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        ))
    }

    fn pipeline() -> (StreamGraph, SchemaRef) {
        let s = schema(&[("key", DataType::Int64), ("v", DataType::Int64)]);
        let mut g = StreamGraph::new("t");
        let src = g.add_source("src", 2, Arc::new(NoSource), s.clone(), None);
        let map = g.add_operator("map", 2, identity(), s.clone(), s.clone());
        let agg = g.add_operator("agg", 3, identity(), s.clone(), s.clone());
        let sink = g.add_operator("sink", 3, identity(), s.clone(), s.clone());
        g.connect(src, map, Partitioning::Forward);
        g.connect(map, agg, Partitioning::Hash(vec!["key".into()]));
        g.connect(agg, sink, Partitioning::Forward);
        (g, s)
    }

    #[test]
    fn forward_edges_of_equal_parallelism_are_chained() {
        let (g, _) = pipeline();
        let job = JobGraph::build(g).unwrap();
        let chains: Vec<(String, u32)> = job
            .vertices
            .iter()
            .map(|v| (v.name.clone(), v.parallelism))
            .collect();
        assert_eq!(
            chains,
            vec![("src -> map".into(), 2), ("agg -> sink".into(), 3)]
        );
        assert_eq!(job.edges.len(), 1);
        assert_eq!((job.edges[0].from, job.edges[0].to), (0, 1));
        assert_eq!(job.slots_needed(), 3);
        assert_eq!(job.max_parallelism, 128);
    }

    #[test]
    fn a_schema_mismatch_names_the_edge() {
        let (mut g, _) = pipeline();
        let other = schema(&[("key", DataType::Utf8), ("v", DataType::Int64)]);
        let bad = g.add_operator("bad", 3, identity(), other.clone(), other);
        g.connect(2, bad, Partitioning::Rebalance);
        let err = JobGraph::build(g).err().expect("mismatch refused");
        assert!(matches!(err, GraphError::SchemaMismatch { .. }));
        let text = err.to_string();
        assert!(text.contains("'agg' -> 'bad' (rebalance)"), "{text}");
        assert!(text.contains("key Int64 where key Utf8"), "{text}");
    }

    #[test]
    fn other_mistakes_are_named() {
        let (mut g, _) = pipeline();
        g.edges[1].partitioning = Partitioning::Hash(vec!["nope".into()]);
        assert!(
            JobGraph::build(g)
                .err()
                .unwrap()
                .to_string()
                .contains("key column 'nope'")
        );
        let (mut g, _) = pipeline();
        g.nodes[2].parallelism = 0;
        assert!(
            JobGraph::build(g)
                .err()
                .unwrap()
                .to_string()
                .contains("'agg': parallelism 0")
        );
        let (mut g, _) = pipeline();
        g.edges[2].partitioning = Partitioning::Forward;
        g.nodes[3].parallelism = 2;
        assert!(
            JobGraph::build(g)
                .err()
                .unwrap()
                .to_string()
                .contains("forward edge needs equal parallelism")
        );
    }

    /// Two sources unioned into input 0 of a two-input operator, a third source into input 1
    /// (of another schema), a sink chained after it.
    fn two_inputs() -> (StreamGraph, SchemaRef, SchemaRef) {
        let left = schema(&[("key", DataType::Int64), ("v", DataType::Int64)]);
        let right = schema(&[("id", DataType::Int64), ("name", DataType::Utf8)]);
        let mut g = StreamGraph::new("t");
        let a = g.add_source("a", 2, Arc::new(NoSource), left.clone(), None);
        let b = g.add_source("b", 2, Arc::new(NoSource), left.clone(), None);
        let c = g.add_source("c", 1, Arc::new(NoSource), right.clone(), None);
        let inputs = vec![left.clone(), right.clone()];
        let co = g.add_multi_input_operator("co", 2, identity(), inputs, left.clone());
        let sink = g.add_operator("sink", 2, identity(), left.clone(), left.clone());
        g.connect_to_input(a, co, 0, Partitioning::Hash(vec!["key".into()]));
        g.connect_to_input(b, co, 0, Partitioning::Hash(vec!["key".into()]));
        g.connect_to_input(c, co, 1, Partitioning::Hash(vec!["id".into()]));
        g.connect(co, sink, Partitioning::Forward);
        (g, left, right)
    }

    #[test]
    fn a_multi_input_operator_heads_its_vertex_and_its_edges_keep_their_input() {
        let job = JobGraph::build(two_inputs().0).unwrap();
        let names: Vec<&str> = job.vertices.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "co -> sink"]);
        assert_eq!(job.num_inputs(3), 2);
        assert_eq!(job.num_inputs(0), 0);
        let inputs: Vec<(u32, u32, u32)> = job
            .edges
            .iter()
            .map(|e| (e.from, e.to, e.to_input))
            .collect();
        assert_eq!(inputs, [(0, 3, 0), (1, 3, 0), (2, 3, 1)]);
        assert!(
            job.explain()
                .contains("vertex 2 -> vertex 3 input 1 (hash[id])")
        );
    }

    #[test]
    fn a_forward_edge_into_a_multi_input_operator_is_not_chained() {
        let s = schema(&[("key", DataType::Int64)]);
        let mut g = StreamGraph::new("t");
        let a = g.add_source("a", 2, Arc::new(NoSource), s.clone(), None);
        let b = g.add_source("b", 2, Arc::new(NoSource), s.clone(), None);
        let inputs = vec![s.clone(), s.clone()];
        let co = g.add_multi_input_operator("co", 2, identity(), inputs, s.clone());
        g.connect_to_input(a, co, 0, Partitioning::Forward);
        g.connect_to_input(b, co, 1, Partitioning::Forward);
        let job = JobGraph::build(g).unwrap();
        assert_eq!(job.vertices.len(), 3);
        assert_eq!(job.edges.len(), 2);
    }

    #[test]
    fn mistakes_of_multi_input_operators_name_the_input() {
        let (mut g, _, _) = two_inputs();
        g.edges.retain(|e| e.to_input != 1);
        let text = JobGraph::build(g).err().unwrap().to_string();
        assert!(
            text.contains("'co': input 1 of its 2 inputs has no edge"),
            "{text}"
        );

        let (mut g, _, _) = two_inputs();
        g.connect_to_input(2, 3, 2, Partitioning::Rebalance);
        let text = JobGraph::build(g).err().unwrap().to_string();
        assert!(
            text.contains("feeds input 2 of an operator with 2 input(s)"),
            "{text}"
        );

        // The right-hand source wired into the left-hand input.
        let (mut g, _, _) = two_inputs();
        g.edges[2].to_input = 0;
        g.edges[1].to_input = 1;
        let err = JobGraph::build(g).err().unwrap();
        assert!(matches!(err, GraphError::SchemaMismatch { .. }));
        let text = err.to_string();
        assert!(text.contains("'b' -> 'co' input 1 (hash[key])"), "{text}");
        assert!(text.contains("key Int64 where id Int64"), "{text}");
    }

    #[test]
    fn fingerprints_differ_when_shapes_differ() {
        let a = JobGraph::build(pipeline().0).unwrap().fingerprint();
        assert_eq!(a, JobGraph::build(pipeline().0).unwrap().fingerprint());
        let (mut g, _) = pipeline();
        g.nodes[2].parallelism = 4;
        g.nodes[3].parallelism = 4;
        assert_ne!(a, JobGraph::build(g).unwrap().fingerprint());

        // The same edges into other inputs.
        let (g, _, _) = two_inputs();
        let straight = JobGraph::build(g).unwrap().fingerprint();
        let (mut g, left, right) = two_inputs();
        let NodeKind::Operator { input_schemas, .. } = &mut g.nodes[3].kind else {
            unreachable!("co is an operator")
        };
        *input_schemas = vec![right, left];
        for e in &mut g.edges[..3] {
            e.to_input = 1 - e.to_input;
        }
        assert_ne!(straight, JobGraph::build(g).unwrap().fingerprint());
    }

    /// src -> count (a changelog of `mode`) -> sink reading `sink_input`, partitioned by `by`.
    fn changelog(mode: ChangelogMode, by: Partitioning, sink_input: SchemaRef) -> StreamGraph {
        let s = schema(&[("key", DataType::Int64), ("n", DataType::Int64)]);
        let changes = changelog_schema(&s);
        let mut g = StreamGraph::new("t");
        let src = g.add_source("src", 2, Arc::new(NoSource), s.clone(), None);
        let count = g.add_operator("count", 2, identity(), s, changes);
        g.nodes[count].changelog = mode;
        let sink = g.add_operator("sink", 2, identity(), sink_input, Arc::new(Schema::empty()));
        g.connect(src, count, Partitioning::Hash(vec!["key".into()]));
        g.connect(count, sink, by);
        g
    }

    #[test]
    fn changelogs_reach_only_consumers_of_changes_by_key() {
        let s = schema(&[("key", DataType::Int64), ("n", DataType::Int64)]);
        let changes = changelog_schema(&s);
        let by_key = || Partitioning::Hash(vec!["key".into()]);
        let upsert = || ChangelogMode::Upsert {
            key: vec!["key".into()],
        };
        let job =
            JobGraph::build(changelog(ChangelogMode::Retract, by_key(), changes.clone())).unwrap();
        assert!(
            job.explain().contains("(hash[key], retract changelog)"),
            "{}",
            job.explain()
        );
        let retract = job.fingerprint();
        let job = JobGraph::build(changelog(upsert(), by_key(), changes.clone())).unwrap();
        assert_ne!(retract, job.fingerprint(), "the mode is part of the shape");

        // A consumer built for inserts only, fed updates: both operators are named.
        let err = JobGraph::build(changelog(ChangelogMode::Retract, by_key(), s.clone()))
            .err()
            .unwrap();
        assert!(matches!(err, GraphError::UpdatesIntoAppendOnly { .. }));
        assert_eq!(
            err.to_string(),
            "operator 'sink' takes inserts only, but 'count' feeds it a changelog (retract): rows \
             that update or delete earlier ones"
        );

        let refused = |mode: ChangelogMode, by: Partitioning| {
            JobGraph::build(changelog(mode, by, changes.clone()))
                .err()
                .unwrap()
                .to_string()
        };
        let err = refused(ChangelogMode::Retract, Partitioning::Rebalance);
        assert!(err.contains("cannot be rebalanced"), "{err}");
        let err = refused(upsert(), Partitioning::Hash(vec!["n".into()]));
        assert!(
            err.contains("partitioned by 'n', which is not in its key"),
            "{err}"
        );
        let err = refused(ChangelogMode::AppendOnly, by_key());
        assert!(
            err.contains("'count': its output carries row kinds"),
            "{err}"
        );
        let err = refused(
            ChangelogMode::Upsert {
                key: vec!["id".into()],
            },
            by_key(),
        );
        assert!(
            err.contains("upsert key column 'id' is not in its output"),
            "{err}"
        );
    }
}
