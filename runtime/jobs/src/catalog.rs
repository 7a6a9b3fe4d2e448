use std::collections::BTreeMap;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch};
use arrow_ord::cmp::lt;
use spate_api::{ChangelogMode, OperatorError, WatermarkStrategy};
use spate_connectors::filesystem::Filesystem;
use spate_connectors::{Connector, TableContext, TableOptions};
use spate_datastream::{DataStream, StreamEnv};
use spate_graph::StreamGraph;
use spate_operators::generator::{GeneratorConfig, GeneratorSource};
use spate_operators::sink::{CsvFileSink, DiscardSink, ThrottledSink};
use spate_operators::window::{AggregateFunction, AggregateSpec, WindowAssigner};

use crate::args::{JobArgs, JobError};
use crate::co_count::CoCount;
use crate::running_count::RunningCount;

type Builder = fn(&mut JobArgs) -> Result<StreamGraph, JobError>;

/// Name, what it does, and how to build it.
pub const CATALOG: &[(&str, &str, Builder)] = &[
    (
        "sql",
        "a Flink SQL script (argument 'sql'): CREATE TABLE / CREATE VIEW / INSERT INTO",
        sql,
    ),
    (
        "window-count",
        "generated keyed events -> event-time window (count, sum, min, max, avg of value) per key -> CSV or discard",
        window_count,
    ),
    (
        "passthrough",
        "generated 100-byte events -> filter value < 900 -> project key, ts, value -> CSV or discard",
        passthrough,
    ),
    (
        "backpressure",
        "unbounded generated events -> rebalance -> a sink that sleeps per batch and can stall",
        backpressure,
    ),
    (
        "co-process",
        "two generated streams unioned, connected with a third keyed alike -> keyed co-process: rows per key and window of either side -> CSV (exactly-once) or discard",
        co_process,
    ),
    (
        "running-count",
        "generated keyed events -> running count per key, a changelog (changes=retract: -U/+U, or upsert: +U) -> hash by key -> the changes as rows (op, key, count) -> CSV (exactly-once) or discard",
        running_count,
    ),
];

pub fn build(name: &str, args: &BTreeMap<String, String>) -> Result<StreamGraph, JobError> {
    let Some((_, _, builder)) = CATALOG.iter().find(|(n, _, _)| *n == name) else {
        let known: Vec<&str> = CATALOG.iter().map(|(n, _, _)| *n).collect();
        return Err(JobError::UnknownJob(name.to_string(), known.join(", ")));
    };
    let mut job_args = JobArgs::new(name, args);
    let graph = builder(&mut job_args)?;
    job_args.finish()?;
    Ok(graph)
}

fn finish(env: StreamEnv) -> Result<StreamGraph, JobError> {
    let job = env.name();
    env.build()
        .map_err(|source| JobError::Graph { job, source })
}

fn sql(args: &mut JobArgs) -> Result<StreamGraph, JobError> {
    let parallelism = args.get("parallelism", 1)?;
    let text: String = args
        .optional("sql")?
        .ok_or_else(|| args.bad("sql", "the SQL text of the job is required"))?;
    Ok(spate_sql::plan(&text, parallelism)?)
}

fn generator(args: &mut JobArgs, defaults: GeneratorConfig) -> Result<GeneratorConfig, JobError> {
    let events: i64 = args.get("events", defaults.events.map_or(-1, |e| e as i64))?;
    Ok(GeneratorConfig {
        events: (events >= 0).then_some(events as u64),
        keys: args.get("keys", defaults.keys)?,
        seed: args.get("seed", defaults.seed)?,
        batch_size: args.get("batch-size", defaults.batch_size)?,
        start_ms: args.get("start-ms", defaults.start_ms)?,
        interval_us: args.get("interval-us", defaults.interval_us)?,
        disorder: args.get("disorder", defaults.disorder)?,
        late_every: args.get("late-every", defaults.late_every)?,
        late_by_ms: args.get("late-by-ms", defaults.late_by_ms)?,
        late_after: args.get("late-after", defaults.late_after)?,
        payload_bytes: args.get("payload-bytes", defaults.payload_bytes)?,
        splits: args.optional("splits")?,
        rate_per_subtask: args.optional("rate")?,
    })
}

fn source(env: &StreamEnv, config: GeneratorConfig) -> Result<DataStream, JobError> {
    let source = GeneratorSource::new(config).map_err(|e| JobError::BadArgument {
        job: "generator".into(),
        arg: "generator".into(),
        detail: e.to_string(),
    })?;
    Ok(env.source("generator", source, GeneratorConfig::schema()))
}

