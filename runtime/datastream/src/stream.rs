use std::rc::Rc;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use spate_api::{
    ChangelogMode, Operator, OperatorContext, OperatorFactory, ROW_KIND_COLUMN, Result, RowKind,
    WatermarkStrategy, data_schema, row_kind_index, split_row_kinds,
};
use spate_graph::{NodeId, NodeKind, Partitioning, schema_mismatch};
use spate_operators::basic::{FilterOperator, FlatMapOperator, MapOperator, ProjectOperator};
use spate_operators::keyed::{
    KeyedCoProcessFunction, KeyedCoProcessOperator, KeyedProcessFunction, KeyedProcessOperator,
};
use spate_operators::window::{AggregateSpec, WindowAssigner, WindowOperator, WindowSpec};

use crate::env::StreamEnv;

/// One operator whose output is (part of) a stream, and how the next operator reads it.
#[derive(Clone)]
struct Upstream {
    node: NodeId,
    partitioning: Partitioning,
}

/// A stream of record batches with a known schema: the output of one operator, or the union of
/// several operators' outputs of the same schema.
pub struct DataStream {
    env: StreamEnv,
    /// One, or more for a union: the next operator reads each of them into the same input.
    parts: Vec<Upstream>,
    schema: SchemaRef,
    /// The column carrying event time, once watermarks are assigned and while it survives.
    event_time: Option<String>,
}

