use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use spate_api::{
    ChangelogMode, ROW_KIND_COLUMN, Result, RowKind, WatermarkStrategy, changelog_batch,
    changelog_schema,
};
use spate_datastream::StreamEnv;
use spate_graph::{JobGraph, Partitioning};
use spate_operators::generator::{GeneratorConfig, GeneratorSource};
use spate_operators::keyed::{KeyedCoProcessFunction, KeyedContext, KeyedProcessFunction};
use spate_operators::sink::DiscardSink;
use spate_operators::window::{AggregateFunction, AggregateSpec, WindowAssigner};

#[derive(Clone)]
struct PassThrough(SchemaRef);

impl KeyedProcessFunction for PassThrough {
    fn output_schema(&self) -> SchemaRef {
        self.0.clone()
    }
    fn process(
        &mut self,
        _key: &[u8],
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        ctx.emit(rows.clone())
    }
}

fn source(env: &StreamEnv) -> spate_datastream::DataStream {
    let generator = GeneratorSource::new(GeneratorConfig::default()).unwrap();
    env.source("events", generator, GeneratorConfig::schema())
}

#[test]
fn a_fluent_job_becomes_chained_vertices_and_exchanges() {
    let env = StreamEnv::new("fluent", 2);
    let schema = GeneratorConfig::schema();
    source(&env)
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness("ts", 1000))
        .filter("all", |b: &RecordBatch| {
            Ok(BooleanArray::from(vec![true; b.num_rows()]))
        })
        .flat_map("twice", schema.clone(), |b| Ok(vec![b.clone(), b]))
        .key_by(&["key"])
        .process("pass", PassThrough(schema))
        .rebalance()
        .key_by(&["key"])
        .window(WindowAssigner::Tumbling { size_ms: 1000 })
        .aggregate(vec![AggregateSpec {
            function: AggregateFunction::Count,
            column: None,
            output: "n".into(),
        }])
        .sink("out", |_| Ok(DiscardSink))
        .parallelism(2);
    let job = JobGraph::build(env.build().unwrap()).unwrap();
    let names: Vec<&str> = job.vertices.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "events -> all -> twice",
            "pass",
            "window(Tumbling { size_ms: 1000 }) -> out"
        ]
    );
    let exchanges: Vec<&Partitioning> = job.edges.iter().map(|e| &e.partitioning).collect();
    assert_eq!(exchanges, vec![&Partitioning::Hash(vec!["key".into()]); 2]);
    let window = job.node(job.vertices[2].nodes[0]);
    assert_eq!(window.output_schema.field(0).name(), "key");
    assert_eq!(window.output_schema.field(1).name(), "window_start");
}

#[test]
fn mistakes_are_collected_and_reported_by_build() {
    let env = StreamEnv::new("wrong", 1);
    source(&env)
        .project(&["key", "nope"])
        .key_by(&["missing"])
        .window(WindowAssigner::Tumbling { size_ms: 10 })
        .aggregate(Vec::new())
        .sink("out", |_| Ok(DiscardSink));
    let err = env.build().err().expect("refused").to_string();
    assert!(err.contains("column 'nope'"), "{err}");
    assert!(err.contains("key_by: column 'missing'"), "{err}");
    assert!(err.contains("no event time"), "{err}");
}

#[derive(Clone)]
struct Both(SchemaRef);

impl KeyedCoProcessFunction for Both {
    fn output_schema(&self) -> SchemaRef {
        self.0.clone()
    }
    fn process1(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        ctx.emit(rows.clone())
    }
    fn process2(&mut self, _: &[u8], _: &RecordBatch, _: &mut KeyedContext<'_>) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_union_feeds_one_input_and_a_connected_pair_two() {
    let env = StreamEnv::new("two inputs", 2);
    let schema = GeneratorConfig::schema();
    let a = source(&env);
    let b = env.source(
        "more",
        GeneratorSource::new(GeneratorConfig::default()).unwrap(),
        schema.clone(),
    );
    let c = env
        .source(
            "other",
            GeneratorSource::new(GeneratorConfig::default()).unwrap(),
            schema.clone(),
        )
        .project(&["key", "ts"]);
    a.union(b)
        .connect(c)
        .key_by(&["key"], &["key"])
        .process("both", Both(schema))
        .sink("out", |_| Ok(DiscardSink));
    let job = JobGraph::build(env.build().unwrap()).unwrap();
    let names: Vec<&str> = job.vertices.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["events", "more", "other -> project(key, ts)", "both -> out"]
    );
    assert_eq!(job.num_inputs(3), 2);
    let edges: Vec<(u32, u32, &Partitioning)> = job
        .edges
        .iter()
        .map(|e| (e.from, e.to_input, &e.partitioning))
        .collect();
    let key = Partitioning::Hash(vec!["key".into()]);
    assert_eq!(edges, [(0, 0, &key), (1, 0, &key), (2, 1, &key)]);
}

