use arrow_array::RecordBatch;

use crate::context::OperatorContext;
use crate::error::Result;
use crate::state::StateEntry;
use crate::time::Timestamp;

/// A unit of source input (a range of generated events, a file) that one subtask reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub id: String,
}

impl Split {
    pub fn new(id: impl Into<String>) -> Self {
        Split { id: id.into() }
    }
}

/// What a source reader has for the task right now.
#[derive(Debug)]
pub enum SourcePoll {
    Batch(RecordBatch),
    /// Nothing now; the reader may have more later.
    Idle,
    /// Every assigned split is exhausted.
    End,
}

pub trait SourceReader: Send {
    fn poll_next(&mut self) -> Result<SourcePoll>;

    /// The read position of every assigned split, as of the last batch returned, so a restored
    /// reader continues exactly after it. Entries are named by split id; a reader created with
    /// `OperatorContext::state.restored` finds its splits' positions among them.
    ///
    /// Required, with no default: a reader that wraps another (computed columns, say) must pass
    /// the inner reader's positions on, or every restore would read its splits from the start.
    fn snapshot_positions(&mut self) -> Result<Vec<StateEntry>>;
}

/// A source: enumerates its splits and reads the ones assigned to a subtask.
pub trait SourceFactory: Send + Sync {
    fn splits(&self, parallelism: u32) -> Vec<Split>;

    fn create_reader(
        &self,
        splits: Vec<Split>,
        ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>>;
}

/// How a source derives watermarks from the event times it reads (Flink's bounded
/// out-of-orderness): after each batch, watermark = max event time seen − bound − 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkStrategy {
    pub event_time_column: String,
    pub max_out_of_orderness_ms: Timestamp,
    /// After this long without data the source marks itself idle, so it does not hold back the
    /// watermark of downstream tasks.
    pub idle_timeout_ms: Option<Timestamp>,
}

impl WatermarkStrategy {
    pub fn bounded_out_of_orderness(column: &str, bound_ms: Timestamp) -> Self {
        WatermarkStrategy {
            event_time_column: column.to_string(),
            max_out_of_orderness_ms: bound_ms,
            idle_timeout_ms: None,
        }
    }

    pub fn with_idle_timeout(mut self, timeout_ms: Timestamp) -> Self {
        self.idle_timeout_ms = Some(timeout_ms);
        self
    }
}
