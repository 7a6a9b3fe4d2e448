use arrow_array::RecordBatch;

use crate::time::Timestamp;

/// What travels on a stream: data, event-time progress and end of input, in order.
#[derive(Debug, Clone)]
pub enum StreamElement {
    Batch(RecordBatch),
    /// No record with an event time at or below this one will follow on this stream.
    Watermark(Timestamp),
    /// The stream went idle (`true`) or active again (`false`). Idle streams do not hold back the
    /// combined watermark of a task with several inputs.
    Idle(bool),
    /// The producer finished; nothing follows.
    End,
}

impl StreamElement {
    pub fn is_batch(&self) -> bool {
        matches!(self, StreamElement::Batch(_))
    }
}
