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
        let Ok(pid) = i32::try_from(entry.pid) else {
            continue;
        };
        let mut status = 0;
        // SAFETY: waitpid(2) on a worker's pid, without blocking; it fails (ECHILD) while the
        // worker is still its JobMaster's child, or once it has been waited for.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid
            && let Err(e) = workers.ended(&entry.id, Ended::Exited(ExitStatus::from_raw(status)))
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
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    for _ in 0..100 {
        let mut status = 0;
        // SAFETY: waitpid(2) on the worker just killed, without blocking.
        let waited = unsafe { libc::waitpid(raw, &mut status, libc::WNOHANG) };
        if waited == raw || (waited < 0 && !ledger::alive(pid)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    warn!(pid, "a killed worker is still there");
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
