//! Checkpoints of keyed state: incremental (RocksDB) against full (heap).
//!
//! For each state size, one operator instance's keyed state (8-byte keys, 100-byte random
//! values in one value state) is loaded, checkpointed once in full, then changed by 1% of its
//! keys (chosen at random) and checkpointed again, round after round. Each checkpoint is timed
//! as the task takes it: the synchronous part (`KeyedStateBackend::snapshot`), then the upload
//! of its files to a `file://` checkpoint storage by a `TaskSnapshotUploader`, which sends only
//! the shared files that the last confirmed checkpoint did not send. Then the checkpoint is
//! confirmed to both, as the JobMaster would once every task acknowledged it, and a few thousand
//! point reads of random keys are timed (what the state's layout costs reads). With `--pause-ms`
//! the instance then idles before the next round, as between a job's checkpoints, so that
//! background compactions keep up as they would at a realistic checkpoint interval.
//!
//! ```sh
//! cargo bench -p spate-checkpoint --bench checkpoints -- \
//!     [--sizes 10,100,1000] [--rounds 10] [--backends rocksdb,heap] [--dir /var/tmp] \
//!     [--pause-ms 0]
//! ```
//!
//! Sizes are in MB (10^6 bytes) of keys and values; the key count is the size over 108 bytes.
//! Uploads are compared with the full checkpoint (checkpoint 1: the state without overwritten
//! versions), which is what "a share of the state" means, and with the round's own snapshot,
//! which also counts the overwritten versions RocksDB has not compacted away yet. A steady rate
//! needs enough rounds to include the compactions that 1% changes cause (hundreds, not ten).
//! Progress goes to stderr, the results as Markdown to stdout. Everything written lives in a
//! temporary directory under `--dir`, removed after each backend and size.

use std::collections::HashSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spate_api::{KeyGroupRange, KeyedSnapshot, StateBackendKind, StateContext};
use spate_checkpoint::object_store::path::Path as StorePath;
use spate_checkpoint::{
    CheckpointStorage, SnapshotTarget, StorageOptions, TaskSnapshotUploader, UploadedSnapshot,
};
use spate_state::{KeyedStateBackend, StateDescriptor, StateId, StateKind, open_backend};

const USAGE: &str = "usage: checkpoints [--sizes MB,MB,...] [--rounds N] [--backends rocksdb,heap] \
                     [--dir DIR] [--pause-ms MS]";
/// What `default_max_parallelism(1)` gives; the one subtask owns all the key groups.
const MAX_PARALLELISM: u32 = 128;
const KEY_BYTES: u64 = 8;
const VALUE_BYTES: usize = 100;
const ENTRY_BYTES: u64 = KEY_BYTES + VALUE_BYTES as u64;
/// The share of keys each round changes, in percent.
const CHANGED_PERCENT: u64 = 1;
/// The aims of the issue.
const AIM_P99_TOTAL: Duration = Duration::from_secs(1);
const AIM_UPLOAD_RATIO: f64 = 0.02;
const AIM_SIZE_MB: u64 = 1000;
/// Percentiles need this many rounds before p99 is something other than the maximum
/// (nearest rank: the ceil(0.99 n)-th of n sorted values is the largest below 100).
const ROUNDS_FOR_P99: usize = 100;
/// Up to this many rounds the results include a table of every round.
const PER_ROUND_TABLE_ROUNDS: usize = 20;
/// The rounds with compaction output listed per run (the first ones).
const LISTED_COMPACTION_ROUNDS: usize = 8;
/// Point reads of random existing keys after each round's checkpoint.
const READS_PER_ROUND: u32 = 5_000;

