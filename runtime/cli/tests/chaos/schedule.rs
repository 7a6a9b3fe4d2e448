//! The faults of a run, drawn from a seed before the run starts, so that a run is printed as it
//! will happen and can be replayed (`SPATE_CHAOS_SEED`).

use std::fmt;
use std::time::Duration;

/// splitmix64: small, seedable and good enough to draw a schedule.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `low..=high` seconds.
    pub fn seconds(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_secs(low + self.below(high.saturating_sub(low) + 1))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// SIGKILL of worker process `worker` of the job at matrix index `job`.
    KillWorker { job: usize, worker: usize },
    /// SIGKILL of the JobMaster of job `job`; the embedded cluster starts a replacement.
    KillJobMaster { job: usize },
    /// About `permille` of each 1000 storage requests break (connection closed mid-request).
    StorageErrors { permille: u32, lasting: Duration },
    /// Storage answers each chunk only after `delay`.
    SlowStorage { delay: Duration, lasting: Duration },
    /// The storage server (MinIO) is killed and started again after `lasting`.
    StorageOutage { lasting: Duration },
    /// The disk of the jobs' local files (input, output, the workers' RocksDB and local
    /// recovery copies) is full for `lasting`.
    DiskFull { lasting: Duration },
    /// Each write and sync on that disk waits `delay` first, for `lasting`.
    SlowDisk { delay: Duration, lasting: Duration },
}

impl Fault {
    /// How long the storage or the disk stays faulty; zero for faults of a process.
    pub fn lasting(&self) -> Duration {
        match self {
            Fault::StorageErrors { lasting, .. }
            | Fault::SlowStorage { lasting, .. }
            | Fault::StorageOutage { lasting }
            | Fault::DiskFull { lasting }
            | Fault::SlowDisk { lasting, .. } => *lasting,
            Fault::KillWorker { .. } | Fault::KillJobMaster { .. } => Duration::ZERO,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillWorker { job, worker } => write!(f, "kill -9 worker {worker} of job #{job}"),
            Fault::KillJobMaster { job } => write!(f, "kill -9 the JobMaster of job #{job}"),
            Fault::StorageErrors { permille, lasting } => write!(
                f,
                "{:.1}% of storage requests fail for {}s",
                f64::from(*permille) / 10.0,
                lasting.as_secs()
            ),
            Fault::SlowStorage { delay, lasting } => write!(
                f,
                "storage {}ms slower per chunk for {}s",
                delay.as_millis(),
                lasting.as_secs()
            ),
            Fault::StorageOutage { lasting } => {
                write!(f, "storage down (MinIO killed) for {}s", lasting.as_secs())
            }
            Fault::DiskFull { lasting } => {
                write!(f, "local disk full for {}s", lasting.as_secs())
            }
            Fault::SlowDisk { delay, lasting } => write!(
                f,
                "local disk {}ms slower per write and sync for {}s",
                delay.as_millis(),
                lasting.as_secs()
            ),
        }
    }
}

/// What a schedule is drawn for.
pub struct Shape {
    pub seed: u64,
    /// Faults are injected from `every` to `span`.
    pub span: Duration,
    pub every: Duration,
    pub jobs: usize,
    pub workers: usize,
    /// Longest storage outage, and twice the longest full disk (at least 15 s).
    pub max_outage: Duration,
}

pub struct Schedule {
    pub seed: u64,
    pub faults: Vec<(Duration, Fault)>,
}

impl Schedule {
    /// One fault every `every` (with up to a quarter of it as jitter): process kills, storage
    /// errors, slow storage, outages, full disks and slow disks. Faults that last never overlap each
    /// other: one drawn while another lasts becomes a worker kill instead.
    pub fn draw(shape: &Shape) -> Schedule {
        let mut rng = Rng::new(shape.seed);
        let mut faults = Vec::new();
        let every = shape.every.as_millis() as u64;
        let mut faulty_until = Duration::ZERO;
        let mut at = Duration::from_millis(every);
        while at <= shape.span {
            let job = rng.below(shape.jobs as u64) as usize;
            let worker = rng.below(shape.workers as u64) as usize;
            let mut fault = match rng.below(100) {
                0..27 => Fault::KillWorker { job, worker },
                27..40 => Fault::KillJobMaster { job },
                40..53 => Fault::StorageErrors {
                    permille: 50,
                    lasting: rng.seconds(5, 15),
                },
                53..64 => Fault::SlowStorage {
                    delay: Duration::from_millis(100 + 100 * rng.below(3)),
                    lasting: rng.seconds(5, 15),
                },
                64..76 => Fault::DiskFull {
                    lasting: rng.seconds(5, 15.max(shape.max_outage.as_secs() / 2)),
                },
                76..87 => Fault::SlowDisk {
                    delay: Duration::from_millis(25 * (1 + rng.below(4))),
                    lasting: rng.seconds(5, 15),
                },
                _ => Fault::StorageOutage {
                    lasting: rng
                        .seconds(shape.max_outage.as_secs() / 3, shape.max_outage.as_secs()),
                },
            };
            if fault.lasting() > Duration::ZERO {
                if at < faulty_until {
                    fault = Fault::KillWorker { job, worker };
                } else {
                    faulty_until = at + fault.lasting();
                }
            }
            faults.push((at, fault));
            let jitter = rng.below(every / 4 + 1);
            at += Duration::from_millis(every - every / 8 + jitter);
        }
        Schedule {
            seed: shape.seed,
            faults,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos schedule, seed {} (replay: SPATE_CHAOS_SEED={}), {} faults:",
            self.seed,
            self.seed,
            self.faults.len()
        )?;
        for (at, fault) in &self.faults {
            writeln!(f, "  t={:>5.1}s  {fault}", at.as_secs_f64())?;
        }
        Ok(())
    }
}

#[test]
fn a_seed_draws_the_same_schedule_and_lasting_faults_never_overlap() {
    let shape = Shape {
        seed: 42,
        span: Duration::from_secs(600),
        every: Duration::from_secs(20),
        jobs: 5,
        workers: 2,
        max_outage: Duration::from_secs(60),
    };
    let one = Schedule::draw(&shape);
    assert_eq!(one.faults, Schedule::draw(&shape).faults);
    assert!(one.faults.len() >= 25, "{one}");
    let mut faulty_until = Duration::ZERO;
    for (at, fault) in &one.faults {
        if fault.lasting() > Duration::ZERO {
            assert!(*at >= faulty_until, "{one}");
            faulty_until = *at + fault.lasting();
        }
        if let Fault::StorageOutage { lasting } = fault {
            assert!(*lasting <= Duration::from_secs(60));
        }
    }
    let kinds = |f: fn(&Fault) -> bool| one.faults.iter().filter(|(_, x)| f(x)).count();
    assert!(kinds(|f| matches!(f, Fault::KillWorker { .. })) > 0);
    assert!(kinds(|f| matches!(f, Fault::KillJobMaster { .. })) > 0);
    assert!(kinds(|f| matches!(f, Fault::StorageOutage { .. })) > 0);
    assert!(kinds(|f| matches!(f, Fault::DiskFull { .. })) > 0);
    assert!(kinds(|f| matches!(f, Fault::SlowDisk { .. })) > 0);
}
