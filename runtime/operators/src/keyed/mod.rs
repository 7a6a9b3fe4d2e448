//! Keyed process functions with event- and processing-time timers, as Flink's
//! `KeyedProcessFunction`, plus the keyed-state plumbing the window operator shares.

mod context;
pub(crate) mod hash;
mod operator;
pub(crate) mod table;
mod timers;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{Result, Timestamp};

pub use context::KeyedContext;
pub use operator::KeyedProcessOperator;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    EventTime,
    ProcessingTime,
}

/// User logic run per key. Keys are the row-format bytes of the key columns (see
/// `spate_api::KeyEncoder`); timers registered through the context belong to the current key.
pub trait KeyedProcessFunction: Send {
    fn output_schema(&self) -> SchemaRef;

    /// All rows of `rows` have key `key` (row-format bytes from KeyEncoder), in arrival order.
    fn process(&mut self, key: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>)
    -> Result<()>;

    fn on_timer(
        &mut self,
        key: &[u8],
        timestamp: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()>;
}
