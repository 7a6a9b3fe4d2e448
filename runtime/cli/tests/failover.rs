//! Fine-grained failover on real processes: what restarts after a failure, where it restarts,
//! and what it downloads; the committed output must still equal the brute-force reference.

mod common;

use common::*;
use prost::Message;
use spate_cluster::{CheckpointSpec, LocalCluster};
use spate_proto::v1::job_master_client::JobMasterClient;
use spate_proto::v1::{GetJobStatusRequest, JobState, JobStatus};

const EVENTS: u64 = 200_000;
const RATE: u64 = 20_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_task_restarts_only_its_region() {
    let dir = tempfile::tempdir().unwrap();
    let (out, work) = (dir.path().join("out"), dir.path().join("cluster"));
    let sql = format!(
        "{}{}INSERT INTO out SELECT auction, bidder, price FROM bid WHERE MOD(price, 3) = 0;",
        bid_table(EVENTS, RATE),
        sink(&out, "auction BIGINT, bidder BIGINT, price BIGINT")
    );
    // Four forward-only pipelines: four regions. Subtask 2 fails once, mid-stream.
    let mut spec = spec("sql", &work, 2, 2)
        .arg("sql", sql)
        .arg("parallelism", 4);
    spec.checkpoints = Some(CheckpointSpec {
        interval_ms: 500,
        ..CheckpointSpec::default()
    });
    spec.inject_failure = Some("0/2/20000".into());
    let cluster = LocalCluster::start(spec).await.expect("cluster starts");
    let outcome = cluster
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&work)));
    let status = outcome.status;
    assert_eq!(
        status.state,
        JobState::Finished as i32,
        "{}\n{}",
        status.failure,
        logs(&work)
    );
    assert_eq!(status.restarts, 1, "one failover");
    let restarted: Vec<(u32, u32)> = status
        .tasks
        .iter()
        .filter_map(|t| t.task.as_ref())
        .filter(|t| t.attempt > 0)
        .map(|t| (t.vertex, t.subtask))
        .collect();
    assert!(
        !restarted.is_empty() && restarted.iter().all(|&(_, subtask)| subtask == 2),
        "only the failed pipeline restarted: {restarted:?}"
    );
    assert_eq!(status.task_restarts as usize, restarted.len());
    let mut rows = read_rows(&out);
    rows.sort();
    assert_same(&rows, &bids_priced_in_threes(EVENTS));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_moves_only_its_tasks_and_the_others_restore_locally() {
    let dir = tempfile::tempdir().unwrap();
    let (out, work) = (dir.path().join("out"), dir.path().join("cluster"));
    let mut cluster = start_keyed_job(&out, &work).await;
    let survivor = cluster.worker_pids()[0].expect("worker 0 runs");
    let victim = cluster.worker_pids()[1].expect("worker 1 runs");
    cluster.kill_worker(1).expect("kill");
    let status = wait_for(&mut cluster, |s| s.restarts >= 1).await;
    assert_eq!(status.restarts, 1, "{}", status.failure);
    let outcome = cluster
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&work)));
    let status = outcome.status;
    assert_eq!(
        status.state,
        JobState::Finished as i32,
        "{}\n{}",
        status.failure,
        logs(&work)
    );
    let pids: Vec<u32> = status.workers.iter().map(|w| w.pid).collect();
    assert!(
        pids.contains(&survivor),
        "the healthy worker lives on: {pids:?}"
    );
    assert!(!pids.contains(&victim), "{pids:?}");
    let survivor_id = &status
        .workers
        .iter()
        .find(|w| w.pid == survivor)
        .expect("survivor")
        .worker_id;
    // Sources keep positions only; the window subtasks hold keyed state.
    let keyed: Vec<_> = status
        .tasks
        .iter()
        .filter(|t| t.task.as_ref().is_some_and(|id| id.vertex == 1))
        .collect();
    assert_eq!(keyed.len(), 2);
    for task in keyed {
        let metrics = task.metrics.clone().unwrap_or_default();
        let attempt = task.task.as_ref().map_or(0, |t| t.attempt);
        assert!(attempt > 0, "every task of the single region restarted");
        if &task.worker_id == survivor_id {
            assert_eq!(
                (
                    metrics.restored_bytes_downloaded,
                    metrics.restored_bytes_local > 0
                ),
                (0, true),
                "back in its slot, the task restores from the local copy: {metrics:?}"
            );
        } else {
            assert!(
                metrics.restored_bytes_downloaded > 0 && metrics.restored_bytes_local == 0,
                "the moved task downloads its state: {metrics:?}"
            );
        }
    }
    let mut rows = read_rows(&out);
    rows.sort();
    assert_same(&rows, &bid_counts());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_jobmaster_is_replaced_and_no_task_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (out, work) = (dir.path().join("out"), dir.path().join("cluster"));
    let mut cluster = start_keyed_job(&out, &work).await;
    let workers = cluster.worker_pids();
    let first = cluster.jobmaster_pid().expect("the JobMaster runs");
    cluster.kill_jobmaster().expect("kill");
    let outcome = cluster
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&work)));
    let status = outcome.status;
    assert_eq!(
        status.state,
        JobState::Finished as i32,
        "{}\n{}",
        status.failure,
        logs(&work)
    );
    assert!(
        work.join("logs/jobmaster.1.log").exists(),
        "a replacement JobMaster (not pid {first}) ended the job"
    );
    let pids: Vec<Option<u32>> = status.workers.iter().map(|w| Some(w.pid)).collect();
    assert_eq!(pids.len(), workers.len());
    assert!(
        pids.iter().all(|p| workers.contains(p)),
        "the workers lived on: {pids:?} vs {workers:?}"
    );
    let attempts: Vec<u32> = status
        .tasks
        .iter()
        .filter_map(|t| t.task.as_ref().map(|id| id.attempt))
        .collect();
    assert_eq!(attempts, vec![0; 4], "no task restarted");
    assert_eq!(status.restarts, 0);
    let mut rows = read_rows(&out);
    rows.sort();
    assert_same(&rows, &bid_counts());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jobmaster_with_local_workers_replaces_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (out, work) = (dir.path().join("out"), dir.path().join("jobmaster"));
    let address_file = dir.path().join("jobmaster.addr");
    let status_file = dir.path().join("status.pb");
    std::fs::create_dir_all(&work).unwrap();
    let log = std::fs::File::create(dir.path().join("jobmaster.log")).unwrap();
    // No embedded cluster: the JobMaster starts its own worker processes, and replaces them.
    let mut jobmaster = tokio::process::Command::new(spate())
        .args(["jobmaster", "--job", "sql", "--resource-manager", "local"])
        .args(["--worker-slots", "1", "--heartbeat-timeout-ms", "3000"])
        .args(["--checkpoint-interval-ms", "500", "--max-restarts", "3"])
        .arg("--checkpoint-dir")
        .arg(format!(
            "file://{}",
            dir.path().join("checkpoints").display()
        ))
        .arg("--workers-dir")
        .arg(&work)
        .arg("--address-file")
        .arg(&address_file)
        .arg("--status-file")
        .arg(&status_file)
        .arg("--arg")
        .arg(format!("sql={}", keyed_sql(&out)))
        .args(["--arg", "parallelism=2"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the JobMaster starts");
    let address = loop {
        if let Ok(address) = std::fs::read_to_string(&address_file) {
            break address;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let mut client = JobMasterClient::connect(format!("http://{address}"))
        .await
        .expect("JobMaster client");
    let before = loop {
        let status = client
            .get_job_status(GetJobStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if status
            .checkpoints
            .as_ref()
            .is_some_and(|c| c.completed >= 2)
        {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let pids: Vec<u32> = before.workers.iter().map(|w| w.pid).collect();
    assert_eq!(pids.len(), 2, "one worker of one slot per subtask");
    // SAFETY: kill(2) with a pid this test read from the JobMaster's status.
    assert_eq!(unsafe { libc::kill(pids[1] as i32, libc::SIGKILL) }, 0);
    let exit = jobmaster.wait().await.unwrap();
    let status = JobStatus::decode(std::fs::read(&status_file).unwrap().as_slice()).unwrap();
    let jobmaster_log = std::fs::read_to_string(dir.path().join("jobmaster.log")).unwrap();
    assert!(
        exit.success() && status.state == JobState::Finished as i32,
        "{}\n{jobmaster_log}",
        status.failure
    );
    assert_eq!(status.restarts, 1);
    let after: Vec<u32> = status.workers.iter().map(|w| w.pid).collect();
    assert!(
        after.contains(&pids[0]),
        "the healthy worker stays: {after:?}"
    );
    assert!(
        !after.contains(&pids[1]) && after.len() == 2,
        "a new worker process took the killed one's place: {after:?}"
    );
    let mut rows = read_rows(&out);
    rows.sort();
    assert_same(&rows, &bid_counts());
}

fn keyed_sql(out: &std::path::Path) -> String {
    format!(
        "{}{}INSERT INTO out
         SELECT auction, TUMBLE_START(dateTime, INTERVAL '2' SECOND) AS s, COUNT(*) AS n
         FROM bid GROUP BY auction, TUMBLE(dateTime, INTERVAL '2' SECOND);",
        bid_table(EVENTS, RATE / 2),
        sink(out, "auction BIGINT, s TIMESTAMP(3), n BIGINT")
    )
}

/// A keyed job (bids counted per auction in 2-second tumbling windows) at parallelism 2 on two
/// workers of one slot, checkpointing every 500 ms, once two checkpoints completed.
async fn start_keyed_job(out: &std::path::Path, work: &std::path::Path) -> LocalCluster {
    let mut spec = spec("sql", work, 2, 1)
        .arg("sql", keyed_sql(out))
        .arg("parallelism", 2);
    spec.heartbeat_timeout_ms = 3_000;
    spec.checkpoints = Some(CheckpointSpec {
        interval_ms: 500,
        ..CheckpointSpec::default()
    });
    let mut cluster = LocalCluster::start(spec).await.expect("cluster starts");
    wait_for(&mut cluster, |s| {
        s.checkpoints.as_ref().is_some_and(|c| c.completed >= 2)
    })
    .await;
    cluster
}

/// The reference for [`start_keyed_job`], by brute force.
fn bid_counts() -> Vec<Vec<String>> {
    let size = 2_000i64;
    let mut counts: std::collections::BTreeMap<(i64, i64), u64> = Default::default();
    for b in nexmark_bids(EVENTS) {
        *counts
            .entry((b.auction, b.date_time - b.date_time.rem_euclid(size)))
            .or_default() += 1;
    }
    let mut want: Vec<Vec<String>> = counts
        .into_iter()
        .map(|((auction, start), n)| vec![auction.to_string(), ts(start), n.to_string()])
        .collect();
    want.sort();
    want
}

/// Issue 14's fourth failure: a worker that died while it ran no task was never declared lost,
/// because heartbeats were checked only while the job ran; the JobMaster kept placing tasks on
/// its slots. Here it dies before the job is deployed (no checkpoints: one failed deployment
/// would fail the job for good) and a healthy worker registers after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_dies_before_the_deployment_is_declared_lost_and_not_deployed_to() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let address_file = dir.path().join("jobmaster.addr");
    let status_file = dir.path().join("status.pb");
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
    let sql = format!(
        "{}{}INSERT INTO out SELECT auction, bidder, price FROM bid WHERE MOD(price, 3) = 0;",
        bid_table(20_000, 100_000),
        sink(&out, "auction BIGINT, bidder BIGINT, price BIGINT")
    );
    let mut jobmaster = tokio::process::Command::new(spate())
        .args([
            "jobmaster",
            "--job",
            "sql",
            "--heartbeat-timeout-ms",
            "1000",
        ])
        .arg("--address-file")
        .arg(&address_file)
        .arg("--status-file")
        .arg(&status_file)
        .arg("--arg")
        .arg(format!("sql={sql}"))
        .args(["--arg", "parallelism=2"])
        .stderr(log("jobmaster.log"))
        .kill_on_drop(true)
        .spawn()
        .expect("the JobMaster starts");
    let address = loop {
        if let Ok(address) = std::fs::read_to_string(&address_file) {
            break address;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let worker = |id: &str, slots: &str| {
        tokio::process::Command::new(spate())
            .args([
                "worker",
                "--jobmaster",
                &address,
                "--id",
                id,
                "--slots",
                slots,
            ])
            .stderr(log(&format!("{id}.log")))
            .kill_on_drop(true)
            .spawn()
            .expect("a worker starts")
    };
    // One slot: not enough for the job, so nothing is deployed while it lives.
    let mut doomed = worker("doomed", "1");
    let mut client = JobMasterClient::connect(format!("http://{address}"))
        .await
        .expect("JobMaster client");
    loop {
        let status = client.get_job_status(GetJobStatusRequest {}).await;
        if status.is_ok_and(|s| s.into_inner().workers.len() == 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();
    // Twice the heartbeat timeout: when the next worker registers, the dead one is silent for
    // longer than the timeout, so the JobMaster must not offer its slot any more.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mut healthy = worker("healthy", "2");
    let exit = jobmaster.wait().await.unwrap();
    let _ = healthy.wait().await;
    let status = JobStatus::decode(std::fs::read(&status_file).unwrap().as_slice()).unwrap();
    let jobmaster_log = std::fs::read_to_string(dir.path().join("jobmaster.log")).unwrap();
    assert!(
        exit.success() && status.state == JobState::Finished as i32,
        "{}\n{jobmaster_log}",
        status.failure
    );
    let mut rows = read_rows(&out);
    rows.sort();
    assert_same(&rows, &bids_priced_in_threes(20_000));
}
