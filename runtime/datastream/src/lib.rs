//! The DataStream API: write a job as a chain of calls, get a [`StreamGraph`].
//!
//! ```text
//! let env = StreamEnv::new("counts", 4);
//! env.source("events", GeneratorSource::new(cfg)?, GeneratorConfig::schema())
//!     .with_watermarks(WatermarkStrategy::bounded_out_of_orderness("ts", 2_000))
//!     .key_by(&["key"])
//!     .window(WindowAssigner::Tumbling { size_ms: 10_000 })
//!     .aggregate(vec![count("n")])
//!     .sink("out", sink_factory);
//! let graph = env.build()?;
//! ```
//!
//! Mistakes (an unknown column, a window without event time) are collected while the job is
//! written and reported together by [`StreamEnv::build`], so the builder stays fluent.

mod env;
mod stream;

pub use env::StreamEnv;
pub use stream::{
    ConnectedStreams, DataStream, KeyedConnectedStreams, KeyedStream, StreamSink, WindowedStream,
};
