use std::time::Duration;

use arrow_array::RecordBatch;
use spate_api::{CancelFlag, Operator, OperatorContext, Output, Result};

/// A deliberately slow sink: it waits after every batch, and can stop taking input altogether
/// after a number of batches, until the task is canceled. It exists to exercise back-pressure.
pub struct ThrottledSink {
    delay: Duration,
    stall_after: Option<u64>,
    batches: u64,
    cancel: CancelFlag,
}

impl ThrottledSink {
    pub fn new(delay: Duration, stall_after: Option<u64>) -> Self {
        ThrottledSink {
            delay,
            stall_after,
            batches: 0,
            cancel: CancelFlag::default(),
        }
    }
}

impl Operator for ThrottledSink {
    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        self.cancel = ctx.cancel.clone();
        Ok(())
    }

    fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Output) -> Result<()> {
        if self.stall_after.is_some_and(|n| self.batches >= n) {
            while !self.cancel.is_canceled() {
                std::thread::sleep(Duration::from_millis(10));
            }
            return Ok(());
        }
        self.batches += 1;
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        Ok(())
    }
}
