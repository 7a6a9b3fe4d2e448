//! Runs one parallel subtask of a job vertex: reads its source or its input gate, pushes elements
//! through the chained operators, and writes the results to its outputs. One task, one thread.

mod chain;
mod error;
mod metrics;
mod output;
mod task;
mod valve;
mod watermarks;

pub use chain::{Chain, ChainedOperator};
pub use error::TaskError;
pub use metrics::TaskMetrics;
pub use output::OutputWriter;
pub use task::{Canceler, Task, TaskInput, TaskOutcome};
pub use valve::WatermarkValve;
pub use watermarks::WatermarkGenerator;
