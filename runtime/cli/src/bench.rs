//! `spate bench`: throughput of built-in pipelines on the embedded cluster (real processes).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use spate_cluster::{CheckpointSpec, ClusterSpec, LocalCluster};
use spate_proto::v1::JobState;

use crate::cli::BenchArgs;
use crate::progress::human;

struct Scenario {
    name: &'static str,
    job: &'static str,
    args: &'static [(&'static str, &'static str)],
    /// A SQL example run as the `sql` job, its event count set to the run's.
    sql: Option<&'static str>,
    /// Checkpoints every second with this state backend; `None` runs without checkpoints.
    checkpoints: Option<&'static str>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "stateless: generator (100 B events) -> filter -> project -> discard",
        job: "passthrough",
        args: &[],
        sql: None,
        checkpoints: None,
    },
    Scenario {
        name: "keyed tumbling 10 s window count/sum/min/max/avg, 10,000 keys",
        job: "window-count",
        args: &[("keys", "10000"), ("window", "tumble:10000")],
        sql: None,
        checkpoints: None,
    },
    Scenario {
        name: "the same window, checkpoints every 1 s, heap state",
        job: "window-count",
        args: &[("keys", "10000"), ("window", "tumble:10000")],
        sql: None,
        checkpoints: Some("heap"),
    },
    Scenario {
        name: "the same window, checkpoints every 1 s, RocksDB state",
        job: "window-count",
        args: &[("keys", "10000"), ("window", "tumble:10000")],
        sql: None,
        checkpoints: Some("rocksdb"),
    },
    Scenario {
        name: "SQL Nexmark q0 (pass-through of bids -> blackhole)",
        job: "sql",
        args: &[],
        sql: Some(include_str!("../../../examples/q0.sql")),
        checkpoints: None,
    },
    Scenario {
        name: "SQL Nexmark q1 (0.908 * price)",
        job: "sql",
        args: &[],
        sql: Some(include_str!("../../../examples/q1.sql")),
        checkpoints: None,
    },
    Scenario {
        name: "SQL Nexmark q2 (MOD(auction, 123) = 0)",
        job: "sql",
        args: &[],
        sql: Some(include_str!("../../../examples/q2.sql")),
        checkpoints: None,
    },
    Scenario {
        name: "SQL HOP(2 s, 10 s) bid count per auction (q5, first half)",
        job: "sql",
        args: &[],
        sql: Some(include_str!("../../../examples/q5_hop_count.sql")),
        checkpoints: None,
    },
];

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The largest resident-set high-water mark (VmHWM) of any worker, sampled until the job ends.
async fn peak_worker_rss(cluster: &mut LocalCluster) -> u64 {
    let mut peak = 0;
    loop {
        for pid in cluster.worker_pids().into_iter().flatten() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak = peak.max(hwm.unwrap_or(0) << 10);
        }
        match cluster.status().await {
            Ok(status)
                if status.state == JobState::Running as i32
                    || status.state == JobState::Created as i32 => {}
            _ => return peak,
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let machine = format!("{} cores, {}", cores, cpu_model());
    println!("machine: {machine}; {} events per run", args.events);
    let mut rows = Vec::new();
    let chosen = SCENARIOS.iter().filter(|s| {
        args.only
            .as_ref()
            .is_none_or(|only| s.name.contains(only.as_str()))
    });
    for scenario in chosen {
        for parallelism in [1u32, 2] {
            let work_dir =
                std::env::temp_dir().join(format!("spate-bench-{}-{parallelism}", scenario.job));
            let mut spec = ClusterSpec::new(std::env::current_exe()?, scenario.job, &work_dir)
                .arg("parallelism", parallelism);
            for (k, v) in scenario.args {
                spec = spec.arg(k, v);
            }
            // A SQL job sets its event count in its text; the others take it as an argument.
            spec = match scenario.sql {
                Some(sql) => {
                    let events = format!("'events' = '{}'", args.events);
                    spec.arg("sql", sql.replace("'events' = '10000000'", &events))
                }
                None => spec.arg("events", args.events),
            };
            spec.checkpoints = scenario.checkpoints.map(|backend| CheckpointSpec {
                interval_ms: 1_000,
                state_backend: backend.into(),
                ..CheckpointSpec::default()
            });
            spec.workers = parallelism;
            spec.slots_per_worker = 1;
            spec.log_filter = "warn".into();
            let mut cluster = LocalCluster::start(spec).await?;
            let peak_rss = peak_worker_rss(&mut cluster).await;
            let outcome = cluster.wait().await?;
            if outcome.status.state != JobState::Finished as i32 {
                bail!(
                    "{} at parallelism {parallelism} failed: {}",
                    scenario.job,
                    outcome.status.failure
                );
            }
            let seconds = outcome.status.running_ms as f64 / 1000.0;
            let rate = args.events as f64 / seconds;
            let per_core = rate / parallelism.min(cores) as f64;
            println!(
                "{:70} p={parallelism}: {:>8}/s total, {:>8}/s per core ({seconds:.2}s), peak worker RSS {} MiB",
                scenario.name,
                human(rate),
                human(per_core),
                peak_rss >> 20
            );
            rows.push(format!(
                "| {} | {parallelism} | {} | {:.2} | {} | {} | {} |",
                scenario.name,
                args.events,
                seconds,
                human(rate),
                human(per_core),
                peak_rss >> 20
            ));
        }
    }
    if let Some(path) = args.markdown {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let only = args
            .only
            .as_ref()
            .map(|o| format!(" --only {o}"))
            .unwrap_or_default();
        writeln!(
            file,
            "\nMachine: {machine}. Command: `spate bench --events {}{only}`.\n",
            args.events
        )?;
        writeln!(
            file,
            "| pipeline | parallelism | events | seconds | events/s | events/s per core | peak worker RSS (MiB) |"
        )?;
        writeln!(file, "|---|---|---|---|---|---|---|")?;
        for row in rows {
            writeln!(file, "{row}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
