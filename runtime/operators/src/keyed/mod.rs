//! Keyed process functions with keyed state and event- and processing-time timers, as Flink's
//! `KeyedProcessFunction` and, on two inputs keyed alike, `KeyedCoProcessFunction`; plus the key
//! interning the window operator shares.

#[cfg(test)]
mod checkpoint_tests;
mod context;
pub(crate) mod hash;
mod operator;
mod state;
pub(crate) mod table;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{Result, Timestamp};

pub use context::KeyedContext;
pub use operator::{
    KeyedCoProcessOperator, KeyedLogic, KeyedOperator, KeyedProcessOperator, OneInput, TwoInputs,
};
pub use spate_state::{StateDescriptor, TimeDomain, Ttl};
pub use state::{KeyedList, KeyedMap, KeyedValue, StateName};

/// User logic run per key. Keys are the row-format bytes of the key columns (see
/// `spate_api::KeyEncoder`); state and timers reached through the context belong to the current
/// key.
///
/// Keep what must survive a failure in the context's keyed state
/// ([`KeyedContext::value_state`], [`list_state`](KeyedContext::list_state),
/// [`map_state`](KeyedContext::map_state)): that state and the timers are checkpointed with the
/// operator and move with their keys when the job is rescaled, while fields of the function start
/// afresh on every restore.
///
/// ```
/// # use arrow_array::RecordBatch;
/// # use arrow_schema::SchemaRef;
/// # use spate_api::{Result, Timestamp};
/// # use spate_operators::keyed::{KeyedContext, KeyedProcessFunction, TimeDomain};
/// struct CountRows(SchemaRef);
///
/// impl KeyedProcessFunction for CountRows {
///     fn output_schema(&self) -> SchemaRef {
///         self.0.clone()
///     }
///
///     fn process(&mut self, _key: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>)
///     -> Result<()> {
///         let mut count = ctx.value_state::<u64>("count")?;
///         let seen = count.get()?.unwrap_or(0);
///         count.set(&(seen + rows.num_rows() as u64))?;
///         ctx.register_event_time_timer(ctx.current_watermark().saturating_add(1000))
///     }
///
///     fn on_timer(&mut self, _key: &[u8], _at: Timestamp, _domain: TimeDomain,
///         ctx: &mut KeyedContext<'_>) -> Result<()> {
///         ctx.value_state::<u64>("count")?.clear()
///     }
/// }
/// ```
pub trait KeyedProcessFunction: Send {
    fn output_schema(&self) -> SchemaRef;

    /// All rows of `rows` have key `key` (row-format bytes from KeyEncoder), in arrival order.
    fn process(&mut self, key: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>)
    -> Result<()>;

    /// A timer of the current key fired. Functions that register no timers keep the default,
    /// which does nothing (as Flink's `onTimer`).
    fn on_timer(
        &mut self,
        _key: &[u8],
        _timestamp: Timestamp,
        _domain: TimeDomain,
        _ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        Ok(())
    }
}

/// User logic run per key on two inputs (Flink's `KeyedCoProcessFunction`): both inputs are
/// keyed by columns of the same types, so a key's state and timers are shared by its rows from
/// either input. Rows of input 0 reach `process1`, rows of input 1 `process2`; the watermark the
/// context shows is the least of the two inputs'.
pub trait KeyedCoProcessFunction: Send {
    fn output_schema(&self) -> SchemaRef;

    fn process1(
        &mut self,
        key: &[u8],
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()>;

    fn process2(
        &mut self,
        key: &[u8],
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()>;

    /// A timer of the current key fired. Functions that register no timers keep the default,
    /// which does nothing (as Flink's `onTimer`).
    fn on_timer(
        &mut self,
        _key: &[u8],
        _timestamp: Timestamp,
        _domain: TimeDomain,
        _ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        Ok(())
    }
}
