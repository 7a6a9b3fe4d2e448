//! Runs the job matrix under a schedule of faults and checks every round's committed output
//! against its reference: zero rows lost, zero duplicated, and every round finished.
//!
//! All jobs run at once, each on its own embedded cluster (a JobMaster and two workers, real
//! processes), checkpointing every second to one MinIO server reached through a proxy that
//! injects network faults, with their local files (input, output, the workers' RocksDB and
//! local recovery copies) on one small disk that the schedule fills and slows. While the
//! schedule runs, a
//! job whose round ended starts another, so every fault finds jobs running; afterwards the
//! faults are healed and the last rounds finish.
//!
//! The jobs restart as Flink's default does with checkpointing (exponential delay, no limit
//! that a fault of this schedule reaches): a full disk fails tasks until it has room again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use spate_cluster::{CheckpointSpec, LocalCluster};
use spate_proto::v1::JobState;
use spate_testkit::kafka::Kafka;
use spate_testkit::{FaultyProxy, Minio, SlowDisk, SmallDisk};
use tempfile::TempDir;

use crate::common::{committed_rows, logs, read_rows, spec, upserted_rows};
use crate::jobs::{Job, Output, PARALLELISM, RoundDirs, Scale, matrix};
use crate::schedule::{Fault, Rng, Schedule, Shape};

/// A round still running this long after the faults stopped has hung. Rounds last seconds to
/// a minute; this bound is a liveness check, so that a hang fails the test with the round's logs
/// instead of holding the test command until CI's time runs out.
const HANG: Duration = Duration::from_secs(600);

pub struct Config {
    pub seed: u64,
    /// Faults are injected for this long.
    pub span: Duration,
    pub every: Duration,
    pub max_outage: Duration,
    pub scale: Scale,
}

impl Config {
    /// The settings given, with `SPATE_CHAOS_SEED`, `SPATE_CHAOS_SECONDS` and
    /// `SPATE_CHAOS_EVERY_SECONDS` taking precedence; without a seed, one from the clock.
    pub fn from_env(span: Duration, every: Duration, max_outage: Duration, scale: Scale) -> Self {
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let seed = number("SPATE_CHAOS_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 % 1_000_000)
        });
        Config {
            seed,
            span: number("SPATE_CHAOS_SECONDS").map_or(span, Duration::from_secs),
            every: number("SPATE_CHAOS_EVERY_SECONDS").map_or(every, Duration::from_secs),
            max_outage,
            scale,
        }
    }
}

/// The outcome of one round of one job.
struct RoundResult {
    job: &'static str,
    round: u32,
    state: JobState,
    restarts: u32,
    rows: usize,
    lost: usize,
    duplicated: usize,
    failure: String,
}

/// A round under way: the cluster's directory (logs, the JobMaster's files) and, on the small
/// disk, the job's data (input, output, the workers' state).
struct Round {
    number: u32,
    dir: TempDir,
    data: TempDir,
    cluster: LocalCluster,
    want: Vec<Vec<String>>,
    /// `want` is the table the changes leave (see `Plan::table`).
    table: bool,
    output: Output,
}

/// What the lasting fault under way broke, to mend when it ends.
#[derive(Clone, Copy, PartialEq)]
enum Broken {
    /// The proxy injects errors or delays.
    Proxy,
    /// MinIO was killed.
    Minio,
    /// The small disk is full.
    DiskFull,
    /// The small disk's writes and syncs are slow.
    DiskSlow,
}

/// The rounds' local disk: a small tmpfs that full-disk faults fill, seen through a FUSE
/// passthrough that slow-disk faults slow down. The passthrough is declared first so that it
/// is unmounted before the tmpfs under it.
struct LocalDisk {
    slow: SlowDisk,
    small: SmallDisk,
}

