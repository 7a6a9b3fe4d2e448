//! Runs one parallel subtask of a job vertex: reads its source or its input gate, pushes elements
//! through the chained operators, and writes the results to its outputs. One task, one thread.

mod align;
mod chain;
mod checkpoint;
mod error;
mod metrics;
mod output;
mod source;
mod task;
mod valve;
mod watermarks;

#[cfg(test)]
mod tests;

pub use chain::{Chain, ChainedOperator};
pub use checkpoint::{Checkpointing, TaskCommand, TaskSnapshot};
pub use error::TaskError;
pub use metrics::TaskMetrics;
pub use output::OutputWriter;
pub use source::{SourceInput, SplitGroup, group_name, restored_groups};
pub use task::{Canceler, FINAL_SNAPSHOT, Task, TaskInput, TaskOutcome};
pub use valve::WatermarkValve;
pub use watermarks::WatermarkGenerator;
