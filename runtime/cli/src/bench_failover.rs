//! `spate bench-failover`: how fast a job with large keyed state recovers from a failed task, a
//! killed worker and a killed JobMaster, on the embedded cluster (real processes).
//!
//! Each scenario starts a fresh cluster (2 workers x 1 slot), lets the checkpointed state grow to
//! the target, injects the failure, and polls the JobMaster's status every 50 ms to time
//! detection and the return of the data flow. Task metrics reach the JobMaster with the workers'
//! heartbeats (every 500 ms), so "flowing again" is seen up to one heartbeat late.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use spate_cluster::{CheckpointSpec, ClusterSpec, LocalCluster};
use spate_graph::{JobGraph, pipelined_regions};
use spate_proto::v1::{JobState, JobStatus, TaskState};

use crate::bench::cpu_model;
use crate::cli::BenchFailoverArgs;

const POLL: Duration = Duration::from_millis(50);
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
const FILL_TIMEOUT: Duration = Duration::from_secs(600);
const DETECT_TIMEOUT: Duration = Duration::from_secs(120);
const FLOW_TIMEOUT: Duration = Duration::from_secs(180);
const END_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of one open window of window-count in a heap snapshot: an 88-byte map entry (8-byte
/// key in row format, window bounds, five accumulators), its 23-byte timer and a little framing.
/// Sizes the key space.
const ENTRY_BYTES: u64 = 114;
/// Records a passthrough subtask reads before its injected failure, in seconds of its rate.
const PASSTHROUGH_FAIL_AFTER_S: u64 = 10;

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// `inject_failure`: the first attempt of one subtask fails after reading some records.
    Inject,
    /// SIGKILL of a worker process.
    KillWorker(usize),
    /// SIGKILL of the JobMaster process.
    KillJobMaster,
}

/// What one scenario measured.
struct Measured {
    label: String,
    job: String,
    /// Checkpointed state per measured task (window tasks; the pipelines for passthrough) in
    /// the latest checkpoint before the failure.
    state_per_task: u64,
    detection: Option<Duration>,
    /// Failure to every task running again (restarted tasks: deployed, restored and connected).
    running: Option<Duration>,
    /// Failure to every task running and the measured tasks' input counters growing again.
    flowing: Option<Duration>,
    downloaded: u64,
    local: u64,
    /// Tasks whose current attempt is above 0, of all tasks.
    restarted: usize,
    tasks: usize,
    task_restarts: u32,
    restarts: u32,
    /// The smallest input count of the measured tasks at the failure.
    records_at_failure: u64,
    note: String,
}

struct Job {
    name: &'static str,
    args: BTreeMap<String, String>,
    tasks: usize,
    regions: usize,
    /// (vertex, subtask) of the tasks whose input must flow again: those of vertices fed by an
    /// exchange (the windows), or every task of a job without exchanges.
    measured: Vec<(u32, u32)>,
}

impl Job {
    fn new(name: &'static str, args: BTreeMap<String, String>) -> anyhow::Result<Self> {
        let graph = JobGraph::build(spate_jobs::build(name, &args)?)?;
        let fed: Vec<u32> = graph.edges.iter().map(|e| e.to).collect();
        let measured = graph
            .vertices
            .iter()
            .filter(|v| fed.is_empty() || fed.contains(&v.id))
            .flat_map(|v| (0..v.parallelism).map(move |s| (v.id, s)))
            .collect();
        Ok(Job {
            name,
            tasks: graph.vertices.iter().map(|v| v.parallelism as usize).sum(),
            regions: pipelined_regions(&graph).len(),
            measured,
            args,
        })
    }

    fn label(&self) -> String {
        let regions = match self.regions {
            1 => "1 region".to_string(),
            n => format!("{n} regions"),
        };
        format!("{} ({} tasks, {regions})", self.name, self.tasks)
    }
}

