//! The per-job JobMaster: builds the job graph, waits for workers to offer enough slots, places
//! subtask i of every vertex into slot i (slot sharing), deploys, tracks task and worker state,
//! restarts the pipelined regions of failed tasks (in their previous slots when their worker
//! lives), and ends the job: FINISHED when every task finished, FAILED with the cause otherwise.

mod adopt;
mod cancel;
mod checkpoint;
mod clients;
mod config;
mod events;
mod failover;
mod owner;
mod phases;
mod placement;
mod record;
mod resources;
mod run;
mod service;
mod throughput;
mod workers;

pub use checkpoint::CheckpointSettings;
pub use config::JobMasterConfig;
pub use failover::{FailoverScope, RestartStrategy};
pub use resources::{LocalSettings, ResourceManager, ResourceManagerFactory, ResourceSettings};
pub use run::run;
