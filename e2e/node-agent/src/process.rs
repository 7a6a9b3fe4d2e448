//! Containers as process groups: started with their own group so that a signal reaches
//! everything they spawned, recorded in a pid file so tests (and a restarted agent) can find
//! them.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};

use crate::binaries::Program;
use crate::env::EnvVars;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log {0}: {1}")]
    Log(PathBuf, #[source] std::io::Error),
    #[error("cannot start {0}: {1}")]
    Spawn(PathBuf, #[source] std::io::Error),
    #[error("cannot write pid file {0}: {1}")]
    PidFile(PathBuf, #[source] std::io::Error),
}

/// Where a container's files live inside its pod directory.
pub fn log_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join(format!("{container}.log"))
}

pub fn pid_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join(format!("{container}.pid"))
}

/// Starts `program` in `pod_dir` with exactly `env` (nothing of the agent's own environment but
/// what the caller put there), appending stdout and stderr to the container's log, and writes
/// its pid file.
pub fn spawn(
    program: &Program,
    env: &EnvVars,
    pod_dir: &Path,
    container: &str,
) -> Result<Child, ProcessError> {
    let log = log_path(pod_dir, container);
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| ProcessError::Log(log.clone(), e))
    };
    let mut out: File = open()?;
    // A marker between runs: one log holds every restart of the container.
    let _ = writeln!(
        out,
        "--- {} {} ---",
        program.path.display(),
        program.args.join(" ")
    );
    let err = open()?;
    let mut command = Command::new(&program.path);
    command
        .args(&program.args)
        .env_clear()
        .envs(env.iter())
        .current_dir(pod_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: SIGTERM and SIGKILL go to everything the container started,
        // and a Ctrl-C at the agent's terminal does not reach the pods.
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|e| ProcessError::Spawn(program.path.clone(), e))?;
    let pid = child.id().expect("a child that was just spawned has a pid");
    let pid_file = pid_path(pod_dir, container);
    std::fs::write(&pid_file, format!("{pid}\n"))
        .map_err(|e| ProcessError::PidFile(pid_file.clone(), e))?;
    Ok(child)
}

/// Sends `signal` to the process group led by `pid`; a group that is already gone is fine.
pub fn signal_group(pid: u32, signal: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// The exit code as Kubernetes reports it (128 + the signal for a killed process) and the
/// signal, if any.
pub fn exit_code(status: ExitStatus) -> (i32, Option<i32>) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(signal)) => (128 + signal, Some(signal)),
        (None, None) => (-1, None),
    }
}

/// Kills the container processes recorded under `pod_dir` by an earlier run of the agent.
///
/// A pid is only trusted when that process still has the pod directory as its working
/// directory, so a pid reused by an unrelated process since is left alone.
pub fn kill_recorded(pod_dir: &Path) -> Vec<u32> {
    let mut killed = Vec::new();
    let Ok(entries) = std::fs::read_dir(pod_dir) else {
        return killed;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "pid") {
            continue;
        }
        let pid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = pid.filter(|pid| runs_in(*pid, pod_dir)) {
            signal_group(pid, libc::SIGKILL);
            killed.push(pid);
        }
        let _ = std::fs::remove_file(&path);
    }
    // A killed process holds its ports until it has exited: the pod's next container, started
    // at once at the same address, would find them taken and fail.
    let deadline = std::time::Instant::now() + ORPHAN_EXIT;
    while killed.iter().any(|&pid| running(pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    killed
}

/// How long the agent waits for the processes it killed at start to exit.
const ORPHAN_EXIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether `pid` runs: any of its threads is not a zombie yet. A multi-threaded process's
/// first thread can be a zombie while the others are still exiting, and the files the threads
/// share (its sockets) close only when the last of them has exited.
fn running(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses and may hold spaces.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    })
}

fn runs_in(pid: u32, dir: &Path) -> bool {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
    let dir = std::fs::canonicalize(dir);
    matches!((cwd, dir), (Ok(cwd), Ok(dir)) if cwd == dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(script: &str) -> Program {
        Program {
            path: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
        }
    }

    #[tokio::test]
    async fn runs_with_only_the_given_env_in_the_pod_dir_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let env = EnvVars::from([("GREETING", "hi".to_string())]);
        let mut child = spawn(
            &program("echo $GREETING $HOME; pwd; echo oops >&2; exit 3"),
            &env,
            dir.path(),
            "main",
        )
        .unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(exit_code(status), (3, None));
        let log = std::fs::read_to_string(log_path(dir.path(), "main")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines[0].starts_with("--- /bin/sh -c"), "{log}");
        assert_eq!(lines[1], "hi");
        assert_eq!(
            Path::new(lines[2]).canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
        assert_eq!(lines[3], "oops");
        let pid: u32 = std::fs::read_to_string(pid_path(dir.path(), "main"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(pid > 0);
    }

    #[tokio::test]
    async fn group_signal_reaches_children_and_reports_the_signal() {
        let dir = tempfile::tempdir().unwrap();
        // The shell waits on a child; killing only the shell would leave `sleep` behind.
        let mut child = spawn(
            &program("sleep 30 & echo $! > child; wait"),
            &EnvVars::default(),
            dir.path(),
            "main",
        )
        .unwrap();
        let child_pid_file = dir.path().join("child");
        while std::fs::read_to_string(&child_pid_file).map_or(true, |s| !s.ends_with('\n')) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let grandchild: i32 = std::fs::read_to_string(&child_pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        signal_group(child.id().unwrap(), libc::SIGTERM);
        let status = child.wait().await.unwrap();
        assert_eq!(
            exit_code(status),
            (128 + libc::SIGTERM, Some(libc::SIGTERM))
        );
        // The grandchild got the signal too (it is not our child, so poll until it is gone).
        // Killed, it is a zombie until init reaps it: gone or a zombie both count.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{grandchild}/status")).is_ok_and(|s| {
                !s.lines()
                    .any(|l| l.starts_with("State:") && l.contains('Z'))
            })
        };
        let gone = async {
            while alive() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), gone)
            .await
            .expect("sleep survived its group's SIGTERM");
    }

    #[tokio::test]
    async fn kill_recorded_kills_only_processes_running_in_the_pod_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn(
            &program("exec sleep 30"),
            &EnvVars::default(),
            dir.path(),
            "main",
        )
        .unwrap();
        // A stale pid file naming a process elsewhere (this test process) is not trusted.
        std::fs::write(
            pid_path(dir.path(), "stale"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        let killed = kill_recorded(dir.path());
        assert_eq!(killed, vec![child.id().unwrap()]);
        let status = child.wait().await.unwrap();
        assert_eq!(exit_code(status).1, Some(libc::SIGKILL));
        assert!(!pid_path(dir.path(), "main").exists());
    }
}
