use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use spate_api::{Operator, OperatorContext, OperatorFactory, Result, WatermarkStrategy};
use spate_graph::{NodeId, NodeKind, Partitioning};
use spate_operators::basic::{FilterOperator, FlatMapOperator, MapOperator, ProjectOperator};
use spate_operators::keyed::{KeyedProcessFunction, KeyedProcessOperator};
use spate_operators::window::{AggregateSpec, WindowAssigner, WindowOperator, WindowSpec};

use crate::env::StreamEnv;

/// A stream of record batches with a known schema, at the output of one operator.
pub struct DataStream {
    env: StreamEnv,
    node: NodeId,
    schema: SchemaRef,
    /// How the next operator will read this stream.
    partitioning: Partitioning,
    /// The column carrying event time, once watermarks are assigned and while it survives.
    event_time: Option<String>,
}

impl DataStream {
    pub(crate) fn new(env: StreamEnv, node: NodeId, schema: SchemaRef) -> Self {
        DataStream {
            env,
            node,
            schema,
            partitioning: Partitioning::Forward,
            event_time: None,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Sets the parallelism of the operator that produces this stream.
    pub fn parallelism(self, parallelism: u32) -> Self {
        self.env.state.borrow_mut().graph.nodes[self.node].parallelism = parallelism;
        self
    }

    /// Derives watermarks at the source from the strategy's event-time column.
    pub fn with_watermarks(mut self, strategy: WatermarkStrategy) -> Self {
        if self.schema.index_of(&strategy.event_time_column).is_err() {
            self.env.error(format!(
                "with_watermarks: event-time column '{}' is not in the stream",
                strategy.event_time_column
            ));
        }
        let column = strategy.event_time_column.clone();
        let mut state = self.env.state.borrow_mut();
        match &mut state.graph.nodes[self.node].kind {
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
        let parallelism = match self.partitioning {
            Partitioning::Forward => self.env.state.borrow().graph.nodes[self.node].parallelism,
            _ => self.env.state.borrow().parallelism,
        };
        let node = {
            let mut state = self.env.state.borrow_mut();
            let node = state.graph.add_operator(
                name,
                parallelism,
                factory,
                self.schema.clone(),
                output.clone(),
            );
            state
                .graph
                .connect(self.node, node, self.partitioning.clone());
            node
        };
        let event_time = self
            .event_time
            .filter(|column| output.index_of(column).is_ok());
        DataStream {
            env: self.env,
            node,
            schema: output,
            partitioning: Partitioning::Forward,
            event_time,
        }
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

    pub fn project(self, columns: &[&str]) -> DataStream {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
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

    /// The next operator reads whole batches round robin.
    pub fn rebalance(mut self) -> Self {
        self.partitioning = Partitioning::Rebalance;
        self
    }

    /// The next operator's every subtask reads every batch.
    pub fn broadcast(mut self) -> Self {
        self.partitioning = Partitioning::Broadcast;
        self
    }

    pub fn key_by(mut self, columns: &[&str]) -> KeyedStream {
        let keys: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        if let Some(missing) = keys.iter().find(|k| self.schema.index_of(k).is_err()) {
            self.env
                .error(format!("key_by: column '{missing}' is not in the stream"));
        }
        self.partitioning = Partitioning::Hash(keys.clone());
        KeyedStream { stream: self, keys }
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