async fn poll(cluster: &mut LocalCluster) -> Option<JobStatus> {
    tokio::time::timeout(STATUS_TIMEOUT, cluster.status())
        .await
        .ok()?
        .ok()
}

fn task_key(status: &spate_proto::v1::TaskStatus) -> (u32, u32, u32) {
    status.task.as_ref().map_or((u32::MAX, u32::MAX, 0), |t| {
        (t.vertex, t.subtask, t.attempt)
    })
}

fn records_in(status: &spate_proto::v1::TaskStatus) -> u64 {
    status.metrics.as_ref().map_or(0, |m| m.records_in)
}

fn all_running(status: &JobStatus, tasks: usize) -> bool {
    status.tasks.len() == tasks
        && status
            .tasks
            .iter()
            .all(|t| t.state == TaskState::Running as i32)
}

fn state_bytes(status: &JobStatus) -> u64 {
    status
        .checkpoints
        .as_ref()
        .map_or(0, |c| c.latest_state_bytes)
}

fn completed_checkpoints(status: &JobStatus) -> u64 {
    status.checkpoints.as_ref().map_or(0, |c| c.completed)
}

/// The time of an RFC 3339 UTC timestamp `YYYY-MM-DDTHH:MM:SS.ffffffZ` (as the logs write it).
fn parse_utc(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (hms.next()??, hms.next()??, hms.next()??);
    let digits = fraction.len().min(9);
    let nanos = fraction[..digits].parse::<u64>().ok()? * 10u64.pow(9 - digits as u32);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// The time a worker logged "task failed" (the injected failure), earliest of all workers.
fn logged_failure(work_dir: &Path) -> Option<SystemTime> {
    let mut earliest: Option<SystemTime> = None;
    for entry in std::fs::read_dir(work_dir.join("logs")).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("worker") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("task failed")) {
            // The log is colored: drop the escape sequences; the timestamp comes first.
            let mut plain = String::with_capacity(line.len());
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    plain.push(c);
                }
            }
            if let Some(at) = plain.split_whitespace().next().and_then(parse_utc) {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
    }
    earliest
}