impl DataStream {
    pub(crate) fn new(env: StreamEnv, node: NodeId, schema: SchemaRef) -> Self {
        DataStream {
            env,
            parts: vec![Upstream {
                node,
                partitioning: Partitioning::Forward,
            }],
            schema,
            event_time: None,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The operator producing this stream; a union has none, which is a mistake of `what`.
    fn producer(&self, what: &str) -> Option<NodeId> {
        match self.parts.as_slice() {
            [one] => Some(one.node),
            _ => {
                self.env.error(format!(
                    "{what}: a union of streams has no operator of its own; call it on each \
                     stream before the union"
                ));
                None
            }
        }
    }

    /// Sets the parallelism of the operator that produces this stream.
    pub fn parallelism(self, parallelism: u32) -> Self {
        if let Some(node) = self.producer("parallelism") {
            self.env.state.borrow_mut().graph.nodes[node].parallelism = parallelism;
        }
        self
    }

    /// The kinds of rows this stream carries (append-only unless an operator produces changes).
    pub fn changelog(&self) -> ChangelogMode {
        let state = self.env.state.borrow();
        state.graph.nodes[self.parts[0].node].changelog.clone()
    }

    /// Declares the changes the operator producing this stream emits: its output schema ends
    /// in the row-kind column (`spate_api::changelog_schema`), and its rows are of the kinds
    /// `mode` allows. Operators after it that keep the row kinds inherit the mode.
    pub fn changelog_mode(self, mode: ChangelogMode) -> Self {
        if let Some(node) = self.producer("changelog_mode") {
            self.env.state.borrow_mut().graph.nodes[node].changelog = mode;
        }
        self
    }

    /// Derives watermarks at the source from the strategy's event-time column.
    pub fn with_watermarks(mut self, strategy: WatermarkStrategy) -> Self {
        let Some(node) = self.producer("with_watermarks") else {
            return self;
        };
        if self.schema.index_of(&strategy.event_time_column).is_err() {
            self.env.error(format!(
                "with_watermarks: event-time column '{}' is not in the stream",
                strategy.event_time_column
            ));
        }
        let column = strategy.event_time_column.clone();
        let mut state = self.env.state.borrow_mut();
        match &mut state.graph.nodes[node].kind {
            NodeKind::Source { watermarks, .. } => *watermarks = Some(strategy),
            NodeKind::Operator { .. } => {
                drop(state);
                self.env
                    .error("with_watermarks: watermarks are assigned at a source".into());
                return self;
            }
        }
        drop(state);
        self.event_time = Some(column);
        self
    }

    /// Adds an operator reading this stream; the general form of every method below.
    pub fn transform(
        self,
        name: &str,
        output: SchemaRef,
        factory: Arc<dyn OperatorFactory>,
    ) -> DataStream {
        let parallelism = reader_parallelism(&self.env, &[&self]);
        let changes = self.changelog();
        let node = {
            let mut state = self.env.state.borrow_mut();
            let node = state.graph.add_operator(
                name,
                parallelism,
                factory,
                self.schema.clone(),
                output.clone(),
            );
            // An operator that keeps the row kinds of a changelog passes its changes on.
            if row_kind_index(&output).is_some() {
                state.graph.nodes[node].changelog = changes;
            }
            for part in &self.parts {
                state
                    .graph
                    .connect(part.node, node, part.partitioning.clone());
            }
            node
        };
        let event_time = self.event_time.clone();
        DataStream::after(self.env, node, output, event_time)
    }

    /// The stream out of `node`, keeping the event-time column if the output still has it.
    fn after(env: StreamEnv, node: NodeId, output: SchemaRef, event_time: Option<String>) -> Self {
        let event_time = event_time.filter(|column| output.index_of(column).is_ok());
        DataStream {
            event_time,
            ..DataStream::new(env, node, output)
        }
    }

    /// This stream and `other` as one (Flink's `union`): the next operator reads both into
    /// the same input. The schemas must be equal; event time stays if both carry it in the
    /// same column.
    pub fn union(mut self, other: DataStream) -> DataStream {
        if !Rc::ptr_eq(&self.env.state, &other.env.state) {
            self.env
                .error("union: the other stream belongs to another job".into());
            return self;
        }
        if let Some(detail) = schema_mismatch(&other.schema, &self.schema) {
            self.env
                .error(format!("union: the streams have other schemas: {detail}"));
            return self;
        }
        let (mine, theirs) = (self.changelog(), other.changelog());
        if mine != theirs {
            self.env.error(format!(
                "union: the streams carry other kinds of rows: {mine} and {theirs}"
            ));
            return self;
        }
        if self.event_time != other.event_time {
            self.event_time = None;
        }
        self.parts.extend(other.parts);
        self
    }

    /// This stream and `other` as the two inputs of one operator (Flink's `connect`): this one
    /// is input 0, `other` input 1.
    pub fn connect(self, other: DataStream) -> ConnectedStreams {
        ConnectedStreams {
            first: self,
            second: other,
        }
    }

    /// Sets how the next operator reads every part of this stream.
    fn read_by(mut self, partitioning: Partitioning) -> Self {
        for part in &mut self.parts {
            part.partitioning = partitioning.clone();
        }
        self
    }

    pub fn map(
        self,
        name: &str,
        output: SchemaRef,
        function: impl Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync + 'static,
    ) -> DataStream {
        let function: spate_operators::basic::MapFn = Arc::new(function);
        let declared = output.clone();
        self.transform(
            name,
            output,
            factory(move || MapOperator::new(function.clone(), declared.clone())),
        )
    }

    pub fn flat_map(
        self,
        name: &str,
        output: SchemaRef,
        function: impl Fn(RecordBatch) -> Result<Vec<RecordBatch>> + Send + Sync + 'static,
    ) -> DataStream {
        let function: spate_operators::basic::FlatMapFn = Arc::new(function);
        let declared = output.clone();
        self.transform(
            name,
            output,
            factory(move || FlatMapOperator::new(function.clone(), declared.clone())),
        )
    }

    pub fn filter(
        self,
        name: &str,
        predicate: impl Fn(&RecordBatch) -> Result<BooleanArray> + Send + Sync + 'static,
    ) -> DataStream {
        let predicate: spate_operators::basic::PredicateFn = Arc::new(predicate);
        let output = self.schema.clone();
        self.transform(
            name,
            output,
            factory(move || FilterOperator::new(predicate.clone())),
        )
    }

    /// Keeps `columns`, in that order; a changelog keeps its row kinds as well.
    pub fn project(self, columns: &[&str]) -> DataStream {
        let mut columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        if row_kind_index(&self.schema).is_some() && !columns.iter().any(|c| c == ROW_KIND_COLUMN) {
            columns.push(ROW_KIND_COLUMN.to_string());
        }
        let name = format!("project({})", columns.join(", "));
        match ProjectOperator::new(&self.schema, &columns) {
            Ok((_, output)) => {
                let input = self.schema.clone();
                self.transform(
                    &name,
                    output,
                    factory(move || {
                        ProjectOperator::new(&input, &columns)
                            .expect("checked when built")
                            .0
                    }),
                )
            }
            Err(e) => {
                self.env.error(e.to_string());
                self
            }
        }
    }

    /// The changes of this stream as plain rows, for a sink that takes inserts only (Flink's
    /// `toChangelogStream`): column `kind_column` first, holding each row's kind as Flink prints
    /// it (`+I`, `-U`, `+U`, `-D`), then the data columns.
    pub fn to_change_rows(self, kind_column: &str) -> DataStream {
        let data = data_schema(&self.schema);
        if data.index_of(kind_column).is_ok() {
            self.env.error(format!(
                "to_change_rows: the stream already has a column '{kind_column}'"
            ));
            return self;
        }
        let mut fields = vec![Field::new(kind_column, DataType::Utf8, false)];
        fields.extend(data.fields().iter().map(|f| f.as_ref().clone()));
        let output = Arc::new(Schema::new(fields));
        let declared = output.clone();
        let name = format!("to_change_rows({kind_column})");
        self.map(&name, output, move |batch| {
            let (data, kinds) = split_row_kinds(&batch)?;
            let kinds = StringArray::from_iter_values((0..data.num_rows()).map(|row| {
                let kind = kinds.as_ref().map_or(RowKind::Insert, |kinds| kinds[row]);
                kind.short_string()
            }));
            let mut columns: Vec<ArrayRef> = vec![Arc::new(kinds)];
            columns.extend(data.columns().iter().cloned());
            Ok(RecordBatch::try_new(declared.clone(), columns)?)
        })
    }

    /// The next operator reads whole batches round robin.
    pub fn rebalance(self) -> Self {
        self.read_by(Partitioning::Rebalance)
    }

    /// The next operator's every subtask reads every batch.
    pub fn broadcast(self) -> Self {
        self.read_by(Partitioning::Broadcast)
    }

    pub fn key_by(self, columns: &[&str]) -> KeyedStream {
        let keys: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        if let Some(missing) = keys.iter().find(|k| self.schema.index_of(k).is_err()) {
            self.env
                .error(format!("key_by: column '{missing}' is not in the stream"));
        }
        KeyedStream {
            stream: self.read_by(Partitioning::Hash(keys.clone())),
            keys,
        }
    }

    /// Ends the stream in a sink; `make` builds one sink instance per subtask.
    pub fn sink<S: Operator + 'static>(
        self,
        name: &str,
        make: impl Fn(&OperatorContext) -> Result<S> + Send + Sync + 'static,
    ) -> StreamSink {
        let output = self.schema.clone();
        let end = self.transform(
            name,
            output,
            Arc::new(move |ctx: &OperatorContext| -> Result<Box<dyn Operator>> {
                Ok(Box::new(make(ctx)?))
            }),
        );
        StreamSink { stream: end }
    }
}

/// The sink at the end of a stream; only its parallelism can still be set.
pub struct StreamSink {
    stream: DataStream,
}

impl StreamSink {
    pub fn parallelism(self, parallelism: u32) -> Self {
        StreamSink {
            stream: self.stream.parallelism(parallelism),
        }
    }
}

/// The parallelism of an operator reading `streams`: that of their producers when every part is
/// read one-to-one (forward) from producers of one parallelism, else the job's default.
fn reader_parallelism(env: &StreamEnv, streams: &[&DataStream]) -> u32 {
    let state = env.state.borrow();
    let mut forward = streams.iter().flat_map(|s| &s.parts).map(|part| {
        (part.partitioning == Partitioning::Forward)
            .then(|| state.graph.nodes[part.node].parallelism)
    });
    let first = forward.next().flatten();
    match first {
        Some(p) if forward.all(|other| other == Some(p)) => p,
        _ => state.parallelism,
    }
}

fn factory<O: Operator + 'static>(
    make: impl Fn() -> O + Send + Sync + 'static,
) -> Arc<dyn OperatorFactory> {
    Arc::new(move |_: &OperatorContext| -> Result<Box<dyn Operator>> { Ok(Box::new(make())) })
}

