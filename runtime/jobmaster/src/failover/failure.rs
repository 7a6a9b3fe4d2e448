//! Why a job fails, as typed causes: each says whether restarting can help, and is shown to
//! the user (the job status, the logs) in words that name the task, worker or checkpoint.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use spate_graph::SubtaskRef;

/// One thing that went wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureCause {
    /// A task reported that it failed; `task` describes it (operator name and subtask).
    TaskFailed {
        task: String,
        worker: String,
        message: String,
    },
    /// A worker is gone; its tasks with it.
    WorkerLost { worker: String, why: WorkerLoss },
    /// A worker did not take a deployment (gone, busy, refusing).
    DeployFailed {
        task: SubtaskRef,
        worker: String,
        message: String,
    },
    /// The snapshot a task restores is corrupt (its worker answered DATA_LOSS).
    SnapshotUnrestorable {
        task: SubtaskRef,
        worker: String,
        message: String,
    },
    /// More checkpoints failed in a row than the job tolerates.
    CheckpointsFailing { consecutive: u32, tolerable: u32 },
    /// Workers did not offer the slots the job needs in time.
    NotEnoughSlots {
        needed: usize,
        offered: usize,
        waited: Duration,
    },
}

/// How the JobMaster found a worker gone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WorkerLoss {
    /// Its resource manager saw the process end.
    Exited,
    /// It sent no heartbeat for this long.
    NoHeartbeat(Duration),
    /// Its control port refuses connections.
    Unreachable,
}

impl FailureCause {
    /// Why restarting cannot help, for a cause that a restart would only meet again.
    pub fn permanent(&self) -> Option<&'static str> {
        match self {
            FailureCause::SnapshotUnrestorable { .. } => {
                Some("restoring the same snapshot again cannot succeed")
            }
            FailureCause::NotEnoughSlots { .. } => Some("the job cannot be placed"),
            _ => None,
        }
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::TaskFailed {
                task,
                worker,
                message,
            } => write!(f, "task {task} on {worker} failed: {message}"),
            FailureCause::WorkerLost { worker, why } => match why {
                WorkerLoss::Exited => write!(f, "worker {worker} exited (its process ended)"),
                WorkerLoss::NoHeartbeat(silent) => write!(
                    f,
                    "worker {worker} lost: no heartbeat for {:.1}s",
                    silent.as_secs_f64()
                ),
                WorkerLoss::Unreachable => write!(
                    f,
                    "worker {worker} is gone (its control port refuses connections)"
                ),
            },
            FailureCause::DeployFailed {
                task: (vertex, subtask),
                worker,
                message,
            }
            | FailureCause::SnapshotUnrestorable {
                task: (vertex, subtask),
                worker,
                message,
            } => write!(
                f,
                "deploying vertex {vertex} subtask {subtask} to {worker}: {message}"
            ),
            FailureCause::CheckpointsFailing {
                consecutive,
                tolerable,
            } => write!(
                f,
                "{consecutive} consecutive checkpoints failed (tolerable: {tolerable})"
            ),
            FailureCause::NotEnoughSlots {
                needed,
                offered,
                waited,
            } => write!(
                f,
                "not enough slots: the job needs {needed}, workers offered {offered} within \
                 {waited:?}"
            ),
        }
    }
}

/// A failure seen by the JobMaster: its causes, first the one that explains the others (a lost
/// worker before the task failures it caused), and the subtasks it hit directly (a failed
/// task, the tasks of a lost worker; every task when the cause is job-wide).
#[derive(Debug, Clone)]
pub struct Failure {
    pub causes: Vec<FailureCause>,
    pub tasks: BTreeSet<SubtaskRef>,
}

impl Failure {
    pub fn new(cause: FailureCause, tasks: BTreeSet<SubtaskRef>) -> Self {
        Failure {
            causes: vec![cause],
            tasks,
        }
    }

    /// Why restarting cannot help, if one of the causes says so.
    pub fn permanent(&self) -> Option<&'static str> {
        self.causes.iter().find_map(FailureCause::permanent)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cause) in self.causes.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{cause}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_snapshot_is_permanent_and_a_lost_worker_is_not() {
        let lost = FailureCause::WorkerLost {
            worker: "worker-1".into(),
            why: WorkerLoss::NoHeartbeat(Duration::from_millis(5200)),
        };
        let task = FailureCause::TaskFailed {
            task: "'window' subtask 1/2".into(),
            worker: "worker-1".into(),
            message: "input channel closed".into(),
        };
        let failure = Failure {
            causes: vec![lost, task],
            tasks: BTreeSet::from([(1, 0)]),
        };
        assert_eq!(failure.permanent(), None);
        assert_eq!(
            failure.to_string(),
            "worker worker-1 lost: no heartbeat for 5.2s; task 'window' subtask 1/2 on worker-1 \
             failed: input channel closed"
        );
        let corrupt = Failure::new(
            FailureCause::SnapshotUnrestorable {
                task: (0, 1),
                worker: "w".into(),
                message: "corrupt file 7.sst".into(),
            },
            BTreeSet::new(),
        );
        assert!(corrupt.permanent().unwrap().contains("same snapshot"));
        assert!(corrupt.to_string().contains("corrupt file 7.sst"));
    }
}
