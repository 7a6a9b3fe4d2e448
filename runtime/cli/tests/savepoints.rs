//! Savepoints on real processes: a keyed window job at parallelism 2 takes a savepoint and is
//! canceled; the same job restored from it at parallelism 3 and at 1 finishes the input. The
//! output committed before the savepoint plus the output of the restored run must equal the
//! brute-force reference exactly. A stop-with-savepoint, taken while checkpoints run every
//! 200 ms, ends the job with nothing committed after the savepoint, so its restore completes
//! the output exactly.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use spate_cluster::{CheckpointSpec, LocalCluster};
use spate_proto::v1::job_master_client::JobMasterClient;
use spate_proto::v1::{JobState, TriggerSavepointRequest};

const EVENTS: u64 = 200_000;
const RATE: u64 = 20_000;

fn job(out: &Path) -> String {
    format!(
        "CREATE TABLE bid (
            auction BIGINT, price BIGINT, dateTime TIMESTAMP(3),
            WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
        ) WITH (
            'connector' = 'nexmark', 'nexmark.table' = 'bid',
            'events' = '{EVENTS}', 'rate' = '{RATE}', 'batch-size' = '500'
        );
        CREATE TABLE out (auction BIGINT, s TIMESTAMP(3), n BIGINT, total BIGINT)
        WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
        INSERT INTO out
        SELECT auction, TUMBLE_START(dateTime, INTERVAL '2' SECOND), COUNT(*), SUM(price)
        FROM bid GROUP BY auction, TUMBLE(dateTime, INTERVAL '2' SECOND);",
        out.display()
    )
}

fn reference() -> Vec<Vec<String>> {
    let mut windows: BTreeMap<(i64, i64), (u64, i64)> = BTreeMap::new();
    for b in nexmark_bids(EVENTS) {
        let start = b.date_time - b.date_time.rem_euclid(2_000);
        let w = windows.entry((b.auction, start)).or_default();
        w.0 += 1;
        w.1 += b.price;
    }
    let mut rows: Vec<Vec<String>> = windows
        .into_iter()
        .map(|((auction, start), (n, total))| {
            vec![
                auction.to_string(),
                ts(start),
                n.to_string(),
                total.to_string(),
            ]
        })
        .collect();
    rows.sort();
    rows
}

/// How the first run ends.
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// A savepoint, then a cancellation; only savepoints and the final checkpoint are taken.
    SavepointThenCancel,
    /// A stop-with-savepoint while checkpoints run every 200 ms.
    StopWithSavepoint,
}

fn checkpoints(storage: &Path, restore_from: Option<String>, end: End) -> CheckpointSpec {
    CheckpointSpec {
        storage_url: Some(format!("file://{}", storage.display())),
        // Only savepoints and the final checkpoint: what is committed is what they cover.
        interval_ms: match end {
            End::SavepointThenCancel => 3_600_000,
            End::StopWithSavepoint => 200,
        },
        restore_from,
        restart: vec!["--restart-strategy".into(), "none".into()],
        ..CheckpointSpec::default()
    }
}

/// Runs the job at parallelism 2 until part of the input is processed, takes a savepoint and
/// ends as `end` says; returns the savepoint's location.
async fn savepoint_at_parallelism_2(work: &Path, storage: &Path, out: &Path, end: End) -> String {
    let mut spec = spec("sql", work, 2, 1)
        .arg("sql", job(out))
        .arg("parallelism", 2);
    spec.checkpoints = Some(checkpoints(storage, None, end));
    let mut cluster = LocalCluster::start(spec).await.expect("cluster starts");
    wait_for(&mut cluster, |s| {
        s.tasks
            .iter()
            .map(|t| t.metrics.as_ref().map_or(0, |m| m.records_in))
            .sum::<u64>()
            > EVENTS / 4
    })
    .await;
    let mut client = JobMasterClient::connect(format!("http://{}", cluster.jobmaster_address()))
        .await
        .expect("JobMaster reachable");
    let stop = end == End::StopWithSavepoint;
    let savepoint = client
        .trigger_savepoint(TriggerSavepointRequest { stop })
        .await
        .unwrap_or_else(|e| panic!("savepoint: {}\n{}", e.message(), logs(work)))
        .into_inner();
    if !stop {
        cluster.cancel("savepoint taken").await.expect("cancel");
    }
    let outcome = cluster.wait().await.expect("cluster ends");
    let (state, failure) = (outcome.status.state, &outcome.status.failure);
    match end {
        End::SavepointThenCancel => assert_eq!(state, JobState::Canceled as i32, "{failure}"),
        End::StopWithSavepoint => {
            assert_eq!(state, JobState::Stopped as i32, "{failure}\n{}", logs(work));
            assert!(failure.contains(&savepoint.location), "{failure}");
            let checkpoints = outcome.status.checkpoints.unwrap_or_default();
            assert_eq!(checkpoints.savepoint_location, savepoint.location);
            assert!(
                checkpoints.completed > 1,
                "periodic checkpoints ran before the savepoint"
            );
        }
    }
    savepoint.location
}

