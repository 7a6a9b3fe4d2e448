//! Checkpointing on the JobMaster's side: settings, the coordinator, and restore assignment.

mod coordinator;
mod restore;
mod settings;

pub use coordinator::{CheckpointTasks, Coordinator, Round, SavepointRequest, TaskRef, resolve};
pub use restore::{check_compatible, task_restore};
pub use settings::CheckpointSettings;

#[cfg(test)]
mod tests;
