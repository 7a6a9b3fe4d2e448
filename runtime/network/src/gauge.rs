use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counts the batches held in a worker's exchange (queues and received, unread channel data),
/// and remembers the highest count. Tests and metrics use it to check that buffering is bounded.
#[derive(Debug, Default)]
pub struct BufferGauge {
    current: AtomicI64,
    max: AtomicU64,
    /// Batches the live output queues can hold in all.
    capacity: AtomicU64,
}

impl BufferGauge {
    pub fn add(&self) {
        let now = self.current.fetch_add(1, Ordering::AcqRel) + 1;
        self.max.fetch_max(now.max(0) as u64, Ordering::AcqRel);
    }

    pub fn remove(&self) {
        self.current.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn current(&self) -> u64 {
        self.current.load(Ordering::Acquire).max(0) as u64
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    pub fn open_queue(&self, capacity: usize) {
        self.capacity.fetch_add(capacity as u64, Ordering::AcqRel);
    }

    pub fn close_queue(&self, capacity: usize) {
        self.capacity.fetch_sub(capacity as u64, Ordering::AcqRel);
    }

    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Acquire)
    }
}
