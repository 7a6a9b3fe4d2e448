//! Worker processes on this machine, started and replaced by the JobMaster: a pool of child
//! processes (`spate_cluster::WorkerPool`) that records each in a ledger, so that a JobMaster
//! replacing this one adopts them.

use std::path::PathBuf;

use spate_cluster::{WorkerOptions, WorkerPool};
use tracing::warn;

use super::ResourceManager;

/// How the local resource manager starts workers (`spate jobmaster --resource-manager local`).
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// The `spate` binary.
    pub binary: PathBuf,
    pub slots_per_worker: u32,
    /// Workers kept running even when the job needs fewer slots (the embedded cluster's
    /// `--workers`).
    pub min_workers: u32,
    /// More `spate worker` arguments.
    pub worker_args: Vec<String>,
    /// Each job's workers keep their state under `<state_root>/<job id>/<worker>`.
    pub state_root: PathBuf,
    /// Workers' logs (`<worker>.log`) and standard output (`<worker>.out`).
    pub log_dir: PathBuf,
    /// Each job's ledger of worker processes is `<ledger_root>/<job id>`.
    pub ledger_root: PathBuf,
}

pub struct LocalProcesses {
    pool: WorkerPool,
    min_workers: usize,
}

impl LocalProcesses {
    /// The workers of job `job_id`; those an earlier JobMaster of the job started and that
    /// still run are adopted.
    pub fn new(settings: &LocalSettings, job_id: &str) -> Self {
        // Not tied to the JobMaster's life: when it dies, the workers keep their tasks for a
        // new JobMaster to adopt, and exit on their own if none comes.
        let pool = WorkerPool::new(WorkerOptions {
            binary: settings.binary.clone(),
            slots_per_worker: settings.slots_per_worker,
            state_root: settings.state_root.join(job_id),
            log_dir: settings.log_dir.clone(),
            ledger_dir: settings.ledger_root.join(job_id),
            args: settings.worker_args.clone(),
        });
        LocalProcesses {
            pool,
            min_workers: settings.min_workers as usize,
        }
    }
}

impl ResourceManager for LocalProcesses {
    fn require_slots(&mut self, slots: u32, jobmaster: &str) {
        let wanted = (slots.div_ceil(self.pool.slots_per_worker()) as usize).max(self.min_workers);
        if let Err(e) = self.pool.ensure(wanted, jobmaster) {
            warn!(error = %e, "cannot start a worker process");
        }
    }

    fn exited(&mut self) -> Vec<String> {
        self.pool.reap()
    }

    fn release(&mut self, worker: &str) {
        if let Some(index) = self.pool.index_of(worker) {
            self.pool.stop(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn settings(dir: &std::path::Path, binary: &str, min_workers: u32) -> LocalSettings {
        LocalSettings {
            binary: PathBuf::from(binary),
            slots_per_worker: 2,
            min_workers,
            worker_args: Vec::new(),
            state_root: dir.join("state"),
            log_dir: dir.join("logs"),
            ledger_root: dir.join("processes"),
        }
    }

    fn wait_for_exits(local: &mut LocalProcesses, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut gone = Vec::new();
        while gone.len() < count && Instant::now() < deadline {
            gone.extend(local.exited());
            std::thread::sleep(Duration::from_millis(10));
        }
        gone.sort();
        gone
    }

    #[test]
    fn starts_workers_for_the_slots_and_notices_when_one_exits() {
        let dir = tempfile::tempdir().unwrap();
        // `true` stands in for the binary: it exits at once, as a crashing worker would.
        let mut local = LocalProcesses::new(&settings(dir.path(), "true", 0), "job");
        local.require_slots(3, "127.0.0.1:1");
        assert_eq!(
            local.pool.running_ids(),
            ["worker-0", "worker-1"],
            "two workers of two slots for three slots"
        );
        assert_eq!(wait_for_exits(&mut local, 2), ["worker-0", "worker-1"]);
        local.require_slots(3, "127.0.0.1:1");
        assert_eq!(
            local.pool.running_ids(),
            ["worker-0.1", "worker-1.1"],
            "replacements take the places of the dead, with new ids"
        );
    }

    #[test]
    fn keeps_the_minimum_of_workers_and_a_successor_adopts_those_that_run() {
        let dir = tempfile::tempdir().unwrap();
        // A script that ignores the worker's arguments stands in for a worker that runs.
        let script = dir.path().join("worker.sh");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let settings = settings(dir.path(), script.to_str().unwrap(), 3);
        let mut first = LocalProcesses::new(&settings, "job");
        first.require_slots(1, "127.0.0.1:1");
        assert_eq!(
            first.pool.running_ids(),
            ["worker-0", "worker-1", "worker-2"],
            "three workers although one slot would do"
        );
        // The JobMaster dies; its workers run on and the next one adopts them.
        drop(first);
        let mut second = LocalProcesses::new(&settings, "job");
        second.require_slots(1, "127.0.0.1:1");
        assert_eq!(
            second.pool.running_ids(),
            ["worker-0", "worker-1", "worker-2"],
            "adopted, none started"
        );
        second.release("worker-1");
        assert!(second.exited().is_empty(), "released, not lost");
        second.require_slots(1, "127.0.0.1:1");
        assert_eq!(
            second.pool.running_ids(),
            ["worker-0", "worker-1.1", "worker-2"]
        );
        for id in ["worker-0", "worker-1.1", "worker-2"] {
            second.release(id);
        }
        let other_job = LocalProcesses::new(&settings, "another-job");
        assert!(
            other_job.pool.running_ids().is_empty(),
            "another job's JobMaster adopts none of them"
        );
    }
}