/// The instant of `at`, a wall-clock time in the past.
fn instant_of(at: SystemTime) -> Instant {
    let ago = SystemTime::now().duration_since(at).unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

struct Settings {
    target: u64,
    interval_ms: u64,
    heartbeat_timeout_ms: u64,
    log_filter: String,
    keep_logs: bool,
}

/// Runs one scenario on a fresh cluster, then cancels the job and removes its directory.
async fn scenario(
    settings: &Settings,
    label: &str,
    job: &Job,
    fault: Fault,
    inject: Option<String>,
) -> anyhow::Result<Measured> {
    // "(b) kill -9 of worker 1" -> "b": one directory per scenario, for --keep-logs.
    let kind: String = label
        .chars()
        .filter(char::is_ascii_lowercase)
        .take(1)
        .collect();
    let work_dir = std::env::temp_dir().join(format!(
        "spate-bench-failover-{kind}-{}-{}",
        job.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&work_dir);
    let mut spec = ClusterSpec::new(std::env::current_exe()?, job.name, &work_dir);
    spec.job_args = job.args.clone();
    spec.workers = 2;
    spec.slots_per_worker = 1;
    spec.log_filter = settings.log_filter.clone();
    spec.heartbeat_timeout_ms = settings.heartbeat_timeout_ms;
    spec.inject_failure = inject;
    spec.checkpoints = Some(CheckpointSpec {
        interval_ms: settings.interval_ms,
        state_backend: "heap".into(),
        ..CheckpointSpec::default()
    });
    println!("{label}: {}", job.label());
    let mut cluster = LocalCluster::start(spec).await?;
    let measured = measure(settings, label, job, fault, &mut cluster, &work_dir).await;
    if let Err(e) = &measured {
        println!(
            "  failed: {e:#}; logs in {}",
            work_dir.join("logs").display()
        );
    }
    let _ = cluster.cancel("bench-failover: measured").await;
    match tokio::time::timeout(END_TIMEOUT, cluster.wait()).await {
        Ok(Ok(outcome)) if outcome.status.state == JobState::Canceled as i32 => {}
        Ok(Ok(outcome)) => println!(
            "  the job ended {:?}: {}",
            JobState::try_from(outcome.status.state).unwrap_or(JobState::Unspecified),
            outcome.status.failure
        ),
        Ok(Err(e)) => println!("  ending the cluster: {e}"),
        Err(_) => println!("  the cluster did not end within {END_TIMEOUT:?}; killed"),
    }
    // Keep only the logs of a failed scenario, unless asked for all: the state is large.
    if measured.is_ok() && !settings.keep_logs {
        let _ = std::fs::remove_dir_all(&work_dir);
    } else {
        if settings.keep_logs {
            println!("  logs in {}", work_dir.join("logs").display());
        }
        let _ = std::fs::remove_dir_all(work_dir.join("state"));
        let _ = std::fs::remove_dir_all(work_dir.join("checkpoints"));
    }
    measured
}

async fn measure(
    settings: &Settings,
    label: &str,
    job: &Job,
    fault: Fault,
    cluster: &mut LocalCluster,
    work_dir: &Path,
) -> anyhow::Result<Measured> {
    let windows = job.measured.len() as u64;
    let fills = job.name == "window-count";
    let started = Instant::now();
    let mut last_report = Instant::now();
    // Phase 1: every task running (and the state at its target), until the failure.
    let mut pre: Option<JobStatus> = None;
    let mut detected: Option<(Instant, JobStatus)> = None;
    loop {
        if started.elapsed() > FILL_TIMEOUT {
            bail!("the job did not reach its state or failure within {FILL_TIMEOUT:?}");
        }
        let Some(status) = poll(cluster).await else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        if status.state != JobState::Running as i32 && status.state != JobState::Created as i32 {
            bail!("the job ended early: {}", status.failure);
        }
        let running = all_running(&status, job.tasks);
        if fault == Fault::Inject && pre.is_some() && (!running || status.restarts > 0) {
            detected = Some((Instant::now(), status));
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            println!(
                "  {:>4.0} s: {} checkpoints, {} per measured task",
                started.elapsed().as_secs_f64(),
                completed_checkpoints(&status),
                bytes(state_bytes(&status) / windows)
            );
        }
        if running {
            let ready = !fills || state_bytes(&status) / windows >= settings.target;
            pre = Some(status);
            if ready && fault != Fault::Inject {
                break;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let pre = pre.context("no status before the failure")?;

    // Phase 2: the failure and its detection.
    let mut failed_at = Instant::now();
    let old_jobmaster = cluster.jobmaster_pid();
    match fault {
        Fault::KillWorker(index) => cluster.kill_worker(index)?,
        Fault::KillJobMaster => cluster.kill_jobmaster()?,
        Fault::Inject => {}
    }
    let (detected_at, at_detection) = match detected {
        Some(found) => found,
        None => loop {
            if failed_at.elapsed() > DETECT_TIMEOUT {
                bail!("the failure was not detected within {DETECT_TIMEOUT:?}");
            }
            let replaced =
                fault != Fault::KillJobMaster || cluster.jobmaster_pid() != old_jobmaster;
            if replaced && let Some(status) = poll(cluster).await {
                let seen = match fault {
                    Fault::KillJobMaster => true,
                    _ => status.restarts > pre.restarts || !all_running(&status, job.tasks),
                };
                if seen {
                    break (Instant::now(), status);
                }
            }
            tokio::time::sleep(POLL).await;
        },
    };
    let mut failures = BTreeMap::new();
    task_failures(&at_detection, &mut failures);
    let mut note = String::new();
    if fault == Fault::Inject {
        match logged_failure(work_dir) {
            Some(at) => failed_at = instant_of(at).min(detected_at),
            None => {
                failed_at = detected_at;
                note.push_str("failure time not found in the worker logs; timed from detection. ");
            }
        }
    }

    // Phase 3: every task running and the measured tasks reading again in their attempt.
    let attempts: BTreeMap<(u32, u32), u32> = pre
        .tasks
        .iter()
        .map(|t| {
            let (v, s, a) = task_key(t);
            ((v, s), a)
        })
        .collect();
    let mut baselines: BTreeMap<(u32, u32, u32), u64> = BTreeMap::new();
    let mut running_at: Option<Instant> = None;
    let (flowing_at, last) = loop {
        if detected_at.elapsed() > FLOW_TIMEOUT {
            bail!("the output did not flow again within {FLOW_TIMEOUT:?} of the detection");
        }
        if let Some(status) = poll(cluster).await {
            if status.state != JobState::Running as i32 && status.state != JobState::Created as i32
            {
                bail!("the job ended: {}", status.failure);
            }
            let moved = status
                .tasks
                .iter()
                .filter(|t| {
                    let (v, s, a) = task_key(t);
                    attempts.get(&(v, s)) != Some(&a)
                })
                .count() as u32;
            let restarted_all = moved >= status.task_restarts.saturating_sub(pre.task_restarts)
                && (fault == Fault::KillJobMaster || status.restarts > pre.restarts);
            task_failures(&status, &mut failures);
            let mut flowing = all_running(&status, job.tasks) && restarted_all;
            if flowing {
                running_at.get_or_insert_with(Instant::now);
            }
            for task in &status.tasks {
                let (v, s, a) = task_key(task);
                if !job.measured.contains(&(v, s)) {
                    continue;
                }
                let n = records_in(task);
                let baseline = if attempts.get(&(v, s)) == Some(&a) {
                    *baselines.entry((v, s, a)).or_insert(n)
                } else {
                    0
                };
                flowing &= n > baseline;
            }
            if flowing {
                break (Instant::now(), status);
            }
        }
        tokio::time::sleep(POLL).await;
    };
    let (mut downloaded, mut local) = (0, 0);
    for task in &last.tasks {
        if let Some(m) = &task.metrics {
            downloaded += m.restored_bytes_downloaded;
            local += m.restored_bytes_local;
        }
    }
    let restarted = last.tasks.iter().filter(|t| task_key(t).2 > 0).count();
    let records_at_failure = pre
        .tasks
        .iter()
        .filter(|t| {
            let (v, s, _) = task_key(t);
            job.measured.contains(&(v, s))
        })
        .map(records_in)
        .min()
        .unwrap_or(0);
    let measured = Measured {
        label: label.to_string(),
        job: job.label(),
        state_per_task: state_bytes(&pre) / windows,
        detection: Some(detected_at.saturating_duration_since(failed_at)),
        running: running_at.map(|at| at.saturating_duration_since(failed_at)),
        flowing: Some(flowing_at.saturating_duration_since(failed_at)),
        downloaded,
        local,
        restarted,
        tasks: job.tasks,
        task_restarts: last.task_restarts,
        restarts: last.restarts,
        records_at_failure,
        note,
    };
    for ((v, s, a), (worker, failure)) in &failures {
        println!("  task {v}/{s} attempt {a} on {worker} failed: {failure}");
    }
    println!(
        "  state {} per measured task; detected after {}, running after {}, flowing after {}; restored {} downloaded, {} local; {} of {} tasks restarted (task_restarts {}, restarts {})",
        bytes(measured.state_per_task),
        secs(measured.detection),
        secs(measured.running),
        secs(measured.flowing),
        bytes(downloaded),
        bytes(local),
        restarted,
        job.tasks,
        last.task_restarts,
        last.restarts
    );
    Ok(measured)
}

/// Adds the failures the tasks of `status` report: (vertex, subtask, attempt) -> (worker, why).
fn task_failures(status: &JobStatus, into: &mut BTreeMap<(u32, u32, u32), (String, String)>) {
    for task in status.tasks.iter().filter(|t| !t.failure.is_empty()) {
        into.entry(task_key(task))
            .or_insert_with(|| (task.worker_id.clone(), task.failure.clone()));
    }
}

fn bytes(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{:.1} kB", n as f64 / 1e3)
    } else {
        format!("{n} B")
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

pub async fn bench_failover(args: BenchFailoverArgs) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let machine = format!("{} cores, {}", cores, cpu_model());
    let target = args.state_mb * 1_000_000;
    // Enough distinct keys that nearly every record opens a new window: ten times the keys
    // the two window tasks hold at the target.
    let keys = args
        .keys
        .unwrap_or_else(|| (10 * 2 * target / ENTRY_BYTES).max(1_000));
    println!(
        "machine: {machine}; target {} of checkpointed state per window task; {} events/s per source subtask, {keys} keys; checkpoints every {} ms (heap backend); heartbeat timeout {} ms",
        bytes(target),
        args.rate,
        args.checkpoint_interval_ms,
        args.heartbeat_timeout_ms
    );
    let settings = Settings {
        target,
        interval_ms: args.checkpoint_interval_ms,
        heartbeat_timeout_ms: args.heartbeat_timeout_ms,
        log_filter: args.log_filter.clone(),
        keep_logs: args.keep_logs,
    };
    let window_args: BTreeMap<String, String> = [
        ("parallelism", "2".to_string()),
        ("events", "-1".to_string()),
        ("rate", args.rate.to_string()),
        ("keys", keys.to_string()),
        ("window", "tumble:3600000".to_string()),
        // 1 µs of event time per event, so the hour's pane never fires: state only grows.
        ("interval-us", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let window_count = Job::new("window-count", window_args)?;
    let passthrough_args: BTreeMap<String, String> = [
        ("parallelism", "2".to_string()),
        ("events", "-1".to_string()),
        ("rate", args.rate.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let passthrough = Job::new("passthrough", passthrough_args)?;
    let window_vertex = window_count.measured.first().map_or(1, |&(v, _)| v);
    let source_vertex = passthrough.measured.first().map_or(0, |&(v, _)| v);

    // (b) first: it calibrates how many records a window task reads until its checkpointed
    // state reaches the target, which is where (a)'s injected failure strikes, one second of
    // input later (the counters the JobMaster shows are up to a heartbeat old).
    let killed = scenario(
        &settings,
        "(b) kill -9 of worker 1",
        &window_count,
        Fault::KillWorker(1),
        None,
    )
    .await;
    let fail_after = killed
        .as_ref()
        .ok()
        .map(|m| m.records_at_failure + args.rate)
        .filter(|&n| n > args.rate)
        .unwrap_or_else(|| {
            // Records per window task until its distinct keys fill the target, plus a
            // checkpoint interval's worth for the checkpoint to catch up.
            let per_task_keys = (keys / 2) as f64;
            let wanted = (target / ENTRY_BYTES) as f64;
            let records = -per_task_keys * (1.0 - (wanted / per_task_keys).min(0.99)).ln();
            records as u64 + args.rate * args.checkpoint_interval_ms / 1000
        });
    let injected = scenario(
        &settings,
        "(a) injected failure of window subtask 0",
        &window_count,
        Fault::Inject,
        Some(format!("{window_vertex}/0/{fail_after}")),
    )
    .await;
    let pipeline = scenario(
        &settings,
        "(a) injected failure of pipeline 1",
        &passthrough,
        Fault::Inject,
        Some(format!(
            "{source_vertex}/1/{}",
            args.rate * PASSTHROUGH_FAIL_AFTER_S
        )),
    )
    .await;
    let jobmaster = scenario(
        &settings,
        "(c) kill -9 of the JobMaster",
        &window_count,
        Fault::KillJobMaster,
        None,
    )
    .await;

    let mut rows = Vec::new();
    let mut aims = Vec::new();
    let mut failed = false;
    for (result, kind) in [
        (injected, 'a'),
        (pipeline, 'p'),
        (killed, 'b'),
        (jobmaster, 'c'),
    ] {
        let m = match result {
            Ok(m) => m,
            Err(e) => {
                failed = true;
                rows.push(format!("| {kind}: failed: {e:#} | | | | | | | | |"));
                continue;
            }
        };
        let after_detection = match (m.detection, m.flowing) {
            (Some(d), Some(f)) => Some(f.saturating_sub(d)),
            _ => None,
        };
        let note = match kind {
            'a' => {
                "window-count is one pipelined region (keyed exchange): every task restarts, in its own slot"
            }
            'p' => {
                "forward-only pipelines are a region each: only the failed one restarts; its state is the source position, kept in the checkpoint's metadata (0 B of state files)"
            }
            'b' => {
                "the killed worker's tasks move to its replacement and download; the survivors restore locally"
            }
            _ => "the replacement JobMaster adopts the running tasks",
        };
        rows.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} of {} (task_restarts {}) | {}{} |",
            m.label,
            m.job,
            bytes(m.state_per_task),
            secs(m.detection),
            secs(m.running),
            secs(m.flowing),
            secs(after_detection),
            bytes(m.downloaded),
            bytes(m.local),
            m.restarted,
            m.tasks,
            m.task_restarts,
            m.note,
            note
        ));
        let detection_met = m.detection.is_some_and(|d| d <= Duration::from_secs(3));
        aims.push(format!(
            "{}: detection {} ≤ 3 s: **{}**",
            m.label,
            secs(m.detection),
            verdict(detection_met)
        ));
        if kind == 'b' {
            aims.push(format!(
                "{}: flowing again {} after detection ≤ 5 s: **{}**",
                m.label,
                secs(after_detection),
                verdict(after_detection.is_some_and(|d| d <= Duration::from_secs(5)))
            ));
        }
        if kind == 'c' {
            aims.push(format!(
                "{}: {} restarted tasks (restarts {}), zero wanted: **{}**",
                m.label,
                m.restarted,
                m.restarts,
                verdict(m.restarted == 0 && m.task_restarts == 0 && m.restarts == 0)
            ));
        }
    }
    let header = "| scenario | job | checkpointed state per measured task | detection | all tasks running again | flowing again (from failure) | flowing again (from detection) | restored: downloaded / local | tasks restarted | notes |";
    let rule = "|---|---|---|---|---|---|---|---|---|---|";
    println!("\n{header}\n{rule}");
    for row in &rows {
        println!("{row}");
    }
    println!();
    for aim in &aims {
        println!("{aim}");
    }
    if let Some(path) = args.markdown {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(
            file,
            "\nMachine: {machine}. Command: `spate bench-failover --state-mb {} --rate {} --checkpoint-interval-ms {} --heartbeat-timeout-ms {}` ({keys} keys).\n",
            args.state_mb, args.rate, args.checkpoint_interval_ms, args.heartbeat_timeout_ms
        )?;
        writeln!(file, "{header}\n{rule}")?;
        for row in &rows {
            writeln!(file, "{row}")?;
        }
        writeln!(file)?;
        for aim in &aims {
            writeln!(file, "* {aim}")?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_timestamps() {
        let at = parse_utc("2026-11-21T10:33:57.630457Z").unwrap();
        let since = at.duration_since(UNIX_EPOCH).unwrap();
        // date -u -d 2026-11-21T10:33:57Z +%s
        assert_eq!(since.as_secs(), 1_795_257_237);
        assert_eq!(since.subsec_micros(), 630_457);
        assert!(parse_utc("2026-11-21 10:33:57").is_none());
    }
}
