//! Faults and bad input on real processes: clear errors, nothing hangs, no process left behind.

mod common;

use std::process::Command;

use common::*;
use spate_cluster::LocalCluster;
use spate_proto::v1::JobState;

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purposes: it runs nothing and holds no socket.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.split_whitespace()
                .nth(2)
                .is_none_or(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// An unbounded keyed window job at parallelism 4 on two workers, once every task has had data.
async fn running_job(work_dir: &std::path::Path, heartbeat_timeout_ms: u64) -> LocalCluster {
    let mut spec = spec("window-count", work_dir, 2, 2)
        .arg("parallelism", 4)
        .arg("events", -1)
        .arg("rate", 20_000);
    spec.heartbeat_timeout_ms = heartbeat_timeout_ms;
    let mut cluster = LocalCluster::start(spec).await.unwrap();
    wait_for(&mut cluster, |s| {
        s.state == JobState::Running as i32
            && s.tasks
                .iter()
                .all(|t| t.metrics.as_ref().is_some_and(|m| m.records_in > 0))
    })
    .await;
    cluster
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_fails_the_job_with_its_name_and_every_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let work_dir = dir.path().join("cluster");
    let mut cluster = running_job(&work_dir, 5_000).await;
    let pids: Vec<u32> = cluster.worker_pids().into_iter().flatten().collect();
    cluster.kill_worker(1).unwrap();
    let outcome = cluster.wait().await.unwrap();

    assert_eq!(outcome.status.state, JobState::Failed as i32);
    let failure = &outcome.status.failure;
    assert!(
        failure.contains("worker-1"),
        "the cause names the lost worker: {failure}\n{}",
        logs(&work_dir)
    );
    assert!(!outcome.jobmaster_exit.success());
    assert!(
        outcome.worker_exits[0].is_some(),
        "the surviving worker exits by itself"
    );
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived its job");
    }
}

#[test]
fn a_worker_without_a_jobmaster_retries_then_gives_up_naming_the_address() {
    // Port 1 on loopback: nothing listens there.
    let out = Command::new(spate())
        .args([
            "worker",
            "--jobmaster",
            "127.0.0.1:1",
            "--jobmaster-timeout-s",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.matches("cannot reach the JobMaster yet").count() >= 2,
        "{stderr}"
    );
    assert!(stderr.contains("retry_in"), "{stderr}");
    assert!(
        stderr.contains("registering with the JobMaster at 127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn bad_job_input_is_refused_before_any_process_starts() {
    let cases: &[(&[&str], &str)] = &[
        (&["--arg", "evnets=5"], "unknown argument(s) evnets"),
        (&["--arg", "keys=lots"], "argument 'keys': 'lots'"),
        (&["--arg", "window=monthly"], "expected tumble:SIZE_MS"),
        (&["--job", "nope"], "unknown job 'nope'"),
        (&["--arg", "window=tumble:0"], "window"),
        (&["-p", "0"], "parallelism 0"),
    ];
    for (args, expected) in cases {
        let work_dir = tempfile::tempdir().unwrap();
        let out = Command::new(spate())
            .arg("run")
            .arg("--work-dir")
            .arg(work_dir.path())
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected '{expected}' in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !work_dir.path().join("logs").exists(),
            "{args:?} started processes"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_worker_is_detected_by_heartbeats_and_nothing_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let work_dir = dir.path().join("cluster");
    let cluster = running_job(&work_dir, 2_000).await;
    let pids: Vec<u32> = cluster.worker_pids().into_iter().flatten().collect();
    // Stopped, not dead: its sockets stay open, so only the missing heartbeats can tell.
    let stopped = Command::new("kill")
        .args(["-STOP", &pids[1].to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let outcome = cluster.wait().await.unwrap();

    assert_eq!(outcome.status.state, JobState::Failed as i32);
    let failure = &outcome.status.failure;
    assert!(
        failure.contains("worker-1") && failure.contains("no heartbeat"),
        "the cause names the silent worker: {failure}\n{}",
        logs(&work_dir)
    );
    assert!(
        outcome.worker_exits[0].is_some_and(|e| e.success()),
        "the healthy worker exits by itself"
    );
    assert!(
        outcome.worker_exits[1].is_none(),
        "the stopped worker had to be killed"
    );
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived its job");
    }
}
