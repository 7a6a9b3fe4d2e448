//! Sinks: operators at the end of a job that emit nothing downstream.

mod csv;
mod discard;
mod throttle;

pub use csv::CsvFileSink;
pub use discard::DiscardSink;
pub use throttle::ThrottledSink;
