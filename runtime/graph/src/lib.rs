//! Jobs as data. A [`StreamGraph`] holds one node per operator as the user wrote it; validation
//! checks it before anything runs; chaining turns it into the [`JobGraph`] the JobMaster
//! schedules, where each vertex is a chain of operators that runs in one task.

mod chain;
mod error;
mod job;
mod regions;
mod stream;

pub use error::GraphError;
pub use job::{JobEdge, JobGraph, JobVertex};
pub use regions::{SubtaskRef, pipelined_regions};
pub use stream::{
    NodeId, NodeKind, Partitioning, StreamEdge, StreamGraph, StreamNode, schema_mismatch,
};
