//! The per-job JobMaster: builds the job graph, waits for workers to offer enough slots, places
//! subtask i of every vertex into slot i (slot sharing), deploys, tracks task and worker state,
//! and ends the job: FINISHED when every task finished, FAILED with the cause otherwise.

mod checkpoint;
mod config;
mod driver;
mod placement;
mod service;
mod state;
mod workers;

pub use checkpoint::{CheckpointSettings, RestartSettings};
pub use config::JobMasterConfig;
pub use driver::run;
