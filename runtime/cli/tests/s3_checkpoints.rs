//! Checkpoints of a real job in a real S3-compatible store (MinIO), through the `spate` CLI as a
//! user runs it: `spate run --checkpoint-dir s3://... --storage-option ...`, `spate savepoint`,
//! and `spate run --from s3://...` at another parallelism. The bucket is read back through the
//! checkpoint storage (object_store over HTTP, not MinIO's data directory): completed
//! checkpoints with their `_metadata` and every state file they reference, a self-contained
//! savepoint. What the first run committed plus what the restored run committed must equal the
//! brute-force reference exactly (a restore that ignored the snapshot would emit committed
//! windows again), and the restored run must report the snapshot it started from.
//!
//! No job the binary runs has shared (incremental RocksDB) files: the window operator snapshots
//! its own structures as one private file per subtask whatever `--state-backend` says, and only
//! DataStream keyed process functions use the state backend. Shared files on MinIO are covered
//! by `spate-checkpoint`'s `tests/storage.rs`; the check below that every referenced file is
//! where the layout puts it (`<job>/shared/` or the checkpoint's directory) covers them here as
//! soon as a job has them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{hop_counts, logs, spate};
use prost::Message;
use spate_checkpoint::{CompletedSnapshot, SnapshotLocation, StorageOptions};
use spate_proto::v1::job_master_client::JobMasterClient;
use spate_proto::v1::{CheckpointStats, GetJobStatusRequest, JobState, JobStatus, SnapshotKind};
use spate_testkit::minio::{ACCESS_KEY, SECRET_KEY};
use spate_testkit::{Minio, listing};
use tonic::transport::Channel;

const EVENTS: u64 = 500_000;
/// Wall-clock events per second per source subtask: the first run lasts long enough for
/// checkpoints, a failure and a recovery before it is killed.
const RATE: u64 = 20_000;
/// Bounds every wait of the test, so a stuck job fails it instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(120);

fn job(out: &Path) -> String {
    format!(
        "CREATE TABLE bid (
            auction BIGINT, price BIGINT, dateTime TIMESTAMP(3),
            WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
        ) WITH (
            'connector' = 'nexmark', 'nexmark.table' = 'bid',
            'events' = '{EVENTS}', 'rate' = '{RATE}', 'batch-size' = '500'
        );
        CREATE TABLE out (auction BIGINT, s TIMESTAMP(3), n BIGINT, m BIGINT)
        WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
        INSERT INTO out
        SELECT auction, HOP_START(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND),
               COUNT(*), MAX(price)
        FROM bid GROUP BY auction, HOP(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND);",
        out.display()
    )
}

fn reference() -> Vec<Vec<String>> {
    hop_counts(EVENTS)
}

/// The committed part files under `out`, by name (hidden files are in progress or uncommitted,
/// and readers skip them).
fn committed_files(out: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .map(|name| {
            let text = std::fs::read_to_string(out.join(&name)).expect("part file");
            (name, text)
        })
        .collect()
}

/// The committed output equals the reference exactly, and every file the first run committed
/// is still there unchanged: a restored run never rewrites committed output. (A run that ignored
/// its snapshot would: its checkpoint ids, and with them its file names, start again at 1.)
fn assert_exactly_once(out: &Path, first: &BTreeMap<String, String>) {
    let files = committed_files(out);
    for (name, text) in first {
        let now = files.get(name);
        assert!(
            now == Some(text),
            "{name}, committed by the first run, was {} by the restored run",
            if now.is_some() {
                "rewritten"
            } else {
                "removed"
            }
        );
    }
    let mut got: Vec<Vec<String>> = files
        .values()
        .flat_map(|text| text.lines())
        .map(|line| line.split(',').map(str::to_string).collect())
        .collect();
    got.sort();
    let want = reference();
    let missing = want
        .iter()
        .filter(|w| got.binary_search(w).is_err())
        .count();
    let extra = got.len() as i64 - want.len() as i64 + missing as i64;
    let before: usize = first.values().map(|text| text.lines().count()).sum();
    assert!(
        got == want,
        "committed output differs from the reference: {} rows ({before} committed by the first \
         run), want {}; {missing} missing, {extra} extra or duplicated",
        got.len(),
        want.len()
    );
}

