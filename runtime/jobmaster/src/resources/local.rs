//! Worker processes on this machine, started and replaced by the JobMaster: the same pool of
//! worker processes the embedded cluster keeps (`spate_cluster::WorkerPool`).

use std::path::PathBuf;

use spate_cluster::{WorkerOptions, WorkerPool};
use tracing::warn;

use super::ResourceManager;

pub struct LocalProcesses {
    pool: WorkerPool,
}

impl LocalProcesses {
    pub fn new(
        binary: PathBuf,
        slots_per_worker: u32,
        state_root: PathBuf,
        log_dir: PathBuf,
    ) -> Self {
        // Not tied to the JobMaster's life: when it dies, the workers keep their tasks for a
        // new JobMaster to adopt, and exit on their own if none comes.
        let pool = WorkerPool::new(WorkerOptions {
            binary,
            slots_per_worker,
            state_root,
            log_dir,
            args: Vec::new(),
            env: Vec::new(),
            forward_stdout: false,
            die_with_parent: false,
        });
        LocalProcesses { pool }
    }
}

impl ResourceManager for LocalProcesses {
    fn require_slots(&mut self, slots: u32, jobmaster: &str) {
        let wanted = slots.div_ceil(self.pool.slots_per_worker()) as usize;
        if let Err(e) = self.pool.ensure(wanted, jobmaster) {
            warn!(error = %e, "cannot start a worker process");
        }
    }

    fn exited(&mut self) -> Vec<String> {
        self.pool.reap().into_iter().map(|exit| exit.id).collect()
    }

    fn release(&mut self, worker: &str) {
        if let Some(index) = self.pool.index_of(worker) {
            self.pool.stop(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_workers_for_the_slots_and_notices_when_one_exits() {
        let dir = tempfile::tempdir().unwrap();
        // `true` stands in for the binary: it exits at once, as a crashing worker would.
        let mut local = LocalProcesses::new(
            PathBuf::from("true"),
            2,
            dir.path().join("state"),
            dir.path().join("logs"),
        );
        local.require_slots(3, "127.0.0.1:1");
        assert_eq!(
            local.pool.running_ids(),
            ["worker-0", "worker-1"],
            "two workers of two slots for three slots"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut gone = Vec::new();
        while gone.len() < 2 && std::time::Instant::now() < deadline {
            gone.extend(local.exited());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        gone.sort();
        assert_eq!(gone, ["worker-0", "worker-1"]);
        local.require_slots(3, "127.0.0.1:1");
        assert_eq!(
            local.pool.running_ids(),
            ["worker-0.1", "worker-1.1"],
            "replacements take the places of the dead, with new ids"
        );
    }
}