async fn restore_at(parallelism: u32, end: End) {
    let dir = tempfile::tempdir().unwrap();
    let (storage, out) = (dir.path().join("checkpoints"), dir.path().join("out"));
    let location = savepoint_at_parallelism_2(&dir.path().join("first"), &storage, &out, end).await;
    // The savepoint's completion may reach the sinks before or after the cancellation; what
    // they had pending is committed by the restored run either way.
    let before = read_rows(&out).len();

    let work = dir.path().join("second");
    let mut spec = spec("sql", &work, parallelism, 1)
        .arg("sql", job(&out))
        .arg("parallelism", parallelism);
    spec.checkpoints = Some(checkpoints(&storage, Some(location), end));
    let outcome = run_to_end(spec).await;
    assert!(outcome.status.checkpoints.unwrap_or_default().restored_from > 0);
    let mut got = read_rows(&out);
    got.sort();
    let want = reference();
    assert!(
        got == want,
        "restored at parallelism {parallelism}: {} rows ({before} before the savepoint), want {}",
        got.len(),
        want.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_savepoint_at_parallelism_2_restores_at_3() {
    restore_at(3, End::SavepointThenCancel).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_savepoint_at_parallelism_2_restores_at_1() {
    restore_at(1, End::SavepointThenCancel).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_with_savepoint_commits_nothing_after_it_and_its_restore_completes_the_output() {
    restore_at(2, End::StopWithSavepoint).await;
}

/// A state file of the right size with other bytes (bit rot, a bad copy) fails the restore at
/// once, naming the file: restoring the same snapshot again cannot succeed, so the job is not
/// restarted over and over until its restart strategy gives up.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_state_file_fails_the_restore_at_once_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, out) = (dir.path().join("checkpoints"), dir.path().join("out"));
    let location = savepoint_at_parallelism_2(
        &dir.path().join("first"),
        &storage,
        &out,
        End::SavepointThenCancel,
    )
    .await;
    // The largest file the savepoint refers to: keyed state, in its own directory or shared.
    let mut files: Vec<(u64, std::path::PathBuf)> = Vec::new();
    let mut pending = vec![storage.clone()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if !path.ends_with("_metadata") {
                files.push((entry.metadata().unwrap().len(), path));
            }
        }
    }
    let (size, victim) = files.into_iter().max().expect("state files");
    let mut bytes = std::fs::read(&victim).unwrap();
    for byte in bytes.iter_mut().take(64) {
        *byte = !*byte;
    }
    std::fs::write(&victim, &bytes).unwrap();
    assert_eq!(std::fs::metadata(&victim).unwrap().len(), size);

    let work = dir.path().join("second");
    let mut spec = spec("sql", &work, 2, 1)
        .arg("sql", job(&out))
        .arg("parallelism", 2);
    spec.checkpoints = Some(CheckpointSpec {
        // Restarts allowed: the corrupt file must not use them.
        restart: Vec::new(),
        ..checkpoints(&storage, Some(location), End::SavepointThenCancel)
    });
    let cluster = LocalCluster::start(spec).await.expect("cluster starts");
    let outcome = cluster.wait().await.expect("cluster ends");
    let status = outcome.status;
    assert_eq!(status.state, JobState::Failed as i32, "{}", status.failure);
    assert_eq!(status.restarts, 0, "{}", status.failure);
    let name = victim.file_name().unwrap().to_string_lossy();
    assert!(
        status.failure.contains("corrupt") && status.failure.contains(name.as_ref()),
        "{}",
        status.failure
    );
}