/// `spate run` flags: checkpoints into `root` every `interval_ms`.
fn flags(
    parallelism: u32,
    interval_ms: u64,
    root: &str,
    options: &BTreeMap<String, String>,
    from: Option<&str>,
) -> Vec<String> {
    let mut flags: Vec<String> = [
        "-p",
        &parallelism.to_string(),
        "--checkpoint-interval-ms",
        &interval_ms.to_string(),
        "--checkpoint-dir",
        root,
    ]
    .map(String::from)
    .into();
    for (key, value) in options {
        flags.push("--storage-option".into());
        flags.push(format!("{key}={value}"));
    }
    if let Some(from) = from {
        flags.push("--from".into());
        flags.push(from.into());
    }
    flags
}

fn stats(status: &JobStatus) -> CheckpointStats {
    status.checkpoints.clone().unwrap_or_default()
}

fn records_in(status: &JobStatus) -> u64 {
    status
        .tasks
        .iter()
        .map(|t| t.metrics.as_ref().map_or(0, |m| m.records_in))
        .sum()
}

/// State bytes the job's current tasks restored by reading checkpoint storage (rather than a
/// worker's local copy).
fn downloaded(status: &JobStatus) -> u64 {
    status
        .tasks
        .iter()
        .map(|t| {
            t.metrics
                .as_ref()
                .map_or(0, |m| m.restored_bytes_downloaded)
        })
        .sum()
}

/// A process as /proc shows it.
struct Process {
    pid: i32,
    group: i32,
    zombie: bool,
}

fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
            let zombie = fields.next()? == "Z";
            let _ppid = fields.next()?;
            let group = fields.next()?.parse().ok()?;
            Some(Process { pid, group, zombie })
        })
        .collect()
}

