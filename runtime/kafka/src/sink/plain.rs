//! Writing without transactions: `at-least-once` waits at each barrier until every row before
//! it is acknowledged, so a restore loses nothing; `none` does not wait.

use krafka::Kafka;
use krafka::producer::Producer;
use spate_api::{OperatorError, Result};

use super::sent::Sent;
use crate::record::Message;

pub struct Plain {
    producer: Producer,
    topic: String,
    sent: Sent,
    /// `at-least-once`: the barrier waits for the acknowledgements.
    wait_at_barrier: bool,
}

impl Plain {
    pub async fn start(kafka: &Kafka, topic: String, wait_at_barrier: bool) -> Result<Self> {
        let producer = kafka
            .producer()
            .metrics_push(false)
            .build()
            .await
            .map_err(|e| {
                OperatorError::invalid(format!("Kafka sink of topic '{topic}': a producer: {e}"))
            })?;
        Ok(Plain {
            producer,
            topic,
            sent: Sent::default(),
            wait_at_barrier,
        })
    }

    pub async fn write(&mut self, messages: Vec<Message>) -> Result<()> {
        for message in messages {
            let record = message.record(&self.topic);
            let handle = self.producer.enqueue(record).await.map_err(|e| {
                OperatorError::invalid(format!("writing to Kafka topic '{}': {e}", self.topic))
            })?;
            self.sent.push(handle, &self.topic).await?;
        }
        Ok(())
    }

    pub async fn barrier(&mut self) -> Result<()> {
        if self.wait_at_barrier {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what is buffered and waits for every outcome.
    pub async fn flush(&mut self) -> Result<()> {
        self.producer.flush().await.map_err(|e| {
            OperatorError::invalid(format!("flushing to Kafka topic '{}': {e}", self.topic))
        })?;
        self.sent.acknowledged(&self.topic).await
    }
}
