use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use spate_api::{Result, Timestamp, WatermarkStrategy};
use spate_datastream::StreamEnv;
use spate_graph::{JobGraph, Partitioning};
use spate_operators::generator::{GeneratorConfig, GeneratorSource};
use spate_operators::keyed::{KeyedContext, KeyedProcessFunction, TimeDomain};
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
    fn on_timer(
        &mut self,
        _: &[u8],
        _: Timestamp,
        _: TimeDomain,
        _: &mut KeyedContext<'_>,
    ) -> Result<()> {
        Ok(())
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
