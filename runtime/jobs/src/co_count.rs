//! The `co-process` job's function: two inputs keyed alike, counted per key and event-time
//! window into one keyed state, so that its output shows which rows of either input reached the
//! operator, and once.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use spate_api::{OperatorError, Result, Timestamp};
use spate_operators::keyed::{KeyedCoProcessFunction, KeyedContext, TimeDomain};

/// Per key and tumbling window of `window_ms`: the rows of the first input, and the rows and
/// the sum of `value` of the second. A window is emitted when event time (the least of the two
/// inputs' watermarks) passes its end; a row at or behind event time is dropped as late, so an
/// event time combined any other way than the least of the inputs' loses rows.
#[derive(Clone)]
pub struct CoCount {
    window_ms: i64,
    schema: SchemaRef,
}

impl CoCount {
    pub fn new(window_ms: i64) -> Self {
        let column = |name: &str| Field::new(name, DataType::Int64, false);
        CoCount {
            window_ms,
            schema: Arc::new(Schema::new(vec![
                column("key"),
                column("window_start"),
                column("first_rows"),
                column("second_rows"),
                column("second_value_sum"),
            ])),
        }
    }

    fn add(&self, second: bool, rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        let column = |name: &str| {
            rows.column_by_name(name)
                .ok_or_else(|| OperatorError::invalid(format!("co-count: no column '{name}'")))
        };
        let times = column("ts")?.as_primitive::<TimestampMillisecondType>();
        let values = column("value")?.as_primitive::<Int64Type>();
        let key = column("key")?.as_primitive::<Int64Type>().value(0);
        ctx.value_state::<i64>("key")?.set(&key)?;
        for (ts, value) in times.values().iter().zip(values.values()) {
            if *ts <= ctx.current_watermark() {
                continue;
            }
            let start = ts.div_euclid(self.window_ms) * self.window_ms;
            let counted = if second { "second_rows" } else { "first_rows" };
            let mut counts = ctx.map_state::<i64, i64>(counted)?;
            let n = counts.get(&start)?.unwrap_or(0);
            counts.put(&start, &(n + 1))?;
            if second {
                let mut sums = ctx.map_state::<i64, i64>("second_value_sum")?;
                let sum = sums.get(&start)?.unwrap_or(0);
                sums.put(&start, &(sum + value))?;
            }
            ctx.register_event_time_timer(start + self.window_ms - 1)?;
        }
        Ok(())
    }
}

impl KeyedCoProcessFunction for CoCount {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process1(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        self.add(false, rows, ctx)
    }

    fn process2(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        self.add(true, rows, ctx)
    }

    fn on_timer(
        &mut self,
        _: &[u8],
        timestamp: Timestamp,
        _: TimeDomain,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        let start = timestamp + 1 - self.window_ms;
        let key = ctx.value_state::<i64>("key")?.get()?.unwrap_or_default();
        let mut taken = Vec::new();
        for state in ["first_rows", "second_rows", "second_value_sum"] {
            let mut map = ctx.map_state::<i64, i64>(state)?;
            taken.push(map.get(&start)?.unwrap_or(0));
            map.remove(&start)?;
        }
        let columns = [key, start, taken[0], taken[1], taken[2]]
            .map(|v| Arc::new(Int64Array::from(vec![v])) as _)
            .to_vec();
        ctx.emit(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
