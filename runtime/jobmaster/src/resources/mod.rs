//! Where the JobMaster's workers come from. The JobMaster says how many slots the job needs and
//! which workers it gave up on; a resource manager starts, replaces and stops worker processes
//! accordingly (local child processes here; Kubernetes pods in the operator).

mod local;

use std::path::PathBuf;

pub use local::LocalProcesses;

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

/// How the JobMaster gets workers (`spate jobmaster --resource-manager`).
#[derive(Debug, Clone)]
pub enum ResourceSettings {
    Standalone,
    /// Worker processes of `binary`, `slots` slots each, as children of the JobMaster, with
    /// their state under `state_root/<worker>` and logs under `log_dir`.
    Local {
        binary: PathBuf,
        slots: u32,
        state_root: PathBuf,
        log_dir: PathBuf,
    },
}

impl ResourceSettings {
    pub fn build(&self, job_id: &str) -> Box<dyn ResourceManager> {
        match self {
            ResourceSettings::Standalone => Box::new(Standalone),
            ResourceSettings::Local {
                binary,
                slots,
                state_root,
                log_dir,
            } => Box::new(LocalProcesses::new(
                binary.clone(),
                *slots,
                state_root.join(job_id),
                log_dir.clone(),
            )),
        }
    }
}
