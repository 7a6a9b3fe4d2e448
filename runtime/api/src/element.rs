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
    /// Everything before belongs to checkpoint `id`, everything after to the next one.
    Barrier(CheckpointBarrier),
    /// The producer finished; nothing follows.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierKind {
    Checkpoint,
    /// Self-contained and kept until the user deletes it.
    Savepoint,
}

/// Injected by sources when the JobMaster triggers a checkpoint, and aligned at tasks with
/// several inputs: a task snapshots its state once the barrier arrived on every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointBarrier {
    pub id: u64,
    pub timestamp: Timestamp,
    pub kind: BarrierKind,
}

impl StreamElement {
    pub fn is_batch(&self) -> bool {
        matches!(self, StreamElement::Batch(_))
    }
}