/// A stream partitioned by key: each key's records reach one subtask.
pub struct KeyedStream {
    stream: DataStream,
    keys: Vec<String>,
}

impl KeyedStream {
    /// The keyed stream read as a plain stream: the next operator, whatever it is, gets each
    /// key's records in one subtask (Flink's `KeyedStream` is a `DataStream`).
    pub fn stream(self) -> DataStream {
        self.stream
    }

    pub fn window(self, assigner: WindowAssigner) -> WindowedStream {
        WindowedStream {
            keyed: self,
            assigner,
        }
    }

    pub fn process<F>(self, name: &str, function: F) -> DataStream
    where
        F: KeyedProcessFunction + Clone + Sync + 'static,
    {
        let output = function.output_schema();
        let (keys, input) = (self.keys.clone(), self.stream.schema.clone());
        let make = move |_: &OperatorContext| -> Result<Box<dyn Operator>> {
            Ok(Box::new(KeyedProcessOperator::new(
                function.clone(),
                keys.clone(),
                input.clone(),
            )?))
        };
        self.stream.transform(name, output, Arc::new(make))
    }
}

/// A keyed stream cut into event-time windows.
pub struct WindowedStream {
    keyed: KeyedStream,
    assigner: WindowAssigner,
}

impl WindowedStream {
    pub fn aggregate(self, aggregates: Vec<AggregateSpec>) -> DataStream {
        let stream = self.keyed.stream;
        let changes = stream.changelog();
        if !changes.is_append_only() {
            stream.env.error(format!(
                "window: windows take inserts only, and the stream is a changelog ({changes})"
            ));
            return stream;
        }
        let Some(event_time) = stream.event_time.clone() else {
            stream.env.error(
                "window: the stream has no event time; assign watermarks at its source".into(),
            );
            return stream;
        };
        let spec = WindowSpec {
            key_columns: self.keyed.keys,
            event_time_column: event_time,
            assigner: self.assigner,
            aggregates,
        };
        let output = match spec.output_schema(&stream.schema) {
            Ok(output) => output,
            Err(e) => {
                stream.env.error(format!("window: {e}"));
                return stream;
            }
        };
        let input = stream.schema.clone();
        let name = format!("window({:?})", spec.assigner);
        let make = move |_: &OperatorContext| -> Result<Box<dyn Operator>> {
            Ok(Box::new(WindowOperator::new(spec.clone(), input.clone())?))
        };
        stream.transform(&name, output, Arc::new(make))
    }
}

