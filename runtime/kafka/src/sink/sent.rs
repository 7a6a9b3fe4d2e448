//! The sink's records on their way to the brokers, until each is acknowledged or failed.

use std::collections::VecDeque;

use krafka::producer::DeliveryHandle;
use spate_api::{OperatorError, Result};

/// Outcomes held at most before the oldest are awaited: a bound on the memory they take
/// between two checkpoints (the wait is back-pressure: the brokers are slower than the rows).
const HELD: usize = 1 << 16;

#[derive(Default)]
pub struct Sent {
    handles: VecDeque<DeliveryHandle>,
}

impl Sent {
    pub async fn push(&mut self, handle: DeliveryHandle, topic: &str) -> Result<()> {
        self.handles.push_back(handle);
        if self.handles.len() > HELD {
            self.await_oldest(HELD / 2, topic).await?;
        }
        Ok(())
    }

    /// Waits until every record sent so far is acknowledged; the first failure, by topic and
    /// partition.
    pub async fn acknowledged(&mut self, topic: &str) -> Result<()> {
        self.await_oldest(self.handles.len(), topic).await
    }

    async fn await_oldest(&mut self, count: usize, topic: &str) -> Result<()> {
        for handle in self.handles.drain(..count.min(self.handles.len())) {
            let partition = handle.partition();
            let failed = |why: String| {
                OperatorError::invalid(format!(
                    "writing to Kafka topic '{topic}' partition {partition}: {why}"
                ))
            };
            let written = handle.await.map_err(|e| failed(e.to_string()))?;
            if !written.is_persisted() {
                return Err(failed(format!("not acknowledged ({:?})", written.delivery)));
            }
        }
        Ok(())
    }
}
