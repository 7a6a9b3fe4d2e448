use arrow_array::RecordBatch;
use spate_api::StreamElement;
use spate_network::{Partitioner, QueueSender};

use crate::error::TaskError;
use crate::metrics::TaskMetrics;

/// One output edge of a task: a partitioner and the subpartition queues, one per consumer.
pub struct OutputWriter {
    partitioner: Partitioner,
    subpartitions: Vec<QueueSender>,
}

impl OutputWriter {
    pub fn new(partitioner: Partitioner, subpartitions: Vec<QueueSender>) -> Self {
        OutputWriter {
            partitioner,
            subpartitions,
        }
    }

    pub async fn write_batch(
        &mut self,
        batch: RecordBatch,
        metrics: &TaskMetrics,
    ) -> Result<(), TaskError> {
        for (target, part) in self.partitioner.route(batch, self.subpartitions.len())? {
            let rows = part.num_rows();
            self.subpartitions[target]
                .send(StreamElement::Batch(part))
                .await
                .map_err(|_| TaskError::ConsumerGone(target))?;
            metrics.output(rows);
        }
        Ok(())
    }

    /// Events (watermarks, idleness, end) go to every consumer.
    pub async fn broadcast(&mut self, element: &StreamElement) -> Result<(), TaskError> {
        for (target, queue) in self.subpartitions.iter().enumerate() {
            queue
                .send(element.clone())
                .await
                .map_err(|_| TaskError::ConsumerGone(target))?;
        }
        Ok(())
    }
}
