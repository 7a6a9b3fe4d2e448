//! The embedded cluster: one JobMaster and N workers as real child processes of the `spate`
//! binary on this machine, talking over loopback sockets exactly as they would across machines.
//! Children die with their parent (PR_SET_PDEATHSIG, on Linux) and are killed on drop, so none is
//! orphaned.

mod process;
mod spec;
mod workers;

pub use process::{ClusterError, ClusterOutcome, LocalCluster, log_tail};
pub use spec::{CheckpointSpec, ClusterSpec};
pub use workers::{WorkerExit, WorkerOptions, WorkerPool};