/// The parts that lasting faults break: the checkpoint storage and the local disk.
struct Environment {
    minio: Minio,
    /// The Kafka broker the Kafka jobs read from (it takes no fault yet).
    kafka: Kafka,
    proxy: FaultyProxy,
    /// `None` where no disk can be mounted (not root): disk faults are skipped, saying so.
    disk: Option<LocalDisk>,
    /// When the current fault ends, and what it broke.
    faulty_until: Option<(Instant, Broken)>,
}

impl Environment {
    /// Applies a lasting fault; returns a note for the log.
    fn apply(&mut self, fault: &Fault) -> String {
        let until = Instant::now() + fault.lasting();
        let mut note = String::new();
        let broken = match fault {
            Fault::StorageErrors { permille, .. } => {
                self.proxy.set_error_permille(*permille);
                Broken::Proxy
            }
            Fault::SlowStorage { delay, .. } => {
                self.proxy.set_delay(*delay);
                Broken::Proxy
            }
            Fault::StorageOutage { .. } => {
                self.minio.kill();
                Broken::Minio
            }
            Fault::DiskFull { .. } => match &self.disk {
                Some(disk) => {
                    let taken = disk.small.fill().expect("filling the small disk");
                    note = format!(" ({} MiB of ballast)", taken >> 20);
                    Broken::DiskFull
                }
                None => return " (skipped: no small disk)".into(),
            },
            Fault::SlowDisk { delay, .. } => match &self.disk {
                Some(disk) => {
                    disk.slow.slow_down(*delay);
                    Broken::DiskSlow
                }
                None => return " (skipped: no small disk)".into(),
            },
            Fault::KillWorker { .. } | Fault::KillJobMaster { .. } => return String::new(),
        };
        self.faulty_until = Some((until, broken));
        note
    }

    /// MinIO is down. A JobMaster waits for its storage before it serves anything, longer
    /// than the embedded cluster waits for a new JobMaster's address: no round starts then.
    fn down(&self) -> bool {
        matches!(self.faulty_until, Some((_, Broken::Minio)))
    }

    /// Ends the lasting fault once it has lasted (or now, with `force`). A full disk stays
    /// full until then: what rounds that ended freed is taken again.
    fn heal_if_due(&mut self, force: bool) {
        if let (Some((_, Broken::DiskFull)), Some(disk)) = (self.faulty_until, &self.disk) {
            disk.small.fill().expect("filling the small disk");
        }
        if let Some((until, broken)) = self.faulty_until
            && (force || Instant::now() >= until)
        {
            match broken {
                Broken::Proxy => self.proxy.heal(),
                Broken::Minio => self.minio.restart(),
                Broken::DiskFull => self.disk.as_ref().map_or((), |d| d.small.free()),
                Broken::DiskSlow => self.disk.as_ref().map_or((), |d| d.slow.heal()),
            }
            self.faulty_until = None;
        }
    }

    /// A directory for a round's data: on the small disk when there is one.
    fn data_dir(&self) -> TempDir {
        match &self.disk {
            Some(disk) => tempfile::tempdir_in(disk.slow.path()),
            None => tempfile::tempdir(),
        }
        .expect("round data directory")
    }
}

/// The disk the rounds' data lives on, 256 MiB: rounds write a few MiB each. Without root
/// there is none, and the run says so; CI, where the test command runs as root, must have it.
fn local_disk() -> Option<LocalDisk> {
    let disk = SmallDisk::mount(256).and_then(|small| {
        let slow = SlowDisk::mount(small.path())?;
        Ok(LocalDisk { slow, small })
    });
    match disk {
        Ok(disk) => Some(disk),
        Err(e) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("the chaos suite's local disk: {e}")
        }
        Err(e) => {
            eprintln!("disk faults are skipped: {e}");
            None
        }
    }
}

