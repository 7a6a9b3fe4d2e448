use arrow_array::{Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use spate_api::{OperatorError, Timestamp, WatermarkStrategy};

/// Bounded out-of-orderness: after each batch, watermark = max event time seen − bound − 1.
pub struct WatermarkGenerator {
    strategy: WatermarkStrategy,
    max_seen: Option<Timestamp>,
}

impl WatermarkGenerator {
    pub fn new(strategy: WatermarkStrategy) -> Self {
        WatermarkGenerator {
            strategy,
            max_seen: None,
        }
    }

    pub fn idle_timeout_ms(&self) -> Option<Timestamp> {
        self.strategy.idle_timeout_ms
    }

    /// The watermark after `batch`, if there is one yet.
    pub fn on_batch(&mut self, batch: &RecordBatch) -> Result<Option<Timestamp>, OperatorError> {
        let name = &self.strategy.event_time_column;
        let column = batch.column_by_name(name).ok_or_else(|| {
            OperatorError::invalid(format!(
                "watermark: event-time column '{name}' is not in the source output"
            ))
        })?;
        if column.null_count() > 0 {
            return Err(OperatorError::invalid(format!(
                "watermark: event-time column '{name}' has nulls"
            )));
        }
        let max = if let Some(ts) = column.as_any().downcast_ref::<TimestampMillisecondArray>() {
            ts.values().iter().copied().max()
        } else if let Some(ms) = column.as_any().downcast_ref::<Int64Array>() {
            ms.values().iter().copied().max()
        } else {
            return Err(OperatorError::invalid(format!(
                "watermark: event-time column '{name}' is {}; expected TIMESTAMP(3) or BIGINT milliseconds",
                column.data_type()
            )));
        };
        if let Some(max) = max {
            self.max_seen = Some(self.max_seen.map_or(max, |m| m.max(max)));
        }
        Ok(self.max_seen.map(|m| {
            m.saturating_sub(self.strategy.max_out_of_orderness_ms)
                .saturating_sub(1)
        }))
    }
}
