//! The workers a dead JobMaster leaves behind. They keep running for the next JobMaster to
//! adopt; the embedded cluster becomes their parent (their subreaper) and, reading their pids
//! from the ledger, learns how each ends.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use tracing::warn;

use crate::ledger::{self, Ended, Ledger};

/// Waits for the workers whose JobMaster died and that have exited since: they became this
/// process's children (it is their subreaper). Records how each ended, unless that is known
/// (killed by its resource manager or by this cluster).
pub(crate) fn reap_orphans(workers: &Ledger) {
    for entry in workers.entries() {
        if let Some(status) = try_wait(entry.pid)
            && let Err(e) = workers.ended(&entry.id, Ended::Exited(status))
        {
            warn!(worker = %entry.id, error = %e, "cannot record the worker's exit");
        }
    }
}

/// Kills a worker and waits until it is gone: reaped, as this process's orphan (its JobMaster
/// has exited), or, where it is not (no subreaper), no longer there.
pub(crate) async fn kill_and_reap(pid: u32) {
    if ledger::kill(pid).is_err() {
        return;
    }
    for _ in 0..100 {
        if try_wait(pid).is_some() || !ledger::alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    warn!(pid, "a killed worker is still there");
}

/// How `pid` ended, once it has and this process is its parent; `None` while it runs, or when
/// it is not this process's child (still its JobMaster's, or already waited for).
fn try_wait(pid: u32) -> Option<ExitStatus> {
    let pid = i32::try_from(pid).ok()?;
    let mut status = 0;
    // SAFETY: waitpid(2) on a worker's pid, without blocking; it fails (ECHILD) for a process
    // that is not this one's child.
    (unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid)
        .then(|| ExitStatus::from_raw(status))
}

/// Workers whose JobMaster dies become this process's children instead of init's, so that it
/// learns how they end.
#[cfg(target_os = "linux")]
pub(crate) fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// Elsewhere orphaned workers go to init: the cluster sees them end, but not how.
#[cfg(not(target_os = "linux"))]
pub(crate) fn become_subreaper() {}