pub async fn run(config: Config) {
    let Some(minio) = Minio::start() else {
        return;
    };
    let Some(kafka) = Kafka::start() else {
        return;
    };
    let target = minio.endpoint.trim_start_matches("http://").to_string();
    let proxy = FaultyProxy::start(&target, config.seed).expect("storage proxy");
    let mut environment = Environment {
        minio,
        kafka,
        proxy,
        disk: local_disk(),
        faulty_until: None,
    };
    let jobs = matrix();
    let schedule = Schedule::draw(&Shape {
        seed: config.seed,
        span: config.span,
        every: config.every,
        jobs: jobs.len(),
        workers: PARALLELISM as usize,
        max_outage: config.max_outage,
    });
    eprintln!("{schedule}");
    let mut running: Vec<Option<Round>> = (0..jobs.len()).map(|_| None).collect();
    let mut rounds = vec![0u32; jobs.len()];
    let mut results: Vec<RoundResult> = Vec::new();
    let mut pending = schedule.faults.iter().peekable();
    let started = Instant::now();
    loop {
        let injecting = started.elapsed() <= config.span;
        for (index, job) in jobs.iter().enumerate() {
            if let Some(round) = &running[index]
                && round.dir.path().join("cluster/status.pb").exists()
            {
                let round = running[index].take().expect("checked above");
                results.push(finish(job, round).await);
            }
            if running[index].is_none() && (rounds[index] == 0 || injecting) && !environment.down()
            {
                rounds[index] += 1;
                let round =
                    start(job, rounds[index], &environment, config.scale, config.seed).await;
                running[index] = Some(round);
            }
        }
        while let Some((at, fault)) = pending.next_if(|(at, _)| started.elapsed() >= *at) {
            let target = inject(fault, &mut environment, &mut running);
            eprintln!(
                "t={:>5.1}s (planned {:.1}s) {fault}{target}",
                started.elapsed().as_secs_f64(),
                at.as_secs_f64()
            );
        }
        environment.heal_if_due(!injecting);
        if !injecting && running.iter().all(Option::is_none) {
            break;
        }
        if started.elapsed() > config.span + HANG {
            hung(&jobs, running);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = report(
        &results,
        &schedule,
        started.elapsed(),
        environment.proxy.broken_connections(),
    );
    eprintln!("{report}");
    let bad: Vec<&RoundResult> = results
        .iter()
        .filter(|r| r.state != JobState::Finished || r.lost > 0 || r.duplicated > 0)
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} rounds lost or duplicated rows or did not finish (seed {}):\n{}",
        bad.len(),
        results.len(),
        config.seed,
        bad.iter()
            .map(|r| format!("  {} round {}: {:?} {}", r.job, r.round, r.state, r.failure))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

async fn start(job: &Job, number: u32, env: &Environment, scale: Scale, seed: u64) -> Round {
    let dir = tempfile::tempdir().expect("round directory");
    let data = env.data_dir();
    let dirs = RoundDirs {
        input: data.path().join("input"),
        output: data.path().join("out"),
        kafka: env.kafka.bootstrap.clone(),
        topic: format!("{}-{number}", job.name),
    };
    let plan = (job.build)(&dirs, scale);
    let mut options = env.minio.storage_options();
    options.insert("endpoint".into(), env.proxy.endpoint());
    let mut spec =
        spec(plan.job, &dir.path().join("cluster"), PARALLELISM, 1).arg("parallelism", PARALLELISM);
    for (name, value) in plan.args {
        spec = spec.arg(name, value);
    }
    spec.state_dir = Some(data.path().join("state"));
    spec.heartbeat_timeout_ms = 3_000;
    // One task failure per round too: the source subtask drawn fails in its first attempt once
    // it has read the number of records drawn (unless a kill restarted it before).
    let name = job
        .name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    let mut rng = Rng::new(seed ^ name ^ u64::from(number).wrapping_mul(0x9E37_79B9));
    let failure = format!(
        "0/{}/{}",
        rng.below(u64::from(PARALLELISM)),
        1_000 + rng.below(scale.events / (2 * u64::from(PARALLELISM)))
    );
    spec.inject_failure = Some(failure);
    spec.checkpoints = Some(CheckpointSpec {
        storage_url: Some(env.minio.url(&format!("chaos/{}-{number}", job.name))),
        storage_options: options,
        interval_ms: 1_000,
        state_backend: job.state_backend.into(),
        restart: [
            ("--failover", job.failover),
            ("--restart-strategy", "exponential-delay"),
            ("--max-restarts", "1000"),
            ("--restart-delay-ms", "500"),
            ("--restart-max-delay-ms", "5000"),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect(),
        restore_from: None,
    });
    let cluster = LocalCluster::start(spec)
        .await
        .unwrap_or_else(|e| panic!("{} round {number} did not start: {e}", job.name));
    Round {
        number,
        dir,
        data,
        cluster,
        want: plan.want,
        table: plan.table,
        output: plan.output,
    }
}

/// Applies `fault`; returns which job it hit or what it did, for the log.
fn inject(fault: &Fault, env: &mut Environment, running: &mut [Option<Round>]) -> String {
    let target = |job: usize, running: &mut [Option<Round>]| -> Option<usize> {
        // The job drawn, or the next one with a round under way.
        (0..running.len())
            .map(|i| (job + i) % running.len())
            .find(|&i| running[i].is_some())
    };
    match fault {
        Fault::KillWorker { job, worker } => match target(*job, running) {
            Some(i) => {
                let round = running[i].as_mut().expect("found running");
                let _ = round.cluster.kill_worker(*worker);
                format!(" -> job #{i} round {}", round.number)
            }
            None => " -> no job running".into(),
        },
        Fault::KillJobMaster { job } => match target(*job, running) {
            Some(i) => {
                let round = running[i].as_mut().expect("found running");
                let _ = round.cluster.kill_jobmaster();
                format!(" -> job #{i} round {}", round.number)
            }
            None => " -> no job running".into(),
        },
        lasting => {
            env.heal_if_due(true);
            env.apply(lasting)
        }
    }
}

async fn finish(job: &Job, round: Round) -> RoundResult {
    let work = round.dir.path().join("cluster");
    let outcome =
        round.cluster.wait().await.unwrap_or_else(|e| {
            panic!("{} round {}: {e}\n{}", job.name, round.number, logs(&work))
        });
    let state = JobState::try_from(outcome.status.state).unwrap_or(JobState::Failed);
    let out = round.data.path().join("out");
    let mut got = match &round.output {
        Output::Files if out.exists() => read_rows(&out),
        Output::Files => Vec::new(),
        Output::Topic {
            bootstrap,
            topic,
            columns,
        } => committed_rows(bootstrap, topic, columns),
        Output::Upserts {
            bootstrap,
            topic,
            key,
            columns,
        } => upserted_rows(bootstrap, topic, key, columns),
    };
    got.sort();
    let committed = got.len();
    let (got, orphans) = match round.table {
        true => table_of(&got),
        false => (got, 0),
    };
    let (lost, duplicated) = difference(&got, &round.want);
    let duplicated = duplicated + orphans;
    if state != JobState::Finished || lost > 0 || duplicated > 0 {
        eprintln!(
            "{} round {}: {state:?}, {lost} lost, {duplicated} duplicated\n{}",
            job.name,
            round.number,
            logs(&work)
        );
        // Kept for a look at the logs and files: the failure message names it.
        let kept = round.dir.keep();
        eprintln!("kept {}", kept.display());
    }
    RoundResult {
        job: job.name,
        round: round.number,
        state,
        restarts: outcome.status.restarts,
        rows: committed,
        lost,
        duplicated,
        failure: outcome.status.failure,
    }
}

/// Fails the test with the logs of the rounds that did not end, their directories kept.
fn hung(jobs: &[Job], running: Vec<Option<Round>>) -> ! {
    let mut text = String::new();
    for (job, round) in jobs.iter().zip(running) {
        if let Some(round) = round {
            let work = round.dir.path().join("cluster");
            let _ = writeln!(
                text,
                "{} round {} has not ended {HANG:?} after the faults stopped (kept in {}):\n{}",
                job.name,
                round.number,
                round.dir.path().display(),
                logs(&work)
            );
            let _ = round.dir.keep();
        }
    }
    panic!("{text}");
}

/// The table debezium-json changes leave, as sorted rows `c, values...`: a "c" adds its row,
/// a "d" takes one copy of its row away. Also how many "d" found no copy to take (a change
/// committed twice, or one whose insert was lost).
fn table_of(changes: &[Vec<String>]) -> (Vec<Vec<String>>, usize) {
    let mut table: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut orphans = 0;
    for change in changes {
        let row = change[1..].to_vec();
        match change[0].as_str() {
            "c" => *table.entry(row).or_default() += 1,
            _ => match table.get_mut(&row) {
                Some(copies) if *copies > 1 => *copies -= 1,
                Some(_) => {
                    table.remove(&row);
                }
                None => orphans += 1,
            },
        }
    }
    let mut rows = Vec::new();
    for (row, copies) in table {
        for _ in 0..copies {
            rows.push(["c".to_string()].into_iter().chain(row.clone()).collect());
        }
    }
    (rows, orphans)
}

/// Rows of `want` missing from `got`, and rows of `got` beyond `want` (duplicates or strays),
/// both as multisets of sorted rows.
fn difference(got: &[Vec<String>], want: &[Vec<String>]) -> (usize, usize) {
    let (mut i, mut j, mut lost, mut extra) = (0, 0, 0, 0);
    while i < got.len() || j < want.len() {
        match (got.get(i), want.get(j)) {
            (Some(g), Some(w)) if g == w => {
                i += 1;
                j += 1;
            }
            (Some(g), Some(w)) if g < w => {
                extra += 1;
                i += 1;
            }
            (Some(_), None) => {
                extra += 1;
                i += 1;
            }
            _ => {
                lost += 1;
                j += 1;
            }
        }
    }
    (lost, extra)
}

fn report(results: &[RoundResult], schedule: &Schedule, took: Duration, broken: u64) -> String {
    let mut text = format!(
        "chaos run, seed {}: {} faults in {:.0}s, {broken} storage connections broken by injected errors\n\
         | job | rounds | restarts | rows committed | lost | duplicated | all finished |\n\
         |---|---|---|---|---|---|---|\n",
        schedule.seed,
        schedule.faults.len(),
        took.as_secs_f64()
    );
    for job in matrix() {
        let mine: Vec<&RoundResult> = results.iter().filter(|r| r.job == job.name).collect();
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} |",
            job.name,
            mine.len(),
            mine.iter().map(|r| r.restarts).sum::<u32>(),
            mine.iter().map(|r| r.rows).sum::<usize>(),
            mine.iter().map(|r| r.lost).sum::<usize>(),
            mine.iter().map(|r| r.duplicated).sum::<usize>(),
            mine.iter().all(|r| r.state == JobState::Finished),
        );
    }
    text
}

#[test]
fn the_difference_counts_lost_and_duplicated_rows() {
    let rows = |v: &[&str]| -> Vec<Vec<String>> { v.iter().map(|s| vec![s.to_string()]).collect() };
    assert_eq!(difference(&rows(&["a", "b"]), &rows(&["a", "b"])), (0, 0));
    assert_eq!(
        difference(&rows(&["a", "a", "b"]), &rows(&["a", "b"])),
        (0, 1)
    );
    assert_eq!(difference(&rows(&["b"]), &rows(&["a", "b", "c"])), (2, 0));
    assert_eq!(difference(&rows(&["a", "x"]), &rows(&["a", "b"])), (1, 1));
}

#[test]
fn the_table_of_changes_counts_retractions_of_nothing() {
    let change = |op: &str, v: &str| vec![op.to_string(), v.to_string()];
    let changes = [
        change("c", "a"),
        change("c", "b"),
        change("c", "a"),
        change("d", "a"),
        change("d", "b"),
        change("d", "x"),
    ];
    assert_eq!(table_of(&changes), (vec![change("c", "a")], 1));
}
