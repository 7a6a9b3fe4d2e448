use std::fmt;
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use spate_api::{
    ChangelogMode, OperatorFactory, SourceFactory, WatermarkStrategy, default_max_parallelism,
    row_kind_index,
};

use crate::error::GraphError;

pub type NodeId = usize;

pub enum NodeKind {
    Source {
        factory: Arc<dyn SourceFactory>,
        watermarks: Option<WatermarkStrategy>,
    },
    Operator {
        factory: Arc<dyn OperatorFactory>,
        /// The schema of each logical input, in input order, as the operator was built for
        /// them; every edge into input i must deliver exactly `input_schemas[i]`.
        input_schemas: Vec<SchemaRef>,
    },
}

pub struct StreamNode {
    pub id: NodeId,
    pub name: String,
    pub parallelism: u32,
    pub kind: NodeKind,
    pub output_schema: SchemaRef,
    /// Which kinds of rows the output carries; anything but append-only has the row-kind column
    /// last in `output_schema`.
    pub changelog: ChangelogMode,
}

impl StreamNode {
    pub fn is_source(&self) -> bool {
        matches!(self.kind, NodeKind::Source { .. })
    }

    /// The id under which the node's state is checkpointed: stable for the same job whatever
    /// the parallelism, and usable in file names.
    pub fn operator_id(&self) -> String {
        let name: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("{}-{name}", self.id)
    }
}

