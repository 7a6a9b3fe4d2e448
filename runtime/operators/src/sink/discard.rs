use arrow_array::RecordBatch;
use spate_api::{Operator, Output, Result};

/// Drops everything: the end of benchmark pipelines.
#[derive(Default)]
pub struct DiscardSink;

impl Operator for DiscardSink {
    fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Output) -> Result<()> {
        Ok(())
    }
}
