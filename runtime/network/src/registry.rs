use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::{NetworkError, Result};
use crate::queue::QueueReceiver;

/// Names one subpartition: the queue from producer subtask `subtask` of `vertex`, on output
/// `edge`, towards consumer subtask `subpartition`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubpartitionId {
    pub job_id: String,
    pub vertex: u32,
    pub subtask: u32,
    pub attempt: u32,
    pub edge: u32,
    pub subpartition: u32,
}

impl fmt::Display for SubpartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}/{}",
            self.job_id, self.vertex, self.subtask, self.attempt, self.edge, self.subpartition
        )
    }
}

impl SubpartitionId {
    /// Whether the subpartition is output of subtask `subtask` of `vertex` in job `job_id`, in
    /// any attempt.
    pub fn of_subtask(&self, job_id: &str, vertex: u32, subtask: u32) -> bool {
        self.job_id == job_id && self.vertex == vertex && self.subtask == subtask
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.rsplitn(6, '/');
        let subpartition = parts.next()?.parse().ok()?;
        let edge = parts.next()?.parse().ok()?;
        let attempt = parts.next()?.parse().ok()?;
        let subtask = parts.next()?.parse().ok()?;
        let vertex = parts.next()?.parse().ok()?;
        let job_id = parts.next()?.to_string();
        Some(SubpartitionId {
            job_id,
            vertex,
            subtask,
            attempt,
            edge,
            subpartition,
        })
    }
}

/// The subpartitions produced on this worker, waiting for their consumer (a local task or a
/// remote channel) to take them. Consumers may ask before the producer is deployed.
#[derive(Default)]
pub struct PartitionRegistry {
    ready: Mutex<HashMap<SubpartitionId, QueueReceiver>>,
    registered: Notify,
}

impl PartitionRegistry {
    pub fn register(&self, id: SubpartitionId, receiver: QueueReceiver) {
        self.ready
            .lock()
            .expect("registry lock")
            .insert(id, receiver);
        self.registered.notify_waiters();
    }

    /// Takes the subpartition, waiting up to `timeout` for its producer to register it.
    pub async fn take(&self, id: &SubpartitionId, timeout: Duration) -> Result<QueueReceiver> {
        let wait = async {
            loop {
                let registered = self.registered.notified();
                tokio::pin!(registered);
                registered.as_mut().enable();
                if let Some(rx) = self.ready.lock().expect("registry lock").remove(id) {
                    return rx;
                }
                registered.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| NetworkError::NotRegistered(id.to_string()))
    }

    /// Drops the subpartitions `which` picks that no consumer took: those of a producer
    /// attempt that failed or was canceled (its consumers restart with it and read a new
    /// attempt), or of attempts a redeployment replaced. Their queues go, with what they hold.
    pub fn release(&self, which: impl Fn(&SubpartitionId) -> bool) -> usize {
        let mut ready = self.ready.lock().expect("registry lock");
        let before = ready.len();
        ready.retain(|id, _| !which(id));
        before - ready.len()
    }

    /// The subpartitions waiting for a consumer, in no order.
    pub fn registered(&self) -> Vec<SubpartitionId> {
        let ready = self.ready.lock().expect("registry lock");
        ready.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gauge::BufferGauge;
    use std::sync::Arc;

    fn id(sub: u32) -> SubpartitionId {
        SubpartitionId {
            job_id: "job-a/b".into(),
            vertex: 1,
            subtask: 2,
            attempt: 0,
            edge: 3,
            subpartition: sub,
        }
    }

    #[test]
    fn ids_round_trip_through_text() {
        assert_eq!(SubpartitionId::parse(&id(4).to_string()), Some(id(4)));
        assert_eq!(SubpartitionId::parse("nonsense"), None);
    }

    #[tokio::test]
    async fn a_consumer_may_ask_before_the_producer_registers() {
        let registry = Arc::new(PartitionRegistry::default());
        let waiting = {
            let registry = registry.clone();
            tokio::spawn(async move { registry.take(&id(0), Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        let (_tx, rx) = crate::queue::queue(1, Arc::new(BufferGauge::default()));
        registry.register(id(0), rx);
        assert!(waiting.await.unwrap().is_ok());
        let err = registry
            .take(&id(1), Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("job-a/b/1/2/0/3/1"), "{err}");
    }

    #[test]
    fn releases_only_what_it_is_asked_to() {
        let registry = PartitionRegistry::default();
        for (attempt, sub) in [(0, 0), (0, 1), (1, 0)] {
            let (_tx, rx) = crate::queue::queue(1, Arc::new(BufferGauge::default()));
            registry.register(SubpartitionId { attempt, ..id(sub) }, rx);
        }
        let released = registry.release(|p| p.of_subtask("job-a/b", 1, 2) && p.attempt < 1);
        assert_eq!(released, 2);
        assert_eq!(
            registry.registered(),
            vec![SubpartitionId {
                attempt: 1,
                ..id(0)
            }]
        );
        assert_eq!(registry.release(|p| p.of_subtask("job-a/b", 1, 3)), 0);
    }
}