fn command_line(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// One `spate run`: it, its JobMaster and its workers share a process group of their own.
struct Run {
    child: tokio::process::Child,
    /// The process group, which is `spate run`'s pid.
    group: i32,
    work: PathBuf,
}

impl Run {
    /// Starts `spate run` on `sql` with `flags`, its environment's AWS variables replaced by
    /// `env` (so credentials come only from where the test says).
    fn start(work: &Path, sql: &Path, flags: &[String], env: &[(&str, &str)]) -> Run {
        std::fs::create_dir_all(work).unwrap();
        let mut command = tokio::process::Command::new(spate());
        command
            .arg("run")
            .arg(sql)
            .arg("--work-dir")
            .arg(work)
            .arg("--slots")
            .arg("1")
            .arg("--quiet")
            .args(flags);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                command.env_remove(key);
            }
        }
        command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(work.join("run.out")).unwrap())
            .stderr(File::create(work.join("run.err")).unwrap())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; `spate run` dies with the test (and its children
        // with it), even when the test process is killed without unwinding.
        #[cfg(target_os = "linux")]
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("starting spate run");
        let group = child.id().expect("running") as i32;
        Run {
            child,
            group,
            work: work.to_path_buf(),
        }
    }

    /// What `spate run` and its cluster said, for a failing assertion's message.
    fn output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.work.join(name)).unwrap_or_default();
        format!(
            "--- spate run stdout\n{}\n--- spate run stderr\n{}\n{}",
            read("run.out"),
            read("run.err"),
            logs(&self.work)
        )
    }

    /// The JobMaster's address, once it listens.
    async fn address(&mut self) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(address) = std::fs::read_to_string(self.work.join("jobmaster.addr")) {
                return address;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("spate run exited with {exit} early:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "no JobMaster address:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn client(&mut self) -> JobMasterClient<Channel> {
        let address = self.address().await;
        JobMasterClient::connect(format!("http://{address}"))
            .await
            .unwrap_or_else(|e| panic!("JobMaster at {address}: {e}\n{}", self.output()))
    }

    /// Polls the job's status until `done` says so.
    async fn wait_for(
        &self,
        client: &mut JobMasterClient<Channel>,
        what: &str,
        mut done: impl FnMut(&JobStatus) -> bool,
    ) -> JobStatus {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(status) = client.get_job_status(GetJobStatusRequest {}).await {
                let status = status.into_inner();
                if done(&status) {
                    return status;
                }
                last = Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "waited {PATIENCE:?} for {what}; last status {last:?}\n{}",
            self.output()
        );
    }

    /// The live (not yet reaped) processes of the run.
    fn members(&self) -> Vec<Process> {
        processes()
            .into_iter()
            .filter(|p| p.group == self.group && !p.zombie)
            .collect()
    }

    /// The pids of the run's workers (processes of its group running `spate worker`: children
    /// of its JobMaster).
    fn worker_pids(&self) -> Vec<i32> {
        self.members()
            .into_iter()
            .filter(|p| command_line(p.pid).get(1).map(String::as_str) == Some("worker"))
            .map(|p| p.pid)
            .collect()
    }

    /// Kills `spate run`, its JobMaster and its workers at once (SIGKILL), as losing the whole
    /// cluster would, and waits until none of them is left.
    async fn kill_all(&mut self) {
        // SAFETY: signals a process group this test created and that is still alive (`spate
        // run`, its leader, is not reaped until the wait below).
        unsafe { libc::kill(-self.group, libc::SIGKILL) };
        self.child.wait().await.expect("spate run reaped");
        let deadline = Instant::now() + PATIENCE;
        while !self.members().is_empty() {
            assert!(
                Instant::now() < deadline,
                "processes of the run outlived SIGKILL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `spate run` to finish the job; returns the JobMaster's final status.
    async fn finish(mut self) -> JobStatus {
        let exit = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the job did not finish:\n{}", self.output()))
            .expect("spate run reaped");
        assert!(
            exit.success(),
            "spate run exited with {exit}:\n{}",
            self.output()
        );
        let bytes = std::fs::read(self.work.join("status.pb")).expect("final status");
        JobStatus::decode(bytes.as_slice()).expect("final status")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // A failed test leaves no process behind (the JobMaster and workers die with `spate
        // run` anyway, by PR_SET_PDEATHSIG).
        if !self.members().is_empty() {
            // SAFETY: signals this test's own process group, which still has members.
            unsafe { libc::kill(-self.group, libc::SIGKILL) };
        }
    }
}

/// Takes a savepoint with `spate savepoint`; returns the location it prints.
async fn savepoint(jobmaster: &str) -> String {
    let output = tokio::process::Command::new(spate())
        .arg("savepoint")
        .arg("--jobmaster")
        .arg(jobmaster)
        .output()
        .await
        .expect("running spate savepoint");
    assert!(
        output.status.success(),
        "spate savepoint: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

/// Completed (`_metadata`) checkpoint ids among `objects` of `job`.
fn checkpoint_ids(objects: &BTreeSet<String>, job: &str) -> BTreeSet<u64> {
    let prefix = format!("{job}/chk-");
    objects
        .iter()
        .filter_map(|o| {
            o.strip_prefix(&prefix)?
                .strip_suffix("/_metadata")?
                .parse()
                .ok()
        })
        .collect()
}

/// Every file a snapshot's keyed state references, relative to the storage root.
fn referenced_files(snapshot: &CompletedSnapshot) -> Vec<(String, bool)> {
    snapshot
        .metadata
        .states
        .iter()
        .filter_map(|s| s.keyed.as_ref())
        .flat_map(|keyed| keyed.files.iter())
        .map(|f| (f.path.clone(), f.shared))
        .collect()
}

/// `text` without its terminal colour sequences (the logs have them).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then one final letter.
            chars.by_ref().find(char::is_ascii_alphabetic);
        } else {
            plain.push(c);
        }
    }
    plain
}

/// That the JobMaster of a run logged restoring `location` (relative to the storage root).
fn assert_logged_restore(work: &Path, location: &SnapshotLocation) {
    let log = without_colours(
        &std::fs::read_to_string(work.join("logs/jobmaster.log")).unwrap_or_default(),
    );
    assert!(
        log.lines()
            .any(|l| l.contains("restoring") && l.contains(&format!("location={location}"))),
        "the JobMaster did not log restoring {location}:\n{log}"
    );
}

/// A keyed job at parallelism 2 checkpoints every second into MinIO (credentials from the
/// environment); a worker is killed and the job recovers once from its latest checkpoint in S3;
/// then the whole cluster is killed. The bucket holds completed checkpoints with their metadata
/// and the files they reference. `spate run -p 3 --from` the latest of them (credentials from a
/// credentials file) finishes the input exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_in_minio_survive_a_killed_worker_and_a_killed_cluster_and_restore_at_3() {
    let Some(minio) = Minio::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = dir.path().join("job.sql");
    std::fs::write(&sql, job(&out)).unwrap();
    let root = minio.url("checkpoints");
    let storage = minio
        .storage("checkpoints", StorageOptions::default())
        .await;

    // First run: credentials from the environment, as object_store reads them.
    let mut options = minio.storage_options();
    options.remove("credentials_file");
    let first_work = dir.path().join("first");
    let mut first = Run::start(
        &first_work,
        &sql,
        &flags(2, 1_000, &root, &options, None),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    );
    let mut client = first.client().await;
    let status = first
        .wait_for(&mut client, "two completed checkpoints", |s| {
            stats(s).completed >= 2
        })
        .await;
    let job = status.job_id.clone();
    assert!(
        stats(&status)
            .latest_location
            .starts_with(&format!("{root}/{job}/chk-")),
        "{:?}",
        stats(&status)
    );

    // A worker dies: the job restarts from its latest checkpoint, downloading it from S3.
    let workers = first.worker_pids();
    assert_eq!(workers.len(), 2, "{}", first.output());
    // SAFETY: a worker process of this test's own run.
    unsafe { libc::kill(workers[1], libc::SIGKILL) };
    let recovered = first
        .wait_for(&mut client, "a restart from a checkpoint", |s| {
            s.restarts >= 1 && stats(s).restored_from > 0
        })
        .await;
    assert_eq!(recovered.restarts, 1, "{}", recovered.failure);
    let restored_in_job = stats(&recovered).restored_from;
    let base = stats(&recovered).completed;
    let status = first
        .wait_for(&mut client, "a checkpoint after the recovery", |s| {
            stats(s).completed > base
        })
        .await;
    assert_eq!(
        status.state,
        JobState::Running as i32,
        "the job should still run when its cluster is killed (it read {} records)",
        records_in(&status)
    );
    // At least the replacement worker had no local copy of the checkpoint to restore.
    assert!(
        downloaded(&status) > 0,
        "the recovery read no state from S3: {status:?}"
    );

    // The whole cluster dies.
    first.kill_all().await;
    let first_output = committed_files(&out);
    assert!(!first_output.is_empty(), "the first run committed nothing");
    assert!(
        !first_work.join("checkpoints").exists(),
        "checkpoints went to the local default directory"
    );

    // The bucket, read over S3: completed checkpoints with their metadata, each referencing
    // only files that are there (`read_metadata` checks their sizes); the latest one's files
    // where the layout puts them.
    let objects = listing(&storage, &job).await;
    let ids = checkpoint_ids(&objects, &job);
    assert!(
        ids.len() >= 2,
        "completed checkpoints in the bucket: {objects:#?}"
    );
    for &id in &ids {
        let location = SnapshotLocation::checkpoint(&job, id).unwrap();
        let metadata = storage
            .read_metadata(&location, true)
            .await
            .unwrap_or_else(|e| panic!("{location}: {e}"));
        assert_eq!(metadata.kind(), SnapshotKind::Checkpoint, "{location}");
        assert_eq!(metadata.job_name, job);
    }
    let latest = storage
        .latest_completed(&job)
        .await
        .unwrap()
        .expect("a completed checkpoint");
    assert_eq!(Some(&latest.location.checkpoint_id()), ids.last());
    assert!(latest.location.checkpoint_id() > restored_in_job);
    let files = referenced_files(&latest);
    assert!(
        files.len() >= 2,
        "the windows of both subtasks should be in {}: {files:?}",
        latest.location
    );
    for (path, is_shared) in &files {
        assert!(objects.contains(path), "{path} is not in the bucket");
        let dir = if *is_shared {
            format!("{job}/shared/")
        } else {
            format!("{}/", latest.location)
        };
        assert!(path.starts_with(&dir), "{path} is not under {dir}");
    }

    // Second run: from the latest checkpoint, by its s3:// URL, at parallelism 3.
    let from = format!("{root}/{}", latest.location);
    let second_work = dir.path().join("second");
    let second = Run::start(
        &second_work,
        &sql,
        &flags(3, 1_000, &root, &minio.storage_options(), Some(&from)),
        &[],
    );
    let status = second.finish().await;
    assert_eq!(
        status.state,
        JobState::Finished as i32,
        "{}",
        status.failure
    );
    assert_eq!(status.restarts, 0, "{}", status.failure);
    assert_eq!(
        stats(&status).restored_from,
        latest.location.checkpoint_id(),
        "the restored run did not start from {from}"
    );
    assert_logged_restore(&second_work, &latest.location);
    assert!(
        downloaded(&status) > 0,
        "the restored run read no state from S3"
    );
    let second_objects = listing(&storage, &status.job_id).await;
    assert!(
        !checkpoint_ids(&second_objects, &status.job_id).is_empty(),
        "the restored run's checkpoints are not in the bucket: {second_objects:#?}"
    );

    assert_exactly_once(&out, &first_output);
}

/// `spate savepoint` of a job at parallelism 2 writes a self-contained savepoint into MinIO;
/// after the cluster is killed, `spate run -p 1 --from` its s3:// URL finishes the input
/// exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_savepoint_in_minio_restores_at_parallelism_1() {
    let Some(minio) = Minio::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = dir.path().join("job.sql");
    std::fs::write(&sql, job(&out)).unwrap();
    let root = minio.url("savepoints");
    let storage = minio.storage("savepoints", StorageOptions::default()).await;
    let options = minio.storage_options();

    // Only the savepoint (no periodic checkpoint): what the first run commits is what it covers.
    let first_work = dir.path().join("first");
    let mut first = Run::start(
        &first_work,
        &sql,
        &flags(2, 3_600_000, &root, &options, None),
        &[],
    );
    let mut client = first.client().await;
    let status = first
        .wait_for(&mut client, "windows to fire", |s| {
            records_in(s) > EVENTS / 2
        })
        .await;
    let job = status.job_id.clone();
    let location = savepoint(&first.address().await).await;
    assert!(
        location.starts_with(&format!("{root}/{job}/savepoints/sp-")),
        "savepoint location {location}"
    );
    // The savepoint's completion commits what the sinks had pending; wait for it, so that a
    // restore ignoring the savepoint would emit those windows twice.
    let deadline = Instant::now() + PATIENCE;
    while committed_files(&out).is_empty() {
        assert!(Instant::now() < deadline, "the savepoint committed nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill_all().await;
    let first_output = committed_files(&out);

    // The savepoint, read over S3: its metadata, and every file it references under its own
    // directory.
    let snapshot = storage.resolve(&location).unwrap();
    let metadata = storage
        .read_metadata(&snapshot, true)
        .await
        .unwrap_or_else(|e| panic!("{location}: {e}"));
    assert_eq!(metadata.kind(), SnapshotKind::Savepoint);
    let objects = listing(&storage, &snapshot.to_string()).await;
    assert!(
        objects.contains(&format!("{snapshot}/_metadata")),
        "{objects:#?}"
    );
    let files = referenced_files(&CompletedSnapshot {
        location: snapshot.clone(),
        metadata,
    });
    assert!(!files.is_empty(), "the savepoint holds no keyed state");
    for (path, _) in &files {
        assert!(
            objects.contains(path),
            "{path} is not in the savepoint's directory"
        );
    }

    let second_work = dir.path().join("second");
    let second = Run::start(
        &second_work,
        &sql,
        &flags(1, 1_000, &root, &options, Some(&location)),
        &[],
    );
    let status = second.finish().await;
    assert_eq!(
        status.state,
        JobState::Finished as i32,
        "{}",
        status.failure
    );
    assert_eq!(
        stats(&status).restored_from,
        snapshot.checkpoint_id(),
        "the restored run did not start from {location}"
    );
    assert_logged_restore(&second_work, &snapshot);
    assert!(
        downloaded(&status) > 0,
        "the restored run read no state from S3"
    );

    assert_exactly_once(&out, &first_output);
}
