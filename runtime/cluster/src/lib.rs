//! The embedded cluster: one JobMaster as a real child process of the `spate` binary on this
//! machine, whose local resource manager starts the workers, talking over loopback sockets
//! exactly as they would across machines. The JobMaster dies with its parent (PR_SET_PDEATHSIG,
//! on Linux) and is killed on drop; the workers outlive a dead JobMaster for the next one to
//! adopt, and the cluster, their subreaper, waits for them.

mod ledger;
mod output;
mod process;
mod reaper;
mod spec;
mod workers;

pub use process::{ClusterError, ClusterOutcome, LocalCluster, log_tail};
pub use spec::{CheckpointSpec, ClusterSpec};
pub use workers::{WorkerOptions, WorkerPool};
