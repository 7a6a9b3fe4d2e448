//! Worker processes on this machine, started, watched, replaced and stopped by the JobMaster's
//! local resource manager (`spate jobmaster --resource-manager local`, which the embedded
//! cluster runs). Each started process goes into a [`Ledger`]; a pool made where the ledger
//! lists running workers (a JobMaster that replaces a dead one) adopts them.
//!
//! A worker's standard output (print sinks) goes to `<log_dir>/<id>.out` and its log to
//! `<log_dir>/<id>.log`, as a Flink TaskManager's do.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tracing::{info, warn};

use crate::ledger::{self, Ended, Ledger, worker_id};

/// How the workers are started.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The `spate` binary.
    pub binary: PathBuf,
    pub slots_per_worker: u32,
    /// Each worker's local state goes to `<state_root>/<id>`.
    pub state_root: PathBuf,
    /// Each worker's log goes to `<log_dir>/<id>.log`, its standard output to `<id>.out`.
    pub log_dir: PathBuf,
    /// Where the pool records the processes it starts (see [`Ledger`]).
    pub ledger_dir: PathBuf,
    /// More `spate worker` arguments (queue sizes, injected failures).
    pub args: Vec<String>,
}

enum Process {
    None,
    /// Started by this pool.
    Child(Child),
    /// Started by the pool of a JobMaster that died; only its pid is known here.
    Adopted(u32),
}

struct Worker {
    generation: u32,
    process: Process,
}

impl Worker {
    fn running(&self) -> bool {
        !matches!(self.process, Process::None)
    }
}

pub struct WorkerPool {
    options: WorkerOptions,
    ledger: Ledger,
    workers: Vec<Worker>,
}

impl WorkerPool {
    /// A pool that adopts the workers its ledger lists as running.
    pub fn new(options: WorkerOptions) -> Self {
        let ledger = Ledger::new(&options.ledger_dir);
        let workers = ledger
            .latest()
            .into_iter()
            .map(|entry| match entry {
                None => Worker {
                    generation: 0,
                    process: Process::None,
                },
                Some(entry) if entry.running() => {
                    info!(worker = %entry.id, pid = entry.pid, "adopted a running worker process");
                    Worker {
                        generation: entry.generation,
                        process: Process::Adopted(entry.pid),
                    }
                }
                Some(entry) => Worker {
                    generation: entry.generation + 1,
                    process: Process::None,
                },
            })
            .collect();
        WorkerPool {
            options: WorkerOptions {
                slots_per_worker: options.slots_per_worker.max(1),
                ..options
            },
            ledger,
            workers,
        }
    }

    pub fn slots_per_worker(&self) -> u32 {
        self.options.slots_per_worker
    }

    /// Workers at indices `0..count` should run: starts each that does not (again, for one
    /// that ended). Returns how many it started.
    pub fn ensure(&mut self, count: usize, jobmaster: &str) -> std::io::Result<usize> {
        let mut started = 0;
        for index in 0..count {
            if !self.workers.get(index).is_some_and(Worker::running) {
                self.start(index, jobmaster)?;
                started += 1;
            }
        }
        Ok(started)
    }

    /// Starts the worker at `index`: the first there, or the next generation of one that ended.
    fn start(&mut self, index: usize, jobmaster: &str) -> std::io::Result<()> {
        while self.workers.len() <= index {
            self.workers.push(Worker {
                generation: 0,
                process: Process::None,
            });
        }
        let worker = &mut self.workers[index];
        let id = worker_id(index, worker.generation);
        let child = spawn(&self.options, &id, jobmaster)?;
        info!(worker = %id, pid = child.id(), "started a worker process");
        if let Err(e) = self.ledger.started(&id, child.id()) {
            warn!(worker = %id, error = %e, "cannot record the worker process");
        }
        worker.process = Process::Child(child);
        Ok(())
    }

    /// The ids of the workers that ended since the last call; their indices are free to start
    /// again.
    pub fn reap(&mut self) -> Vec<String> {
        let mut ended = Vec::new();
        for (index, worker) in self.workers.iter_mut().enumerate() {
            let status = match &mut worker.process {
                Process::None => continue,
                Process::Child(child) => match child.try_wait() {
                    Ok(Some(status)) => Some(status),
                    _ => continue,
                },
                Process::Adopted(pid) if ledger::alive(*pid) => continue,
                // Its status went to its parent, not to this process.
                Process::Adopted(_) => None,
            };
            let id = worker_id(index, worker.generation);
            match status {
                Some(status) => {
                    if !status.success() {
                        warn!(worker = %id, %status, "worker process exited");
                    }
                    if let Err(e) = self.ledger.ended(&id, Ended::Exited(status)) {
                        warn!(worker = %id, error = %e, "cannot record the worker's exit");
                    }
                }
                None => warn!(worker = %id, "adopted worker process ended"),
            }
            worker.process = Process::None;
            worker.generation += 1;
            ended.push(id);
        }
        ended
    }

    /// The index of the running worker with `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.workers
            .iter()
            .enumerate()
            .find(|(index, w)| w.running() && worker_id(*index, w.generation) == id)
            .map(|(index, _)| index)
    }

    /// Kills the worker at `index` (waiting for it, when it is this pool's child); its index is
    /// free to start again.
    pub fn stop(&mut self, index: usize) {
        let Some(worker) = self.workers.get_mut(index) else {
            return;
        };
        let id = worker_id(index, worker.generation);
        match std::mem::replace(&mut worker.process, Process::None) {
            Process::None => return,
            Process::Child(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::Adopted(pid) => {
                let _ = ledger::kill(pid);
            }
        }
        if let Err(e) = self.ledger.ended(&id, Ended::Killed) {
            warn!(worker = %id, error = %e, "cannot record the worker's end");
        }
        worker.generation += 1;
    }

    /// The ids of the running workers.
    pub fn running_ids(&self) -> Vec<String> {
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.running())
            .map(|(index, w)| worker_id(index, w.generation))
            .collect()
    }
}

impl Drop for WorkerPool {
    /// The workers stay: they keep their tasks for a new JobMaster, and exit on their own once
    /// told the job is over or when no JobMaster answers. Those that have exited are recorded.
    fn drop(&mut self) {
        self.reap();
    }
}

fn spawn(options: &WorkerOptions, id: &str, jobmaster: &str) -> std::io::Result<Child> {
    std::fs::create_dir_all(&options.log_dir)?;
    let log = File::create(options.log_dir.join(format!("{id}.log")))?;
    let out = File::create(options.log_dir.join(format!("{id}.out")))?;
    Command::new(&options.binary)
        .arg("worker")
        .arg("--jobmaster")
        .arg(jobmaster)
        .arg("--slots")
        .arg(options.slots_per_worker.to_string())
        .arg("--id")
        .arg(id)
        .arg("--state-dir")
        .arg(options.state_root.join(id))
        .args(&options.args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(log)
        .spawn()
}
