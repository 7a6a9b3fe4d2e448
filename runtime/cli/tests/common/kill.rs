//! A job killed mid-run: a worker is killed with SIGKILL once a checkpoint completed, the job
//! recovers on a replacement, and its committed output is read once it finished.

use std::path::Path;
use std::time::Duration;

use spate_cluster::{CheckpointSpec, ClusterSpec, LocalCluster};
use spate_proto::v1::JobState;

use super::{logs, read_rows, wait_for};

/// Runs the job of `spec` with checkpoints every second and keyed state in `state_backend`,
/// kills worker `victim` after `kill_after` (counted from the first completed checkpoint), and
/// returns the rows committed under `out`, sorted, once the job finished after restarting.
pub async fn run_with_kill(
    mut spec: ClusterSpec,
    out: &Path,
    kill_after: Duration,
    victim: usize,
    state_backend: &str,
) -> Vec<Vec<String>> {
    let work = spec.work_dir.clone();
    let work = work.as_path();
    spec.heartbeat_timeout_ms = 3_000;
    spec.checkpoints = Some(CheckpointSpec {
        interval_ms: 1_000,
        state_backend: state_backend.into(),
        ..CheckpointSpec::default()
    });
    let mut cluster = LocalCluster::start(spec).await.expect("cluster starts");
    wait_for(&mut cluster, |s| {
        s.checkpoints.as_ref().is_some_and(|c| c.completed >= 1)
    })
    .await;
    tokio::time::sleep(kill_after).await;
    let killed_pid = cluster.worker_pids()[victim];
    cluster.kill_worker(victim).expect("kill");
    let status = wait_for(&mut cluster, |s| {
        s.restarts >= 1 || s.state != JobState::Running as i32
    })
    .await;
    // A kill may cost more than one restart: tasks redeployed before the JobMaster noticed the
    // worker's loss fail again. What matters is that the job recovered and lost nothing.
    assert!(
        status.restarts >= 1,
        "the job ended instead of restarting: {}\n{}",
        status.failure,
        logs(work)
    );
    // The embedded cluster replaces the dead process; the restarted job waits for its slots.
    while cluster.worker_pids()[victim] == killed_pid {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcome = cluster
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(work)));
    assert_eq!(
        outcome.status.state,
        JobState::Finished as i32,
        "{}\n{}",
        outcome.status.failure,
        logs(work)
    );
    let checkpoints = outcome.status.checkpoints.unwrap_or_default();
    assert!(checkpoints.completed >= 1, "{checkpoints:?}");
    if state_backend == "rocksdb" {
        assert!(
            sst_files_under(&work.join("checkpoints")) > 0,
            "RocksDB checkpoints upload SST files"
        );
    }
    let mut rows = read_rows(out);
    rows.sort();
    rows
}

pub fn sst_files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|entry| {
                let path = entry.path();
                if path.is_dir() {
                    sst_files_under(&path)
                } else {
                    usize::from(path.extension().is_some_and(|e| e == "sst"))
                }
            })
            .sum()
    })
}

/// A pseudo-random kill moment from the test's own clock, so runs differ.
pub fn kill_moment(salt: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    Duration::from_millis((nanos ^ salt.wrapping_mul(0x9e37_79b9)) % 2_500)
}
