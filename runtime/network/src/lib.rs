//! The data exchange between tasks.
//!
//! A producer subtask writes each output edge into one bounded queue per consumer subtask (a
//! subpartition). A consumer on the same worker reads that queue directly: batches are handed over
//! without serialization. A consumer on another worker reads it through a TCP connection between
//! the two workers, which carries many logical channels; on each channel the receiver grants
//! credits and the sender sends one element per credit, so a slow consumer holds back only its
//! own channel, and buffered data stays bounded (Flink's credit-based flow control).

mod codec;
mod error;
mod frame;
mod gate;
mod gauge;
mod partitioner;
mod queue;
mod registry;
mod remote;
mod server;

use std::sync::Arc;

pub use error::{NetworkError, Result};
pub use gate::{ChannelRef, InputChannel, InputGate, InputGates};
pub use gauge::BufferGauge;
pub use partitioner::Partitioner;
pub use queue::{QueueReceiver, QueueSender, queue};
pub use registry::{PartitionRegistry, SubpartitionId};
pub use remote::ConnectionManager;
pub use server::DataServer;

/// Sizes of the exchange's buffers. Together they bound how much data a channel holds.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeConfig {
    /// Elements (batches and events) a subpartition queue holds before the producer waits.
    pub queue_capacity: usize,
    /// Credits a remote input channel grants: elements in flight or waiting at the receiver.
    pub credits_per_channel: u32,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            queue_capacity: 4,
            credits_per_channel: 2,
        }
    }
}

impl ExchangeConfig {
    /// The most batches one logical channel can hold: its queue, its credits, and the one the
    /// remote sender has taken from the queue while it waits for a credit.
    pub fn max_batches_per_channel(&self) -> usize {
        self.queue_capacity + self.credits_per_channel as usize + 1
    }
}

/// A worker's side of the exchange: its partitions, its connections and its buffer gauge.
#[derive(Clone)]
pub struct Exchange {
    pub config: ExchangeConfig,
    pub registry: Arc<PartitionRegistry>,
    pub connections: Arc<ConnectionManager>,
    pub gauge: Arc<BufferGauge>,
}

impl Exchange {
    pub fn new(config: ExchangeConfig) -> Self {
        let gauge = Arc::new(BufferGauge::default());
        Exchange {
            config,
            registry: Arc::new(PartitionRegistry::default()),
            connections: Arc::new(ConnectionManager::new(gauge.clone())),
            gauge,
        }
    }
}
