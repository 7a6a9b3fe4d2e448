//! Worker processes on this machine, started and replaced by the JobMaster.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tracing::{info, warn};

use super::ResourceManager;

pub struct LocalProcesses {
    binary: PathBuf,
    slots_per_worker: u32,
    state_root: PathBuf,
    log_dir: PathBuf,
    /// Running (or starting) workers by id.
    children: BTreeMap<String, Child>,
    started: u32,
}

impl LocalProcesses {
    pub fn new(
        binary: PathBuf,
        slots_per_worker: u32,
        state_root: PathBuf,
        log_dir: PathBuf,
    ) -> Self {
        LocalProcesses {
            binary,
            slots_per_worker: slots_per_worker.max(1),
            state_root,
            log_dir,
            children: BTreeMap::new(),
            started: 0,
        }
    }

    fn spawn(&mut self, jobmaster: &str) -> std::io::Result<()> {
        let id = format!("worker-{}", self.started);
        std::fs::create_dir_all(&self.log_dir)?;
        let log = File::create(self.log_dir.join(format!("{id}.log")))?;
        // Not tied to the JobMaster's life: when it dies, the workers keep their tasks for a
        // new JobMaster to adopt, and exit on their own if none comes.
        let child = Command::new(&self.binary)
            .arg("worker")
            .arg("--jobmaster")
            .arg(jobmaster)
            .arg("--slots")
            .arg(self.slots_per_worker.to_string())
            .arg("--id")
            .arg(&id)
            .arg("--state-dir")
            .arg(self.state_root.join(&id))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        info!(worker = %id, pid = child.id(), "started a worker process");
        self.started += 1;
        self.children.insert(id, child);
        Ok(())
    }
}

impl ResourceManager for LocalProcesses {
    fn require_slots(&mut self, slots: u32, jobmaster: &str) {
        let wanted = slots.div_ceil(self.slots_per_worker) as usize;
        while self.children.len() < wanted {
            if let Err(e) = self.spawn(jobmaster) {
                warn!(binary = %self.binary.display(), error = %e, "cannot start a worker process");
                return;
            }
        }
    }

    fn exited(&mut self) -> Vec<String> {
        let gone: Vec<String> = self
            .children
            .iter_mut()
            .filter_map(|(id, child)| match child.try_wait() {
                Ok(Some(status)) => {
                    warn!(worker = %id, %status, "worker process exited");
                    Some(id.clone())
                }
                _ => None,
            })
            .collect();
        for id in &gone {
            self.children.remove(id);
        }
        gone
    }

    fn release(&mut self, worker: &str) {
        if let Some(mut child) = self.children.remove(worker) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalProcesses {
    fn drop(&mut self) {
        // Workers exit by themselves once told the job is over; reap what has.
        for child in self.children.values_mut() {
            let _ = child.try_wait();
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
            local.children.len(),
            2,
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
        assert!(
            local.children.contains_key("worker-2"),
            "replacements get new ids"
        );
    }
}
