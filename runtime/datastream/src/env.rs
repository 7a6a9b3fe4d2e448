use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use spate_api::SourceFactory;
use spate_graph::{GraphError, StreamGraph};

use crate::stream::DataStream;

pub(crate) struct EnvState {
    pub graph: StreamGraph,
    pub parallelism: u32,
    pub errors: Vec<String>,
}

/// Where a job is written. Cloning it shares the job being written.
#[derive(Clone)]
pub struct StreamEnv {
    pub(crate) state: Rc<RefCell<EnvState>>,
}

impl StreamEnv {
    /// A job whose operators get `parallelism` unless told otherwise.
    pub fn new(name: &str, parallelism: u32) -> Self {
        StreamEnv {
            state: Rc::new(RefCell::new(EnvState {
                graph: StreamGraph::new(name),
                parallelism,
                errors: Vec::new(),
            })),
        }
    }

    pub fn set_max_parallelism(&self, max_parallelism: u32) -> &Self {
        self.state.borrow_mut().graph.max_parallelism = Some(max_parallelism);
        self
    }

    pub fn source(
        &self,
        name: &str,
        source: impl SourceFactory + 'static,
        schema: SchemaRef,
    ) -> DataStream {
        let parallelism = self.state.borrow().parallelism;
        let node = self.state.borrow_mut().graph.add_source(
            name,
            parallelism,
            Arc::new(source),
            schema.clone(),
            None,
        );
        DataStream::new(self.clone(), node, schema)
    }

    /// The job's name.
    pub fn name(&self) -> String {
        self.state.borrow().graph.name.clone()
    }

    pub(crate) fn error(&self, message: String) {
        self.state.borrow_mut().errors.push(message);
    }

    /// The finished job graph, or every mistake made while writing it.
    pub fn build(self) -> Result<StreamGraph, GraphError> {
        let state = Rc::try_unwrap(self.state)
            .map_err(|_| GraphError::InvalidNode {
                node: "<job>".into(),
                detail: "build() was called while streams of the job were still held".into(),
            })?
            .into_inner();
        if !state.errors.is_empty() {
            return Err(GraphError::InvalidNode {
                node: state.graph.name.clone(),
                detail: state.errors.join("; "),
            });
        }
        state.graph.validate()?;
        Ok(state.graph)
    }
}