/// Writes CSV part files when `output` names a directory, else discards.
fn sink(args: &mut JobArgs, stream: DataStream) -> Result<(), JobError> {
    match args.optional::<String>("output")? {
        Some(directory) => stream.sink("csv", move |_| Ok(CsvFileSink::new(directory.clone()))),
        None => stream.sink("discard", |_| Ok(DiscardSink)),
    };
    Ok(())
}

/// Writes committed CSV part files (the exactly-once filesystem sink) when `output` names a
/// directory, else discards.
fn committed_sink(args: &mut JobArgs, stream: DataStream) -> Result<(), JobError> {
    let Some(path) = args.optional::<String>("output")? else {
        stream.sink("discard", |_| Ok(DiscardSink));
        return Ok(());
    };
    let values = BTreeMap::from([
        ("path".to_string(), path),
        ("format".to_string(), "csv".to_string()),
    ]);
    let mut options = TableOptions::new("out", values);
    let schema = stream.schema().clone();
    let table = TableContext {
        table: "out",
        schema: schema.clone(),
        options: &mut options,
        primary_key: &[],
    };
    let factory = Filesystem
        .sink(table)
        .map_err(|e| args.bad("output", e.to_string()))?;
    stream.transform("out", schema, factory);
    Ok(())
}

fn window_assigner(args: &mut JobArgs) -> Result<WindowAssigner, JobError> {
    let spec: String = args.get("window", "tumble:10000".to_string())?;
    let parts: Vec<&str> = spec.split(':').collect();
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|e| args.bad("window", format!("'{spec}': {e}")))
    };
    match parts.as_slice() {
        ["tumble", size] => Ok(WindowAssigner::Tumbling {
            size_ms: number(size)?,
        }),
        ["hop", size, slide] => Ok(WindowAssigner::Hopping {
            size_ms: number(size)?,
            slide_ms: number(slide)?,
        }),
        ["session", gap] => Ok(WindowAssigner::Session {
            gap_ms: number(gap)?,
        }),
        _ => Err(args.bad(
            "window",
            format!("'{spec}': expected tumble:SIZE_MS, hop:SIZE_MS:SLIDE_MS or session:GAP_MS"),
        )),
    }
}

fn aggregate(function: AggregateFunction, column: Option<&str>, output: &str) -> AggregateSpec {
    AggregateSpec {
        function,
        column: column.map(str::to_string),
        output: output.to_string(),
    }
}

fn window_count(args: &mut JobArgs) -> Result<StreamGraph, JobError> {
    let env = StreamEnv::new("window-count", args.get("parallelism", 1)?);
    let config = generator(args, GeneratorConfig::default())?;
    let bound: i64 = args.get("bound-ms", 2_000)?;
    let assigner = window_assigner(args)?;
    let mut events = source(&env, config)?;
    if let Some(parallelism) = args.optional::<u32>("source-parallelism")? {
        events = events.parallelism(parallelism);
    }
    let windows = events
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness("ts", bound))
        .project(&["key", "ts", "value"])
        .key_by(&["key"])
        .window(assigner)
        .aggregate(vec![
            aggregate(AggregateFunction::Count, None, "events"),
            aggregate(AggregateFunction::Sum, Some("value"), "value_sum"),
            aggregate(AggregateFunction::Min, Some("value"), "value_min"),
            aggregate(AggregateFunction::Max, Some("value"), "value_max"),
            aggregate(AggregateFunction::Avg, Some("value"), "value_avg"),
        ]);
    sink(args, windows)?;
    finish(env)
}

fn passthrough(args: &mut JobArgs) -> Result<StreamGraph, JobError> {
    let env = StreamEnv::new("passthrough", args.get("parallelism", 1)?);
    let defaults = GeneratorConfig {
        payload_bytes: 76,
        ..GeneratorConfig::default()
    };
    let config = generator(args, defaults)?;
    let below: i64 = args.get("below", 900)?;
    let kept = source(&env, config)?
        .filter("value < below", move |batch: &RecordBatch| {
            let value = batch
                .column_by_name("value")
                .ok_or_else(|| OperatorError::invalid("no column 'value'"))?;
            Ok(lt(value, &Int64Array::new_scalar(below))?)
        })
        .project(&["key", "ts", "value"]);
    sink(args, kept)?;
    finish(env)
}

