//! Failure injection for tests and benchmarks of recovery: the first attempt(s) of one subtask
//! fail once they have read a number of records, as a task hitting a transient error would, or
//! before they connect their inputs, as a task whose deployment fails half-way would; or the
//! worker process dies (SIGKILL) when the subtask is told a checkpoint completed, before the
//! subtask hears of it: the crash between a checkpoint's completion and a sink's commit.

use std::sync::Arc;
use std::time::Duration;

use spate_proto::v1::TaskId;
use spate_task::TaskMetrics;

const CHECK_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// Once the task has read this many records.
    AfterRecords(u64),
    /// Before the task takes its input channels, so its producers' output for it is never
    /// consumed.
    BeforeInputs,
    /// The worker process kills itself when the first completed checkpoint's notice for the
    /// task arrives.
    OnNotice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFailure {
    pub vertex: u32,
    pub subtask: u32,
    pub strike: Strike,
    /// Attempts 0 to `attempts - 1` fail; later ones run on.
    pub attempts: u32,
}

impl InjectedFailure {
    /// `VERTEX/SUBTASK/RECORDS[/ATTEMPTS]`, as `--inject-failure` takes it: RECORDS is a count,
    /// `connect` to fail before connecting the inputs, or `notice` to kill the worker at the
    /// first completion notice; ATTEMPTS (default 1) how many first attempts fail.
    pub fn parse(text: &str) -> Result<Self, String> {
        const FORM: &str =
            "want VERTEX/SUBTASK/RECORDS[/ATTEMPTS], RECORDS a count, 'connect' or 'notice'";
        let parts: Vec<&str> = text.split('/').collect();
        let (vertex, subtask, records, attempts) = match parts[..] {
            [v, s, r] => (v, s, r, "1"),
            [v, s, r, a] => (v, s, r, a),
            _ => return Err(format!("'{text}': {FORM}")),
        };
        let number = |name: &str, part: &str| {
            part.parse::<u32>()
                .map_err(|e| format!("'{text}': {name} '{part}': {e} ({FORM})"))
        };
        let strike = match records {
            "connect" => Strike::BeforeInputs,
            "notice" => Strike::OnNotice,
            count => Strike::AfterRecords(
                count
                    .parse()
                    .map_err(|e| format!("'{text}': records '{count}': {e} ({FORM})"))?,
            ),
        };
        Ok(InjectedFailure {
            vertex: number("vertex", vertex)?,
            subtask: number("subtask", subtask)?,
            strike,
            attempts: number("attempts", attempts)?,
        })
    }

    /// Only the first `attempts` attempts fail, so a restarted task runs on eventually.
    pub fn hits(&self, task: &TaskId) -> bool {
        task.attempt < self.attempts && task.vertex == self.vertex && task.subtask == self.subtask
    }

    pub fn before_inputs(&self) -> bool {
        self.strike == Strike::BeforeInputs
    }

    pub fn on_notice(&self) -> bool {
        self.strike == Strike::OnNotice
    }

    /// Kills this process as `kill -9` would: no handler runs, nothing is flushed or closed.
    pub fn crash(&self, checkpoint_id: u64) -> ! {
        tracing::error!(
            vertex = self.vertex,
            subtask = self.subtask,
            checkpoint_id,
            "injected crash on a checkpoint's completion notice"
        );
        // SAFETY: kill(2) with this process's own id; SIGKILL cannot be caught, so it does
        // not return.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        unreachable!("SIGKILL ended the process")
    }

    /// Resolves with the failure once the task has read enough records (at once when the
    /// failure strikes before the inputs; never when it strikes at a notice).
    pub async fn strike(self, metrics: Arc<TaskMetrics>) -> String {
        match self.strike {
            Strike::OnNotice => std::future::pending().await,
            Strike::BeforeInputs => format!(
                "injected failure of vertex {} subtask {} before connecting its inputs",
                self.vertex, self.subtask
            ),
            Strike::AfterRecords(records) => {
                while TaskMetrics::get(&metrics.records_in) < records {
                    tokio::time::sleep(CHECK_EVERY).await;
                }
                format!(
                    "injected failure of vertex {} subtask {} after {records} records",
                    self.vertex, self.subtask
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(attempt: u32) -> TaskId {
        TaskId {
            job_id: "j".into(),
            vertex: 0,
            subtask: 1,
            attempt,
        }
    }

    #[test]
    fn parses_and_hits_only_the_first_attempt() {
        let failure = InjectedFailure::parse("0/1/500").unwrap();
        assert_eq!(failure.strike, Strike::AfterRecords(500));
        assert!(failure.hits(&task(0)));
        assert!(!failure.hits(&task(1)));
        assert!(InjectedFailure::parse("0/1").is_err());
        assert!(InjectedFailure::parse("a/1/2").is_err());
        assert!(InjectedFailure::parse("0/1/2/3/4").is_err());
    }

    #[test]
    fn fails_several_attempts_before_their_inputs() {
        let failure = InjectedFailure::parse("0/1/connect/3").unwrap();
        assert!(failure.before_inputs());
        assert!(failure.hits(&task(2)));
        assert!(!failure.hits(&task(3)));
        assert!(InjectedFailure::parse("1/0/notice").unwrap().on_notice());
        let err = InjectedFailure::parse("0/1/connect/x").unwrap_err();
        assert!(err.contains("attempts 'x'"), "{err}");
    }
}
