//! What passes between a task and the worker around checkpoints: commands in, snapshots out.
//! Uploading a snapshot and acknowledging it to the JobMaster is the worker's job, so the task
//! thread only pays for the synchronous part.

use std::time::Duration;

use spate_api::{CheckpointBarrier, OperatorSnapshot};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskCommand {
    /// For source tasks: snapshot the read positions and inject this barrier.
    Trigger(CheckpointBarrier),
    /// The checkpoint is durable; operators may commit what they pre-committed up to it.
    Complete(u64),
}

#[derive(Debug)]
pub struct TaskSnapshot {
    /// `None` for the final snapshot a task takes when its input ended: it carries only
    /// non-keyed entries (what sinks still have to commit), as keyed state can no longer matter.
    pub barrier: Option<CheckpointBarrier>,
    /// By operator id, in chain order (the source first).
    pub operators: Vec<(String, OperatorSnapshot)>,
    /// Time the task thread spent on the snapshot.
    pub sync_duration: Duration,
}

/// A task's end of the checkpoint plumbing.
pub struct Checkpointing {
    pub commands: mpsc::UnboundedReceiver<TaskCommand>,
    pub snapshots: mpsc::UnboundedSender<TaskSnapshot>,
}

impl Checkpointing {
    /// The next command; pends forever when the worker dropped its sender.
    pub(crate) async fn next(checkpointing: &mut Option<Checkpointing>) -> TaskCommand {
        match checkpointing {
            Some(c) => match c.commands.recv().await {
                Some(command) => command,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}