/// Two streams as the inputs of one operator: the first is input 0, the second input 1.
pub struct ConnectedStreams {
    first: DataStream,
    second: DataStream,
}

impl ConnectedStreams {
    /// Adds an operator with two inputs; the general form of `key_by(..).process(..)`.
    pub fn transform(
        self,
        name: &str,
        output: SchemaRef,
        factory: Arc<dyn OperatorFactory>,
    ) -> DataStream {
        let (first, second) = (self.first, self.second);
        let env = first.env.clone();
        if !Rc::ptr_eq(&env.state, &second.env.state) {
            env.error(format!(
                "{name}: the connected streams belong to other jobs"
            ));
            return first;
        }
        let parallelism = reader_parallelism(&env, &[&first, &second]);
        let node = {
            let mut state = env.state.borrow_mut();
            let inputs = vec![first.schema.clone(), second.schema.clone()];
            let node = state.graph.add_multi_input_operator(
                name,
                parallelism,
                factory,
                inputs,
                output.clone(),
            );
            for (input, stream) in [&first, &second].into_iter().enumerate() {
                for part in &stream.parts {
                    let partitioning = part.partitioning.clone();
                    state
                        .graph
                        .connect_to_input(part.node, node, input, partitioning);
                }
            }
            node
        };
        // Event time goes on only where both inputs carry it in the same column.
        let event_time = first
            .event_time
            .filter(|c| second.event_time.as_ref() == Some(c));
        DataStream::after(env, node, output, event_time)
    }

    /// Partitions both inputs by key, so that a key's rows from either input reach the same
    /// subtask: the columns must have the same types, pairwise (their names may differ).
    pub fn key_by(self, first: &[&str], second: &[&str]) -> KeyedConnectedStreams {
        let (first, second) = (self.first.key_by(first), self.second.key_by(second));
        let types = |keyed: &KeyedStream| -> Vec<String> {
            keyed
                .keys
                .iter()
                .filter_map(|k| keyed.stream.schema.field_with_name(k).ok())
                .map(|f| f.data_type().to_string())
                .collect()
        };
        if types(&first) != types(&second) {
            first.stream.env.error(format!(
                "key_by: the inputs are keyed by columns of other types: ({}) is ({}) and ({}) is ({})",
                first.keys.join(", "),
                types(&first).join(", "),
                second.keys.join(", "),
                types(&second).join(", ")
            ));
        }
        KeyedConnectedStreams { first, second }
    }
}

/// Two streams keyed alike, as the inputs of one keyed operator.
pub struct KeyedConnectedStreams {
    first: KeyedStream,
    second: KeyedStream,
}

impl KeyedConnectedStreams {
    /// Runs `function` per key over both inputs: a key's state and timers are shared by its
    /// rows from either.
    pub fn process<F>(self, name: &str, function: F) -> DataStream
    where
        F: KeyedCoProcessFunction + Clone + Sync + 'static,
    {
        let output = function.output_schema();
        let first = (self.first.keys.clone(), self.first.stream.schema.clone());
        let second = (self.second.keys.clone(), self.second.stream.schema.clone());
        let make = move |_: &OperatorContext| -> Result<Box<dyn Operator>> {
            Ok(Box::new(KeyedCoProcessOperator::new(
                function.clone(),
                first.clone(),
                second.clone(),
            )?))
        };
        let connected = ConnectedStreams {
            first: self.first.stream,
            second: self.second.stream,
        };
        connected.transform(name, output, Arc::new(make))
    }
}
