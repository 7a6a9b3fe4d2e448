//! Worker processes on this machine: started, watched, replaced and stopped. One
//! implementation for both places that run workers as child processes: the JobMaster's local
//! resource manager (`spate jobmaster --resource-manager local`) and the embedded cluster.
//!
//! Workers are kept by index; the worker at an index that is started again gets the next
//! generation in its id (`worker-1`, then `worker-1.1`), so logs and state directories of
//! the dead one stay apart and tests can address "worker 1" whichever process runs it now.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use tracing::{info, warn};

/// How the workers are started.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The `spate` binary.
    pub binary: PathBuf,
    pub slots_per_worker: u32,
    /// Each worker's local state goes to `<state_root>/<id>`.
    pub state_root: PathBuf,
    /// Each worker's log goes to `<log_dir>/<id>.log`.
    pub log_dir: PathBuf,
    /// More `spate worker` arguments (queue sizes, injected failures).
    pub args: Vec<String>,
    /// More environment variables (`RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// Their standard output goes to this process's (print sinks) instead of their logs.
    pub forward_stdout: bool,
    /// They die with this process (PR_SET_PDEATHSIG on Linux) and are killed when the pool is
    /// dropped. A JobMaster's workers do not: they keep their tasks for a new JobMaster.
    pub die_with_parent: bool,
}

/// A worker that ended.
#[derive(Debug, Clone)]
pub struct WorkerExit {
    pub index: usize,
    pub id: String,
    pub status: ExitStatus,
}

struct Worker {
    generation: u32,
    child: Option<Child>,
    /// How the last process at this index ended, until another starts there.
    last_exit: Option<ExitStatus>,
}

impl Worker {
    fn id(&self, index: usize) -> String {
        match self.generation {
            0 => format!("worker-{index}"),
            g => format!("worker-{index}.{g}"),
        }
    }
}

pub struct WorkerPool {
    options: WorkerOptions,
    workers: Vec<Worker>,
    /// Threads copying workers' standard output to ours, one per process started with
    /// `forward_stdout`.
    forwarders: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    pub fn new(options: WorkerOptions) -> Self {
        WorkerPool {
            options: WorkerOptions {
                slots_per_worker: options.slots_per_worker.max(1),
                ..options
            },
            workers: Vec::new(),
            forwarders: Vec::new(),
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
            let running = self.workers.get(index).is_some_and(|w| w.child.is_some());
            if !running {
                self.start(index, jobmaster)?;
                started += 1;
            }
        }
        Ok(started)
    }

    /// Starts the worker at `index`: the first there, or the next generation of one that ended.
    pub fn start(&mut self, index: usize, jobmaster: &str) -> std::io::Result<()> {
        while self.workers.len() <= index {
            self.workers.push(Worker {
                generation: 0,
                child: None,
                last_exit: None,
            });
        }
        let worker = &mut self.workers[index];
        if worker.child.is_some() {
            return Ok(());
        }
        let id = worker.id(index);
        let mut child = spawn(&self.options, &id, jobmaster)?;
        info!(worker = %id, pid = child.id(), "started a worker process");
        if let Some(stdout) = child.stdout.take() {
            self.forwarders
                .push(std::thread::spawn(move || forward_lines(stdout)));
        }
        worker.child = Some(child);
        worker.last_exit = None;
        Ok(())
    }

    /// The workers that ended since the last call; their indices are free to start again.
    pub fn reap(&mut self) -> Vec<WorkerExit> {
        let mut exits = Vec::new();
        for (index, worker) in self.workers.iter_mut().enumerate() {
            let Some(child) = worker.child.as_mut() else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            let id = worker.id(index);
            if !status.success() {
                warn!(worker = %id, %status, "worker process exited");
            }
            worker.child = None;
            worker.last_exit = Some(status);
            worker.generation += 1;
            exits.push(WorkerExit { index, id, status });
        }
        exits
    }

    /// The index of the running worker with `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.workers
            .iter()
            .enumerate()
            .find(|(index, w)| w.child.is_some() && w.id(*index) == id)
            .map(|(index, _)| index)
    }

    /// Kills the worker at `index` (SIGKILL) without waiting: `reap` sees it end.
    pub fn kill(&mut self, index: usize) -> std::io::Result<()> {
        match self.workers.get_mut(index).and_then(|w| w.child.as_mut()) {
            Some(child) => child.kill(),
            None => Ok(()),
        }
    }

    /// Kills the worker at `index` and waits for it; its index is free to start again.
    pub fn stop(&mut self, index: usize) {
        if let Some(worker) = self.workers.get_mut(index)
            && let Some(mut child) = worker.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
            worker.generation += 1;
        }
    }

    /// The ids of the running workers.
    pub fn running_ids(&self) -> Vec<String> {
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.child.is_some())
            .map(|(index, w)| w.id(index))
            .collect()
    }

    /// How the last worker at each index ended; `None` where one runs, was killed by
    /// `kill_remaining`, or never ran.
    pub fn exits(&self) -> Vec<Option<ExitStatus>> {
        self.workers.iter().map(|w| w.last_exit).collect()
    }

    /// The process id at each index, `None` where no worker runs.
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.workers
            .iter()
            .map(|w| w.child.as_ref().map(Child::id))
            .collect()
    }

    /// How many indices have been used.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// No worker runs.
    pub fn all_ended(&self) -> bool {
        self.workers.iter().all(|w| w.child.is_none())
    }

    /// Kills the workers still running and waits for them; returns their indices.
    pub fn kill_remaining(&mut self) -> Vec<usize> {
        let mut killed = Vec::new();
        for (index, worker) in self.workers.iter_mut().enumerate() {
            if let Some(mut child) = worker.child.take() {
                let _ = child.kill();
                let _ = child.wait();
                killed.push(index);
            }
        }
        killed
    }

    /// The output copiers started so far: once the workers have exited, each ends when it has
    /// copied everything its worker wrote.
    pub fn take_forwarders(&mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.forwarders)
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            let Some(child) = worker.child.as_mut() else {
                continue;
            };
            if self.options.die_with_parent {
                let _ = child.kill();
                let _ = child.wait();
            } else {
                // They exit by themselves once told the job is over; reap what has.
                let _ = child.try_wait();
            }
        }
    }
}

fn spawn(options: &WorkerOptions, id: &str, jobmaster: &str) -> std::io::Result<Child> {
    std::fs::create_dir_all(&options.log_dir)?;
    let log = File::create(options.log_dir.join(format!("{id}.log")))?;
    let mut command = Command::new(&options.binary);
    command
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
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if options.forward_stdout {
        command.stdout(Stdio::piped());
    }
    if options.die_with_parent {
        die_with_parent(&mut command);
    }
    command.spawn()
}

/// On Linux the kernel kills the child when the thread that spawned it exits (a runtime thread
/// of this process, which lives as long as the process), so children never outlive the parent
/// even when it is killed with SIGKILL.
#[cfg(target_os = "linux")]
pub(crate) fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Elsewhere (macOS) there is no parent-death signal: children are still killed when the pool
/// is dropped, but a parent killed with SIGKILL leaves them running.
#[cfg(not(target_os = "linux"))]
pub(crate) fn die_with_parent(_command: &mut Command) {}

/// Copies a child's output to ours line by line, so lines of different workers never interleave.
fn forward_lines(stdout: ChildStdout) {
    let out = std::io::stdout();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        let mut out = out.lock();
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.lock().flush();
}