struct Args {
    sizes_mb: Vec<u64>,
    rounds: usize,
    backends: Vec<StateBackendKind>,
    dir: PathBuf,
    pause: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        sizes_mb: vec![10, 100, 1000],
        rounds: 10,
        backends: vec![StateBackendKind::RocksDb, StateBackendKind::Heap],
        dir: PathBuf::from("/var/tmp"),
        pause: Duration::ZERO,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--sizes" => {
                let list = value("--sizes")?;
                parsed.sizes_mb = list
                    .split(',')
                    .map(|size| match size.trim().parse::<u64>() {
                        // Up to 1 TB, so that the byte counts derived from it cannot overflow.
                        Ok(mb) if (1..=1_000_000).contains(&mb) => Ok(mb),
                        _ => Err(format!(
                            "--sizes: {size:?} is not a number of MB in 1..=1000000"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--rounds" => {
                let rounds = value("--rounds")?;
                parsed.rounds = rounds
                    .parse()
                    .map_err(|_| format!("--rounds: {rounds:?} is not a number"))?;
            }
            "--backends" => {
                let list = value("--backends")?;
                parsed.backends = list
                    .split(',')
                    .map(|name| {
                        StateBackendKind::parse(name.trim())
                            .ok_or_else(|| format!("--backends: {name:?} is not rocksdb or heap"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--dir" => parsed.dir = PathBuf::from(value("--dir")?),
            "--pause-ms" => {
                let pause = value("--pause-ms")?;
                parsed.pause = Duration::from_millis(
                    pause
                        .parse()
                        .map_err(|_| format!("--pause-ms: {pause:?} is not a number"))?,
                );
            }
            // `cargo bench` passes `--bench` to every bench target.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

/// splitmix64: random keys and values without a dependency, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Random bytes, so that values are not smaller on disk than in memory (RocksDB is built
    /// without compression, but this keeps the figures honest if that changes).
    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// One checkpoint as measured.
#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    sync: Duration,
    total: Duration,
    uploaded_bytes: u64,
    uploaded_files: usize,
    /// All files of the snapshot: what a full checkpoint of this state uploads.
    state_bytes: u64,
    /// The snapshot's files that are not shared (RocksDB: MANIFEST, OPTIONS, ...; timers),
    /// which every checkpoint uploads again.
    private_bytes: u64,
    /// Mean time of a point read of an existing key, measured after the checkpoint.
    read: Duration,
}

impl Checkpoint {
    fn ratio(&self) -> f64 {
        self.uploaded_bytes as f64 / self.state_bytes.max(1) as f64
    }
}

struct Run {
    backend: StateBackendKind,
    size_mb: u64,
    keys: u64,
    full: Checkpoint,
    rounds: Vec<Checkpoint>,
}

/// One operator instance with its uploader, in a temporary directory.
struct Instance {
    backend: Box<dyn KeyedStateBackend>,
    state: StateId,
    uploader: TaskSnapshotUploader,
    storage: CheckpointStorage,
    /// Remote paths the last confirmed checkpoint references.
    live_paths: HashSet<String>,
}

impl Instance {
    fn checkpoint(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        id: u64,
    ) -> Result<Checkpoint, Box<dyn Error>> {
        let start = Instant::now();
        let snapshot: KeyedSnapshot = self.backend.snapshot(id)?;
        let sync = start.elapsed();
        let uploaded: UploadedSnapshot = runtime.block_on(
            self.uploader
                .upload(&SnapshotTarget::Checkpoint(id), &snapshot),
        )?;
        let total = start.elapsed();

        // Confirmed: the uploader takes this checkpoint as its incremental base, the backend
        // drops older local snapshot directories.
        self.uploader.notify_complete(id);
        self.backend.notify_checkpoint_complete(id)?;
        // Retention is the completed checkpoint store's job, not measured here; without it the
        // storage would keep every round's uploads (gigabytes at 1 GB of state).
        let paths: HashSet<String> = uploaded
            .handle
            .files
            .iter()
            .map(|f| f.path.clone())
            .collect();
        let dropped: Vec<StorePath> = self
            .live_paths
            .difference(&paths)
            .map(StorePath::parse)
            .collect::<Result<_, _>>()?;
        runtime.block_on(async {
            for path in &dropped {
                self.storage.delete(path).await?;
            }
            Ok::<_, spate_checkpoint::CheckpointError>(())
        })?;
        self.live_paths = paths;

        Ok(Checkpoint {
            sync,
            total,
            uploaded_bytes: uploaded.uploaded_bytes,
            uploaded_files: uploaded.uploaded_files.len(),
            state_bytes: snapshot.files.iter().map(|file| file.size).sum(),
            private_bytes: snapshot
                .files
                .iter()
                .filter(|file| !file.shared)
                .map(|file| file.size)
                .sum(),
            read: Duration::ZERO,
        })
    }

    /// The mean time of `count` point reads of random existing keys.
    fn reads(&mut self, rng: &mut Rng, keys: u64, count: u32) -> Result<Duration, Box<dyn Error>> {
        let start = Instant::now();
        for _ in 0..count {
            let bytes = (rng.next() % keys).to_be_bytes();
            let key = self.backend.key(&bytes);
            if self.backend.get(self.state, key)?.is_none() {
                return Err("a loaded key has no value".into());
            }
        }
        Ok(start.elapsed() / count)
    }

    fn put(&mut self, index: u64, value: &[u8]) -> Result<(), Box<dyn Error>> {
        let bytes = index.to_be_bytes();
        let key = self.backend.key(&bytes);
        self.backend.put(self.state, key, value)?;
        Ok(())
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn run(
    runtime: &tokio::runtime::Runtime,
    args: &Args,
    kind: StateBackendKind,
    size_mb: u64,
) -> Result<Run, Box<dyn Error>> {
    let label = format!("{} {size_mb} MB", kind.name());
    let work = tempfile::Builder::new()
        .prefix("spate-bench-checkpoints-")
        .tempdir_in(&args.dir)?;
    let ctx = StateContext {
        dir: work.path().join("state"),
        backend: kind,
        key_groups: KeyGroupRange::of_subtask(0, 1, MAX_PARALLELISM),
        restored: None,
        checkpointing: true,
    };
    let mut backend = open_backend(&ctx, MAX_PARALLELISM)?;
    let state = backend.register(&StateDescriptor::new("payload"), StateKind::Value)?;
    let storage_url = format!("file://{}", work.path().join("storage").display());
    let storage = runtime.block_on(CheckpointStorage::open(
        &storage_url,
        &StorageOptions::default(),
    ))?;
    let uploader = TaskSnapshotUploader::new(storage.clone(), "bench", "keyed", 0)?;
    let mut instance = Instance {
        backend,
        state,
        uploader,
        storage,
        live_paths: HashSet::new(),
    };

    let keys = (size_mb * 1_000_000 / ENTRY_BYTES).max(100);
    // Seeded by size only: both backends get the same keys, values and changes.
    let mut rng = Rng(size_mb ^ 0x5eed);
    let mut value = [0u8; VALUE_BYTES];
    let started = Instant::now();
    let step = (keys / 10).max(1);
    for index in 0..keys {
        rng.fill(&mut value);
        instance.put(index, &value)?;
        if (index + 1) % step == 0 {
            eprintln!(
                "[{label}] loading: {} of {keys} keys ({:.1} s)",
                index + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }

    let full = instance.checkpoint(runtime, 1)?;
    eprintln!(
        "[{label}] checkpoint 1 (full): sync {:.0} ms, total {:.0} ms, uploaded {:.1} MiB in {} files",
        ms(full.sync),
        ms(full.total),
        mib(full.uploaded_bytes),
        full.uploaded_files
    );

    let changed = (keys * CHANGED_PERCENT / 100).max(1);
    let mut rounds = Vec::with_capacity(args.rounds);
    let mut chosen = HashSet::with_capacity(changed as usize);
    // Its own generator, so that the changes are the same with or without reads.
    let mut read_rng = Rng(size_mb ^ 0x7ead);
    for round in 0..args.rounds {
        // Distinct keys, so that each round changes exactly 1% of them.
        chosen.clear();
        while (chosen.len() as u64) < changed {
            chosen.insert(rng.next() % keys);
        }
        for &index in &chosen {
            rng.fill(&mut value);
            instance.put(index, &value)?;
        }
        let id = round as u64 + 2;
        let mut checkpoint = instance.checkpoint(runtime, id)?;
        checkpoint.read = instance.reads(&mut read_rng, keys, READS_PER_ROUND)?;
        eprintln!(
            "[{label}] checkpoint {id}: {changed} keys changed; sync {:.0} ms, total {:.0} ms, \
             uploaded {:.2} MiB in {} files ({:.2}% of {:.1} MiB; {:.1} KiB not shared); \
             get {:.2} us",
            ms(checkpoint.sync),
            ms(checkpoint.total),
            mib(checkpoint.uploaded_bytes),
            checkpoint.uploaded_files,
            checkpoint.ratio() * 100.0,
            mib(checkpoint.state_bytes),
            checkpoint.private_bytes as f64 / 1024.0,
            checkpoint.read.as_secs_f64() * 1e6
        );
        rounds.push(checkpoint);
        std::thread::sleep(args.pause);
    }
    // The backend holds files in the directory: close it before the directory goes.
    drop(instance);
    drop(work);
    Ok(Run {
        backend: kind,
        size_mb,
        keys,
        full,
        rounds,
    })
}

/// Nearest-rank percentile of `values`, which must not be empty.
fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn size_label(size_mb: u64) -> String {
    if size_mb >= 1000 && size_mb.is_multiple_of(1000) {
        format!("{} GB", size_mb / 1000)
    } else {
        format!("{size_mb} MB")
    }
}

struct Summary {
    sync_p50: Duration,
    sync_p99: Duration,
    sync_max: Duration,
    total_p50: Duration,
    total_p99: Duration,
    total_max: Duration,
    /// Upload over the bytes of the full checkpoint (checkpoint 1, the state without
    /// overwritten versions): what the aim is about.
    mean_of_full: f64,
    p99_of_full: f64,
    max_of_full: f64,
    /// Upload over the bytes of the round's own snapshot, which include overwritten versions
    /// not yet compacted away.
    mean_of_snapshot: f64,
    /// Upload over the full checkpoint, averaged over whole compaction cycles: the rounds after
    /// the first round with compaction output up to the last one (when there are two), which
    /// estimates the steady rate without depending on where the window cuts the cycle.
    cycles_of_full: Option<(f64, usize)>,
    snapshot_mean: u64,
    snapshot_max: u64,
    read_p50: Duration,
    read_max: Duration,
}

fn summarize(run: &Run) -> Option<Summary> {
    if run.rounds.is_empty() {
        return None;
    }
    let n = run.rounds.len();
    let syncs: Vec<Duration> = run.rounds.iter().map(|c| c.sync).collect();
    let totals: Vec<Duration> = run.rounds.iter().map(|c| c.total).collect();
    let reads: Vec<Duration> = run.rounds.iter().map(|c| c.read).collect();
    let full = run.full.state_bytes.max(1) as f64;
    let of_full = |c: &Checkpoint| c.uploaded_bytes as f64 / full;
    Some(Summary {
        sync_p50: percentile(&syncs, 50.0),
        sync_p99: percentile(&syncs, 99.0),
        sync_max: percentile(&syncs, 100.0),
        total_p50: percentile(&totals, 50.0),
        total_p99: percentile(&totals, 99.0),
        total_max: percentile(&totals, 100.0),
        mean_of_full: run.rounds.iter().map(of_full).sum::<f64>() / n as f64,
        p99_of_full: {
            let mut shares: Vec<f64> = run.rounds.iter().map(of_full).collect();
            shares.sort_by(f64::total_cmp);
            let rank = (0.99 * n as f64).ceil() as usize;
            shares[rank.clamp(1, n) - 1]
        },
        max_of_full: run.rounds.iter().map(of_full).fold(0.0, f64::max),
        mean_of_snapshot: run.rounds.iter().map(Checkpoint::ratio).sum::<f64>() / n as f64,
        cycles_of_full: match compaction_rounds(run)[..] {
            [first, .., last] => {
                let cycles = &run.rounds[first + 1..=last];
                Some((
                    cycles.iter().map(of_full).sum::<f64>() / cycles.len() as f64,
                    cycles.len(),
                ))
            }
            _ => None,
        },
        snapshot_mean: run.rounds.iter().map(|c| c.state_bytes).sum::<u64>() / n as u64,
        snapshot_max: run.rounds.iter().map(|c| c.state_bytes).max().unwrap_or(0),
        read_p50: percentile(&reads, 50.0),
        read_max: percentile(&reads, 100.0),
    })
}

/// The indices of the rounds that uploaded more than twice the median round: the flush alone
/// is about the same every round, so these are the ones with compaction output.
fn compaction_rounds(run: &Run) -> Vec<usize> {
    if run.rounds.is_empty() {
        return Vec::new();
    }
    let mut uploads: Vec<u64> = run.rounds.iter().map(|c| c.uploaded_bytes).collect();
    uploads.sort_unstable();
    let median = uploads[(uploads.len() - 1) / 2];
    (0..run.rounds.len())
        .filter(|&round| run.rounds[round].uploaded_bytes > 2 * median)
        .collect()
}

fn print_results(runs: &[Run], rounds: usize) {
    println!(
        "| backend | state | keys | checkpoint 1 (full): sync / total ms, MiB | rounds \
         | sync ms: p50 / p99 / max | total ms: p50 / p99 / max \
         | upload / full checkpoint: mean, over whole cycles (rounds), p99, max \
         | upload / own snapshot: mean \
         | snapshot MiB: mean / max | get us: p50 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        let first = format!(
            "| {} | {} | {} | {:.0} / {:.0}, {:.1} |",
            run.backend.name(),
            size_label(run.size_mb),
            run.keys,
            ms(run.full.sync),
            ms(run.full.total),
            mib(run.full.uploaded_bytes)
        );
        match summarize(run) {
            Some(s) => println!(
                "{first} {} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.2}%, {}, {:.2}%, {:.2}% | {:.2}% \
                 | {:.0} / {:.0} | {:.1} / {:.1} |",
                run.rounds.len(),
                ms(s.sync_p50),
                ms(s.sync_p99),
                ms(s.sync_max),
                ms(s.total_p50),
                ms(s.total_p99),
                ms(s.total_max),
                s.mean_of_full * 100.0,
                cycles_label(s.cycles_of_full),
                s.p99_of_full * 100.0,
                s.max_of_full * 100.0,
                s.mean_of_snapshot * 100.0,
                mib(s.snapshot_mean),
                mib(s.snapshot_max),
                s.read_p50.as_secs_f64() * 1e6,
                s.read_max.as_secs_f64() * 1e6
            ),
            None => println!("{first} 0 | | | | | | |"),
        }
    }

    let rocks: Vec<&Run> = runs
        .iter()
        .filter(|run| run.backend == StateBackendKind::RocksDb && !run.rounds.is_empty())
        .collect();
    if !rocks.is_empty() && rounds <= PER_ROUND_TABLE_ROUNDS {
        // Per round, so that compaction rounds can be told from flush-only rounds.
        println!();
        println!("RocksDB rounds (uploaded MiB / total ms):");
        println!();
        let header: Vec<String> = rocks.iter().map(|run| size_label(run.size_mb)).collect();
        println!("| checkpoint | {} |", header.join(" | "));
        println!("|---|{}", "---|".repeat(rocks.len()));
        for round in 0..rounds {
            let cells: Vec<String> = rocks
                .iter()
                .map(|run| match run.rounds.get(round) {
                    Some(c) => format!("{:.2} / {:.0}", mib(c.uploaded_bytes), ms(c.total)),
                    None => String::new(),
                })
                .collect();
            println!("| {} | {} |", round + 2, cells.join(" | "));
        }
    }
    if !rocks.is_empty() {
        // The rounds whose upload includes compaction output, which set the mean and the tail.
        println!();
        println!(
            "RocksDB rounds that uploaded more than twice the median round (compaction output):"
        );
        println!();
        println!(
            "| state | rounds | share of all bytes uploaded in rounds | checkpoint: MiB (% of full checkpoint), total ms |"
        );
        println!("|---|---|---|---|");
        for run in &rocks {
            let big: Vec<(usize, &Checkpoint)> = compaction_rounds(run)
                .into_iter()
                .map(|round| (round, &run.rounds[round]))
                .collect();
            let all: u64 = run.rounds.iter().map(|c| c.uploaded_bytes).sum();
            let big_bytes: u64 = big.iter().map(|(_, c)| c.uploaded_bytes).sum();
            let mut list: Vec<String> = big
                .iter()
                .take(LISTED_COMPACTION_ROUNDS)
                .map(|(round, c)| {
                    format!(
                        "{}: {:.0} ({:.0}%), {:.0}",
                        round + 2,
                        mib(c.uploaded_bytes),
                        c.uploaded_bytes as f64 / run.full.state_bytes.max(1) as f64 * 100.0,
                        ms(c.total)
                    )
                })
                .collect();
            if big.len() > LISTED_COMPACTION_ROUNDS {
                list.push(format!(
                    "... ({} more)",
                    big.len() - LISTED_COMPACTION_ROUNDS
                ));
            }
            println!(
                "| {} | {} of {} | {:.0}% | {} |",
                size_label(run.size_mb),
                big.len(),
                run.rounds.len(),
                big_bytes as f64 / all.max(1) as f64 * 100.0,
                list.join("; ")
            );
        }
    }

    println!();
    let at_aim_size = |backend| {
        runs.iter()
            .find(|run| run.backend == backend && run.size_mb == AIM_SIZE_MB)
            .and_then(summarize)
    };
    let verdict = |p99: Duration| {
        if p99 <= AIM_P99_TOTAL {
            "met"
        } else {
            "NOT met"
        }
    };
    let rank = if rounds >= ROUNDS_FOR_P99 {
        format!("nearest-rank p99 of {rounds} rounds")
    } else {
        format!("p99 of {rounds} rounds, which is their maximum")
    };
    match at_aim_size(StateBackendKind::RocksDb) {
        Some(s) => println!(
            "Aim \"p99 checkpoint <= 1 s at 1 GB\" (RocksDB, rounds after a 1% change, sync + upload; \
             {rank}): {:.0} ms: {} (max {:.0} ms)",
            ms(s.total_p99),
            verdict(s.total_p99),
            ms(s.total_max)
        ),
        None => println!(
            "Aim \"p99 checkpoint <= 1 s at 1 GB\": not evaluated (no RocksDB run at 1 GB with rounds)"
        ),
    }
    if let Some(s) = at_aim_size(StateBackendKind::Heap) {
        println!(
            "(heap at 1 GB, full every time: p99 {:.0} ms: {})",
            ms(s.total_p99),
            verdict(s.total_p99)
        );
    }
    for run in &rocks {
        if let Some(s) = summarize(run) {
            // The steady rate if whole cycles were seen, else what the rounds give.
            let steady = s.cycles_of_full.map_or(s.mean_of_full, |(mean, _)| mean);
            println!(
                "Aim \"upload <= 2% of the state after a 1% change\" (RocksDB, {}): mean {:.2}% of the \
                 full checkpoint over all rounds, {} over whole compaction cycles ({:.2}% of the \
                 round's own snapshot), max {:.2}%: {}",
                size_label(run.size_mb),
                s.mean_of_full * 100.0,
                cycles_label(s.cycles_of_full),
                s.mean_of_snapshot * 100.0,
                s.max_of_full * 100.0,
                if steady <= AIM_UPLOAD_RATIO {
                    "met on average"
                } else {
                    "NOT met"
                }
            );
        }
    }
}

fn cycles_label(cycles: Option<(f64, usize)>) -> String {
    match cycles {
        Some((mean, rounds)) => format!("{:.2}% ({rounds})", mean * 100.0),
        None => "n/a".to_string(),
    }
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("checkpoints: {error}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(error) = bench(&args) {
        eprintln!("checkpoints: {error}");
        std::process::exit(1);
    }
}

fn bench(args: &Args) -> Result<(), Box<dyn Error>> {
    if !Path::new(&args.dir).is_dir() {
        return Err(format!("--dir {} is not a directory", args.dir.display()).into());
    }
    // Two workers: the machine has two cores, and uploads of several files overlap.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut runs = Vec::new();
    for &size_mb in &args.sizes_mb {
        for &kind in &args.backends {
            runs.push(run(&runtime, args, kind, size_mb)?);
        }
    }
    print_results(&runs, args.rounds);
    Ok(())
}
