//! Failure injection for tests and benchmarks of recovery: the first attempt of one subtask
//! fails once it has read a number of records, as a task hitting a transient error would.

use std::sync::Arc;
use std::time::Duration;

use spate_proto::v1::TaskId;
use spate_task::TaskMetrics;

const CHECK_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFailure {
    pub vertex: u32,
    pub subtask: u32,
    pub after_records: u64,
}

impl InjectedFailure {
    /// `VERTEX/SUBTASK/RECORDS`, as `--inject-failure` takes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let numbers: Vec<u64> = text
            .split('/')
            .map(|part| part.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("'{text}': {e} (want VERTEX/SUBTASK/RECORDS)"))?;
        match numbers[..] {
            [vertex, subtask, after_records] => Ok(InjectedFailure {
                vertex: u32::try_from(vertex).map_err(|e| format!("vertex {vertex}: {e}"))?,
                subtask: u32::try_from(subtask).map_err(|e| format!("subtask {subtask}: {e}"))?,
                after_records,
            }),
            _ => Err(format!("'{text}': want VERTEX/SUBTASK/RECORDS")),
        }
    }

    /// Only the first attempt fails, so the restarted task runs on.
    pub fn hits(&self, task: &TaskId) -> bool {
        task.attempt == 0 && task.vertex == self.vertex && task.subtask == self.subtask
    }

    /// Resolves with the failure once the task has read enough records.
    pub async fn strike(self, metrics: Arc<TaskMetrics>) -> String {
        while TaskMetrics::get(&metrics.records_in) < self.after_records {
            tokio::time::sleep(CHECK_EVERY).await;
        }
        format!(
            "injected failure of vertex {} subtask {} after {} records",
            self.vertex, self.subtask, self.after_records
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_hits_only_the_first_attempt() {
        let failure = InjectedFailure::parse("0/1/500").unwrap();
        let mut task = TaskId {
            job_id: "j".into(),
            vertex: 0,
            subtask: 1,
            attempt: 0,
        };
        assert!(failure.hits(&task));
        task.attempt = 1;
        assert!(!failure.hits(&task));
        assert!(InjectedFailure::parse("0/1").is_err());
        assert!(InjectedFailure::parse("a/1/2").is_err());
    }
}