fn backpressure(args: &mut JobArgs) -> Result<StreamGraph, JobError> {
    let env = StreamEnv::new("backpressure", args.get("parallelism", 1)?);
    let defaults = GeneratorConfig {
        events: None,
        batch_size: 256,
        ..GeneratorConfig::default()
    };
    let config = generator(args, defaults)?;
    let delay = Duration::from_millis(args.get("delay-ms", 5)?);
    let stall_after: Option<u64> = args.optional("stall-after")?;
    let sink_parallelism: u32 = args.get("sink-parallelism", 1)?;
    source(&env, config)?
        .rebalance()
        .sink("slow-sink", move |_| {
            Ok(ThrottledSink::new(delay, stall_after))
        })
        .parallelism(sink_parallelism);
    finish(env)
}

/// Two inputs: generated streams A and B (seeds `seed` and `seed + 1`) unioned into the first,
/// C (`seed + 2`, its event time shifted by `second-offset-ms`) the second, keyed by `key` on
/// both sides into `CoCount`. Each source has the generator's arguments and its own watermarks.
fn co_process(args: &mut JobArgs) -> Result<StreamGraph, JobError> {
    let env = StreamEnv::new("co-process", args.get("parallelism", 1)?);
    let config = generator(args, GeneratorConfig::default())?;
    let bound: i64 = args.get("bound-ms", 2_000)?;
    let window_ms: i64 = args.get("window-ms", 10_000)?;
    let offset: i64 = args.get("second-offset-ms", 0)?;
    if window_ms <= 0 {
        return Err(args.bad("window-ms", format!("{window_ms}: must be positive")));
    }
    let stream = |config: GeneratorConfig| -> Result<DataStream, JobError> {
        Ok(source(&env, config)?
            .with_watermarks(WatermarkStrategy::bounded_out_of_orderness("ts", bound))
            .project(&["key", "ts", "value"]))
    };
    let a = stream(config.clone())?;
    let b = stream(GeneratorConfig {
        seed: config.seed + 1,
        ..config.clone()
    })?;
    let c = stream(GeneratorConfig {
        seed: config.seed + 2,
        start_ms: config.start_ms + offset,
        ..config
    })?;
    let counts = a
        .union(b)
        .connect(c)
        .key_by(&["key"], &["key"])
        .process("co-count", CoCount::new(window_ms));
    committed_sink(args, counts)?;
    finish(env)
}

/// A changelog through a hash exchange: the running count per key of generated events, each
/// update retracting the count before it (`changes=retract`) or replacing it by key
/// (`changes=upsert`), partitioned by key again and written as plain rows `op, key, count`.
fn running_count(args: &mut JobArgs) -> Result<StreamGraph, JobError> {
    let env = StreamEnv::new("running-count", args.get("parallelism", 1)?);
    let config = generator(args, GeneratorConfig::default())?;
    let changes: String = args.get("changes", "retract".to_string())?;
    let (retract, mode) = match changes.as_str() {
        "retract" => (true, ChangelogMode::Retract),
        "upsert" => (
            false,
            ChangelogMode::Upsert {
                key: vec!["key".into()],
            },
        ),
        other => {
            return Err(args.bad("changes", format!("'{other}': expected retract or upsert")));
        }
    };
    let counts = source(&env, config)?
        .project(&["key"])
        .key_by(&["key"])
        .process("running-count", RunningCount::new(retract))
        .changelog_mode(mode);
    let rows = counts.key_by(&["key"]).stream().to_change_rows("op");
    committed_sink(args, rows)?;
    finish(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_job_builds_with_defaults() {
        for (name, _, _) in CATALOG.iter().filter(|(n, _, _)| *n != "sql") {
            let graph = build(name, &BTreeMap::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!graph.nodes.is_empty());
        }
    }

    #[test]
    fn mistakes_in_arguments_are_named() {
        let err = build("window-count", &args(&[("evnets", "10")]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown argument(s) evnets"), "{err}");
        let err = build("window-count", &args(&[("keys", "many")]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("argument 'keys': 'many'"), "{err}");
        let err = build("window-count", &args(&[("window", "weekly")]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("expected tumble:SIZE_MS"), "{err}");
        let err = build("nope", &BTreeMap::new()).err().unwrap().to_string();
        assert!(err.contains("known jobs: sql, window-count"), "{err}");
        let err = build("running-count", &args(&[("changes", "all")]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("'all': expected retract or upsert"), "{err}");
        let err = build("sql", &BTreeMap::new()).err().unwrap().to_string();
        assert!(err.contains("argument 'sql'"), "{err}");
    }
}