#[test]
fn mistakes_of_unions_and_connected_streams_are_named() {
    let env = StreamEnv::new("wrong", 1);
    let keys = source(&env).project(&["key"]);
    let union = source(&env).union(keys);
    let _ = union.parallelism(3);
    let err = env.build().err().expect("refused").to_string();
    assert!(
        err.contains("union: the streams have other schemas"),
        "{err}"
    );

    let env = StreamEnv::new("wrong", 1);
    let union = source(&env).union(source(&env));
    let _ = union.parallelism(3);
    let err = env.build().err().expect("refused").to_string();
    assert!(
        err.contains("parallelism: a union of streams has no operator"),
        "{err}"
    );

    let env = StreamEnv::new("wrong", 1);
    let schema = GeneratorConfig::schema();
    source(&env)
        .connect(source(&env))
        .key_by(&["key"], &["ts"])
        .process("both", Both(schema))
        .sink("out", |_| Ok(DiscardSink));
    let err = env.build().err().expect("refused").to_string();
    assert!(
        err.contains("keyed by columns of other types: (key) is (Int64) and (ts) is"),
        "{err}"
    );
}

/// Each row of a key replaces the key's row: an upsert changelog of the input's rows.
#[derive(Clone)]
struct Latest(SchemaRef);

impl KeyedProcessFunction for Latest {
    fn output_schema(&self) -> SchemaRef {
        changelog_schema(&self.0)
    }
    fn process(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        let kinds = vec![RowKind::UpdateAfter; rows.num_rows()];
        ctx.emit(changelog_batch(self.output_schema(), rows, &kinds)?)
    }
}

fn upsert_by_key() -> ChangelogMode {
    ChangelogMode::Upsert {
        key: vec!["key".into()],
    }
}

/// The latest row per key, as an upsert changelog.
fn latest(env: &StreamEnv) -> spate_datastream::DataStream {
    source(env)
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness("ts", 1000))
        .key_by(&["key"])
        .process("latest", Latest(GeneratorConfig::schema()))
        .changelog_mode(upsert_by_key())
}

#[test]
fn changelogs_keep_their_kinds_and_mode_until_written_as_rows() {
    let env = StreamEnv::new("changes", 2);
    let keys = latest(&env).project(&["key", "value"]);
    assert_eq!(keys.changelog(), upsert_by_key());
    assert_eq!(
        keys.schema().fields().last().unwrap().name(),
        ROW_KIND_COLUMN,
        "a projection keeps the row kinds"
    );
    let rows = keys.key_by(&["key"]).stream().to_change_rows("op");
    assert_eq!(rows.changelog(), ChangelogMode::AppendOnly);
    let names: Vec<&str> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["op", "key", "value"]);
    rows.sink("out", |_| Ok(DiscardSink));
    let job = JobGraph::build(env.build().unwrap()).unwrap();
    let plan = job.explain();
    assert!(
        plan.contains("(hash[key], upsert[key] changelog)"),
        "{plan}"
    );
    assert!(
        plan.contains("latest -> project(key, value, $row_kind)"),
        "{plan}"
    );
}

#[test]
fn mistakes_with_changelogs_are_named() {
    let refused = |build: fn(&StreamEnv)| {
        let env = StreamEnv::new("wrong", 2);
        build(&env);
        match env.build() {
            Err(e) => e.to_string(),
            Ok(graph) => JobGraph::build(graph).err().expect("refused").to_string(),
        }
    };
    let err = refused(|env| {
        latest(env)
            .key_by(&["key"])
            .window(WindowAssigner::Tumbling { size_ms: 1000 })
            .aggregate(Vec::new())
            .sink("out", |_| Ok(DiscardSink));
    });
    assert!(
        err.contains(
            "window: windows take inserts only, and the stream is a changelog (upsert[key])"
        ),
        "{err}"
    );
    let err = refused(|env| {
        let retract = source(env)
            .key_by(&["key"])
            .process("retract", Latest(GeneratorConfig::schema()))
            .changelog_mode(ChangelogMode::Retract);
        let _ = latest(env).union(retract);
    });
    assert!(
        err.contains("union: the streams carry other kinds of rows: upsert[key] and retract"),
        "{err}"
    );
    let err = refused(|env| {
        source(env)
            .key_by(&["key"])
            .process("latest", Latest(GeneratorConfig::schema()))
            .sink("out", |_| Ok(DiscardSink));
    });
    assert!(
        err.contains("'latest': its output carries row kinds"),
        "{err}"
    );
    let err = refused(|env| {
        latest(env).rebalance().sink("out", |_| Ok(DiscardSink));
    });
    assert!(err.contains("cannot be rebalanced"), "{err}");
}
