use arrow_array::RecordBatch;

use crate::context::OperatorContext;
use crate::element::StreamElement;
use crate::error::Result;
use crate::state::OperatorSnapshot;
use crate::time::Timestamp;

/// Collects what an operator emits for one input element. The task hands it to the next
/// operator of the chain or to the outputs, so operators stay synchronous and simple.
#[derive(Debug, Default)]
pub struct Output {
    elements: Vec<StreamElement>,
}

impl Output {
    /// Emits a batch; empty batches are dropped here so no operator has to check.
    pub fn batch(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.elements.push(StreamElement::Batch(batch));
        }
    }

    pub fn watermark(&mut self, watermark: Timestamp) {
        self.elements.push(StreamElement::Watermark(watermark));
    }

    pub fn drain(&mut self) -> std::vec::Drain<'_, StreamElement> {
        self.elements.drain(..)
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }
}

/// Counters an operator keeps beyond records in and out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// Records dropped because they arrived after the watermark had passed their windows.
    pub late_records_dropped: u64,
}

/// A stream operator working on Arrow record batches.
///
/// Calls come from one task thread, in stream order. Watermarks reach an operator only once they
/// have advanced on all of the task's inputs.
///
/// An operator with several logical inputs (Flink's two-input and multiple-input operators: a
/// co-process function, a join) is told which input each batch came from and when each input
/// ended; a single-input operator (and every operator chained after another) sees input 0 only
/// and can ignore the index.
pub trait Operator: Send {
    fn open(&mut self, _ctx: &OperatorContext) -> Result<()> {
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()>;

    /// A batch from logical input `input`. Multi-input operators override this; the default is
    /// `process_batch`, for operators with one input.
    fn process_batch_from(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Output,
    ) -> Result<()> {
        let _ = input;
        self.process_batch(batch, out)
    }

    /// Input `input`'s own watermark advanced (the least of its channels', idle ones left out).
    /// For operators that track their inputs apart (a join's per-side cleanup); event time
    /// itself advances through `process_watermark`, with the least over all inputs.
    fn process_input_watermark(
        &mut self,
        _input: usize,
        _watermark: Timestamp,
        _out: &mut Output,
    ) -> Result<()> {
        Ok(())
    }

    /// Every channel of input `input` ended (Flink's `BoundedMultiInput::endInput`). Only the
    /// first operator of a task hears this; `finish` follows once all inputs ended.
    fn end_input(&mut self, _input: usize, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// Event time has advanced to `watermark`. Operators holding event-time state fire what is
    /// due and then forward the watermark; the default just forwards it.
    fn process_watermark(&mut self, watermark: Timestamp, out: &mut Output) -> Result<()> {
        out.watermark(watermark);
        Ok(())
    }

    /// The earliest processing time at which the operator wants `on_processing_time`.
    fn next_processing_timer(&self) -> Option<Timestamp> {
        None
    }

    fn on_processing_time(&mut self, _now: Timestamp, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// The input ended. The final watermark has already been processed, so event-time state is
    /// flushed; sinks make their output durable here.
    fn finish(&mut self, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics::default()
    }

    /// The synchronous part of checkpoint `checkpoint_id`: the barrier has reached this operator,
    /// everything before it is processed. Stateful operators write their state (keyed state to
    /// local files) and return it; uploading happens afterwards, off the task thread.
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorSnapshot> {
        Ok(OperatorSnapshot::default())
    }

    /// Checkpoint `checkpoint_id` is durable: sinks commit what they pre-committed up to it.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<()> {
        Ok(())
    }
}

/// Creates one operator instance per parallel subtask.
pub trait OperatorFactory: Send + Sync {
    fn create(&self, ctx: &OperatorContext) -> Result<Box<dyn Operator>>;
}

impl<F> OperatorFactory for F
where
    F: Fn(&OperatorContext) -> Result<Box<dyn Operator>> + Send + Sync,
{
    fn create(&self, ctx: &OperatorContext) -> Result<Box<dyn Operator>> {
        self(ctx)
    }
}
