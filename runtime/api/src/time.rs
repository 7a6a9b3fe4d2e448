use arrow_array::{Array, ArrayRef, Int64Array, TimestampMillisecondArray};
use arrow_schema::{DataType, TimeUnit};

use crate::error::{OperatorError, Result};

/// Event and processing times are milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// The watermark before any event time is known.
pub const MIN_WATERMARK: Timestamp = i64::MIN;
/// The watermark that ends event time: every window fires, every event-time timer runs.
pub const MAX_WATERMARK: Timestamp = i64::MAX;

pub fn now_millis() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Timestamp)
        .unwrap_or(0)
}

/// Reads an event-time column as milliseconds. Event time may be a millisecond timestamp or a
/// plain Int64 of milliseconds; nulls are refused because a record without time cannot be placed.
pub fn event_time_column(column: &ArrayRef, name: &str) -> Result<Vec<Timestamp>> {
    if column.null_count() > 0 {
        return Err(OperatorError::invalid(format!(
            "event-time column '{name}' has {} null values",
            column.null_count()
        )));
    }
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => Ok(column
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("type checked")
            .values()
            .to_vec()),
        DataType::Int64 => Ok(column
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("type checked")
            .values()
            .to_vec()),
        other => Err(OperatorError::invalid(format!(
            "event-time column '{name}' has type {other}; expected TIMESTAMP(3) or BIGINT milliseconds"
        ))),
    }
}
