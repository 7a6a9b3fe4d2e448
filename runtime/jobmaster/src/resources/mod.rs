//! Where the JobMaster's workers come from. The JobMaster says how many slots the job needs and
//! which workers it gave up on; a resource manager starts, replaces and stops worker processes
//! accordingly (local child processes here; Kubernetes pods in the operator).

mod local;

use std::fmt;
use std::sync::Arc;

pub use local::{LocalProcesses, LocalSettings};

/// Starts and stops workers for the JobMaster.
pub trait ResourceManager: Send {
    /// Workers offering `slots` slots in all should run: start what is missing, counting
    /// workers that are starting and have not registered yet.
    fn require_slots(&mut self, slots: u32, jobmaster: &str);

    /// Workers that ended on their own since the last call (a crash, a kill): lost at once,
    /// without waiting for their heartbeats to stop.
    fn exited(&mut self) -> Vec<String>;

    /// The JobMaster gave up on `worker` (silent, unreachable): make sure it is gone.
    fn release(&mut self, worker: &str);
}

/// Workers are started by someone else (`spate worker`, the embedded cluster, an orchestrator)
/// and register on their own; the JobMaster only uses what registers (Flink's standalone mode).
pub struct Standalone;

impl ResourceManager for Standalone {
    fn require_slots(&mut self, _slots: u32, _jobmaster: &str) {}

    fn exited(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn release(&mut self, _worker: &str) {}
}

/// Builds a resource manager for a job id; for resource managers that live outside this crate
/// (Kubernetes pods).
pub type ResourceManagerFactory = Arc<dyn Fn(&str) -> Box<dyn ResourceManager> + Send + Sync>;

/// How the JobMaster gets workers (`spate jobmaster --resource-manager`).
#[derive(Clone)]
pub enum ResourceSettings {
    Standalone,
    /// Worker processes as children of the JobMaster.
    Local(LocalSettings),
    External {
        name: String,
        build: ResourceManagerFactory,
    },
}

impl fmt::Debug for ResourceSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceSettings::Standalone => f.write_str("Standalone"),
            ResourceSettings::Local(settings) => f.debug_tuple("Local").field(settings).finish(),
            ResourceSettings::External { name, .. } => write!(f, "External({name})"),
        }
    }
}

impl ResourceSettings {
    pub fn build(&self, job_id: &str) -> Box<dyn ResourceManager> {
        match self {
            ResourceSettings::Standalone => Box::new(Standalone),
            ResourceSettings::Local(settings) => Box::new(LocalProcesses::new(settings, job_id)),
            ResourceSettings::External { build, .. } => build(job_id),
        }
    }
}
