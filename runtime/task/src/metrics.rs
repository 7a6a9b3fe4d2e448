use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use spate_api::MIN_WATERMARK;

/// A task's counters, written by its thread and read by the worker's heartbeat.
#[derive(Debug)]
pub struct TaskMetrics {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub batches_in: AtomicU64,
    pub batches_out: AtomicU64,
    pub watermark: AtomicI64,
    pub late_records_dropped: AtomicU64,
    /// State bytes this attempt restored from checkpoint storage, and from a local copy.
    pub restored_bytes_downloaded: AtomicU64,
    pub restored_bytes_local: AtomicU64,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        TaskMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            batches_out: AtomicU64::new(0),
            watermark: AtomicI64::new(MIN_WATERMARK),
            late_records_dropped: AtomicU64::new(0),
            restored_bytes_downloaded: AtomicU64::new(0),
            restored_bytes_local: AtomicU64::new(0),
        }
    }
}

impl TaskMetrics {
    pub(crate) fn input(&self, rows: usize) {
        self.records_in.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn output(&self, rows: usize) {
        self.records_out.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_out.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