/// How records of an edge are distributed among the consumer's parallel subtasks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Partitioning {
    /// Subtask i feeds subtask i; both sides have the same parallelism. Such edges are chained.
    Forward,
    /// By key group of the named columns.
    Hash(Vec<String>),
    Rebalance,
    Broadcast,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioning::Forward => write!(f, "forward"),
            Partitioning::Hash(keys) => write!(f, "hash[{}]", keys.join(", ")),
            Partitioning::Rebalance => write!(f, "rebalance"),
            Partitioning::Broadcast => write!(f, "broadcast"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StreamEdge {
    pub from: NodeId,
    pub to: NodeId,
    /// The logical input of `to` this edge feeds: 0 for an operator with one input. Several
    /// edges into one input are a union.
    pub to_input: usize,
    pub partitioning: Partitioning,
}

#[derive(Default)]
pub struct StreamGraph {
    pub name: String,
    /// Number of key groups; `None` takes Flink's default for the largest parallelism.
    pub max_parallelism: Option<u32>,
    pub nodes: Vec<StreamNode>,
    pub edges: Vec<StreamEdge>,
}

impl StreamGraph {
    pub fn new(name: impl Into<String>) -> Self {
        StreamGraph {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn add_source(
        &mut self,
        name: impl Into<String>,
        parallelism: u32,
        factory: Arc<dyn SourceFactory>,
        output_schema: SchemaRef,
        watermarks: Option<WatermarkStrategy>,
    ) -> NodeId {
        self.push(
            name.into(),
            parallelism,
            NodeKind::Source {
                factory,
                watermarks,
            },
            output_schema,
        )
    }

    pub fn add_operator(
        &mut self,
        name: impl Into<String>,
        parallelism: u32,
        factory: Arc<dyn OperatorFactory>,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> NodeId {
        let inputs = vec![input_schema];
        self.add_multi_input_operator(name, parallelism, factory, inputs, output_schema)
    }

    /// An operator with one logical input per schema (a co-process function, a join); edges
    /// reach input i through `connect_to_input`.
    pub fn add_multi_input_operator(
        &mut self,
        name: impl Into<String>,
        parallelism: u32,
        factory: Arc<dyn OperatorFactory>,
        input_schemas: Vec<SchemaRef>,
        output_schema: SchemaRef,
    ) -> NodeId {
        self.push(
            name.into(),
            parallelism,
            NodeKind::Operator {
                factory,
                input_schemas,
            },
            output_schema,
        )
    }

    fn push(
        &mut self,
        name: String,
        parallelism: u32,
        kind: NodeKind,
        output_schema: SchemaRef,
    ) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(StreamNode {
            id,
            name,
            parallelism,
            kind,
            output_schema,
            changelog: ChangelogMode::AppendOnly,
        });
        id
    }

    pub fn connect(&mut self, from: NodeId, to: NodeId, partitioning: Partitioning) {
        self.connect_to_input(from, to, 0, partitioning);
    }

    /// An edge into logical input `input` of `to`.
    pub fn connect_to_input(
        &mut self,
        from: NodeId,
        to: NodeId,
        input: usize,
        partitioning: Partitioning,
    ) {
        self.edges.push(StreamEdge {
            from,
            to,
            to_input: input,
            partitioning,
        });
    }

    /// How many logical inputs `node` has: none for a source.
    pub fn num_inputs(&self, node: NodeId) -> usize {
        match &self.nodes[node].kind {
            NodeKind::Source { .. } => 0,
            NodeKind::Operator { input_schemas, .. } => input_schemas.len(),
        }
    }

    pub fn inputs(&self, node: NodeId) -> impl Iterator<Item = &StreamEdge> {
        self.edges.iter().filter(move |e| e.to == node)
    }

    pub fn outputs(&self, node: NodeId) -> impl Iterator<Item = &StreamEdge> {
        self.edges.iter().filter(move |e| e.from == node)
    }

    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism.unwrap_or_else(|| {
            default_max_parallelism(self.nodes.iter().map(|n| n.parallelism).max().unwrap_or(1))
        })
    }

    pub fn describe_edge(&self, edge: &StreamEdge) -> String {
        let into = match self.nodes.get(edge.to).map(|_| self.num_inputs(edge.to)) {
            Some(n) if n > 1 => format!(" input {}", edge.to_input),
            _ => String::new(),
        };
        let name = |id: NodeId| self.nodes.get(id).map_or("?", |n| n.name.as_str());
        format!(
            "'{}' -> '{}'{into} ({})",
            name(edge.from),
            name(edge.to),
            edge.partitioning
        )
    }

    /// Checks everything that can be checked before deployment, so that a bad job is refused
    /// with the operator or edge at fault instead of failing later inside a task.
    pub fn validate(&self) -> Result<(), GraphError> {
        if !self.nodes.iter().any(StreamNode::is_source) {
            return Err(GraphError::NoSource);
        }
        let max_parallelism = self.max_parallelism();
        for node in &self.nodes {
            let invalid = |detail: String| GraphError::InvalidNode {
                node: node.name.clone(),
                detail,
            };
            if node.parallelism == 0 || node.parallelism > max_parallelism {
                return Err(invalid(format!(
                    "parallelism {} is outside 1..={max_parallelism} (the max parallelism)",
                    node.parallelism
                )));
            }
            let has_inputs = self.inputs(node.id).next().is_some();
            match (node.is_source(), has_inputs) {
                (true, true) => return Err(invalid("a source cannot have inputs".into())),
                (false, false) => return Err(invalid("the operator has no input".into())),
                _ => {}
            }
            let inputs = self.num_inputs(node.id);
            if !node.is_source() && inputs == 0 {
                return Err(invalid("the operator declares no input schema".into()));
            }
            if let Some(missing) =
                (0..inputs).find(|&i| !self.inputs(node.id).any(|e| e.to_input == i))
            {
                return Err(invalid(format!(
                    "input {missing} of its {inputs} inputs has no edge into it"
                )));
            }
            if let Some(detail) = changelog_mistake(node) {
                return Err(invalid(detail));
            }
        }
        for edge in &self.edges {
            self.validate_edge(edge)?;
        }
        Ok(())
    }

    fn validate_edge(&self, edge: &StreamEdge) -> Result<(), GraphError> {
        let name = || self.describe_edge(edge);
        let invalid = |detail: String| GraphError::InvalidEdge {
            edge: name(),
            detail,
        };
        let (Some(from), Some(to)) = (self.nodes.get(edge.from), self.nodes.get(edge.to)) else {
            return Err(invalid("it names an operator that does not exist".into()));
        };
        if edge.from >= edge.to {
            return Err(invalid(
                "edges must go from an earlier operator to a later one".into(),
            ));
        }
        if edge.partitioning == Partitioning::Forward && from.parallelism != to.parallelism {
            return Err(invalid(format!(
                "a forward edge needs equal parallelism, got {} and {}",
                from.parallelism, to.parallelism
            )));
        }
        if let Partitioning::Hash(keys) = &edge.partitioning {
            if keys.is_empty() {
                return Err(invalid(
                    "hash partitioning needs at least one key column".into(),
                ));
            }
            if let Some(missing) = keys
                .iter()
                .find(|k| from.output_schema.index_of(k).is_err())
            {
                return Err(invalid(format!(
                    "key column '{missing}' is not in the producer's output"
                )));
            }
        }
        if let Some(detail) = changelog_partitioning_mistake(&from.changelog, &edge.partitioning) {
            return Err(invalid(detail));
        }
        let NodeKind::Operator { input_schemas, .. } = &to.kind else {
            return Err(invalid("a source cannot have inputs".into()));
        };
        let Some(input_schema) = input_schemas.get(edge.to_input) else {
            return Err(invalid(format!(
                "it feeds input {} of an operator with {} input(s)",
                edge.to_input,
                input_schemas.len()
            )));
        };
        if !from.changelog.is_append_only() && row_kind_index(input_schema).is_none() {
            return Err(GraphError::UpdatesIntoAppendOnly {
                consumer: to.name.clone(),
                producer: from.name.clone(),
                mode: from.changelog.to_string(),
            });
        }
        if let Some(detail) = schema_mismatch(&from.output_schema, input_schema) {
            return Err(GraphError::SchemaMismatch {
                edge: name(),
                detail,
            });
        }
        Ok(())
    }
}

/// Why a node's changelog mode does not fit its output, if it does not.
fn changelog_mistake(node: &StreamNode) -> Option<String> {
    let carries_kinds = row_kind_index(&node.output_schema).is_some();
    match &node.changelog {
        ChangelogMode::AppendOnly if carries_kinds => Some(
            "its output carries row kinds but its changelog mode is append-only; declare the \
             mode of the changes it produces"
                .into(),
        ),
        mode if !mode.is_append_only() && !carries_kinds => Some(format!(
            "its changelog mode is {mode} but its output has no row-kind column"
        )),
        ChangelogMode::Upsert { key } if key.is_empty() => {
            Some("an upsert changelog needs at least one key column".into())
        }
        ChangelogMode::Upsert { key } => key
            .iter()
            .find(|k| node.output_schema.index_of(k).is_err())
            .map(|k| format!("upsert key column '{k}' is not in its output")),
        _ => None,
    }
}

/// Why an edge would break a changelog, if it would: every change of a row (or, for upserts, of
/// a key) must reach the same consumer subtask, in order.
fn changelog_partitioning_mistake(
    mode: &ChangelogMode,
    partitioning: &Partitioning,
) -> Option<String> {
    match (mode, partitioning) {
        (ChangelogMode::AppendOnly, _) => None,
        (_, Partitioning::Rebalance) => Some(format!(
            "a changelog ({mode}) cannot be rebalanced: the changes of one row must reach one \
             subtask in order; partition it by key"
        )),
        (ChangelogMode::Upsert { key }, Partitioning::Hash(columns)) => {
            columns.iter().find(|c| !key.contains(*c)).map(|c| {
                format!(
                    "a changelog ({mode}) partitioned by '{c}', which is not in its key: the \
                     changes of one key would reach different subtasks"
                )
            })
        }
        _ => None,
    }
}

/// Why records of `produced` cannot be read as `expected`, if they cannot.
pub fn schema_mismatch(produced: &Schema, expected: &Schema) -> Option<String> {
    if produced.fields().len() != expected.fields().len() {
        return Some(format!(
            "{} columns ({}) where {} ({}) are expected",
            produced.fields().len(),
            describe(produced),
            expected.fields().len(),
            describe(expected)
        ));
    }
    for (i, (p, e)) in produced.fields().iter().zip(expected.fields()).enumerate() {
        if p.name() != e.name() || p.data_type() != e.data_type() {
            return Some(format!(
                "column {} is {} {} where {} {} is expected",
                i + 1,
                p.name(),
                p.data_type(),
                e.name(),
                e.data_type()
            ));
        }
        if p.is_nullable() && !e.is_nullable() {
            return Some(format!(
                "column {} may be null but the consumer requires NOT NULL",
                p.name()
            ));
        }
    }
    None
}

fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}
