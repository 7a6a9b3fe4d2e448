//! Event-time windows (tumbling, hopping, session) with COUNT/SUM/MIN/MAX/AVG/COUNT(DISTINCT) per
//! key, with the semantics of Flink's event-time `WindowOperator` and no allowed lateness. Open
//! windows live in the operator's memory on the heap backend (`heap.rs`) and in the keyed state
//! backend behind an in-memory bundle of recent updates on RocksDB (`store.rs`); either way they
//! are checkpointed in the backends' snapshot format and restore at any parallelism, into
//! either backend.

mod aggregate;
mod assigner;
mod bytes;
mod distinct;
mod heap;
mod operator;
mod output;
mod panes;
mod session;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use spate_api::{KeyEncoder, OperatorError, Result};

pub use aggregate::{AggregateFunction, AggregateSpec};
pub use assigner::WindowAssigner;
pub use operator::WindowOperator;

pub(crate) use aggregate::{Aggregate, Input, Kind, beats};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// Columns grouping records; none puts every record in the same group.
    pub key_columns: Vec<String>,
    /// A TIMESTAMP(3) or BIGINT milliseconds column.
    pub event_time_column: String,
    pub assigner: WindowAssigner,
    pub aggregates: Vec<AggregateSpec>,
}

/// A spec checked against its input schema.
#[derive(Debug)]
struct Resolved {
    keys: Option<KeyEncoder>,
    time_column: usize,
    aggregates: Vec<Aggregate>,
    schema: SchemaRef,
}

impl WindowSpec {
    /// Output: the key columns (same names and types), then `window_start` and `window_end`
    /// (both non-null `Timestamp(Millisecond, None)`), then one column per aggregate, named by
    /// its `output`. Fails, naming the column, if the spec does not fit `input`.
    pub fn output_schema(&self, input: &Schema) -> Result<SchemaRef> {
        Ok(self.resolve(input)?.schema)
    }

    fn resolve(&self, input: &Schema) -> Result<Resolved> {
        self.assigner.validate()?;
        for name in &self.key_columns {
            if let Ok(field) = input.field_with_name(name)
                && !RowConverter::supports_fields(&[SortField::new(field.data_type().clone())])
            {
                return Err(OperatorError::invalid(format!(
                    "key column '{name}' has type {}, which cannot be used as a key",
                    field.data_type()
                )));
            }
        }
        let keys = if self.key_columns.is_empty() {
            None
        } else {
            Some(KeyEncoder::new(input, &self.key_columns)?)
        };
        let time_name = &self.event_time_column;
        let time_column = input.index_of(time_name).map_err(|_| {
            OperatorError::invalid(format!(
                "event-time column '{time_name}' is not in the input"
            ))
        })?;
        match input.field(time_column).data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => {}
            other => {
                return Err(OperatorError::invalid(format!(
                    "event-time column '{time_name}' has type {other}; expected TIMESTAMP(3) or \
                     BIGINT milliseconds"
                )));
            }
        }
        let aggregates = self
            .aggregates
            .iter()
            .map(|a| a.resolve(input))
            .collect::<Result<Vec<_>>>()?;

        let window_bound = |name| {
            Field::new(
                name,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            )
        };
        let mut fields: Vec<Field> = keys.iter().flat_map(|k| k.fields().to_vec()).collect();
        fields.push(window_bound("window_start"));
        fields.push(window_bound("window_end"));
        fields.extend(aggregates.iter().map(|a| a.output().clone()));
        let mut names = HashSet::new();
        for field in &fields {
            if !names.insert(field.name()) {
                return Err(OperatorError::invalid(format!(
                    "window output column '{}' appears more than once",
                    field.name()
                )));
            }
        }
        Ok(Resolved {
            keys,
            time_column,
            aggregates,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn input() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("i8", DataType::Int8, true),
            Field::new("u64", DataType::UInt64, true),
            Field::new("f32", DataType::Float32, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "tags",
                DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::new_list(DataType::Utf8, true)),
                ),
                true,
            ),
        ])
    }

    fn agg(function: AggregateFunction, column: Option<&str>, output: &str) -> AggregateSpec {
        AggregateSpec {
            function,
            column: column.map(str::to_string),
            output: output.to_string(),
        }
    }

    fn spec(aggregates: Vec<AggregateSpec>) -> WindowSpec {
        WindowSpec {
            key_columns: vec!["k".into()],
            event_time_column: "ts".into(),
            assigner: WindowAssigner::Tumbling { size_ms: 1000 },
            aggregates,
        }
    }

    fn error(spec: WindowSpec) -> String {
        spec.output_schema(&input()).unwrap_err().to_string()
    }

    #[test]
    fn output_has_keys_window_bounds_and_aggregates_with_their_types() {
        use AggregateFunction::*;
        let schema = spec(vec![
            agg(Count, None, "n"),
            agg(Count, Some("k"), "count_k"),
            agg(Sum, Some("i8"), "sum_i8"),
            agg(Sum, Some("f32"), "sum_f32"),
            agg(Min, Some("u64"), "min_u64"),
            agg(Max, Some("f32"), "max_f32"),
            agg(Max, Some("at"), "max_at"),
            agg(Min, Some("k"), "min_k"),
            agg(Avg, Some("i8"), "avg_i8"),
            agg(CountDistinct, Some("k"), "distinct_k"),
            agg(CountDistinct, Some("f32"), "distinct_f32"),
        ])
        .output_schema(&input())
        .unwrap();
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        let expected = Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("window_start", ms.clone(), false),
            Field::new("window_end", ms, false),
            Field::new("n", DataType::Int64, false),
            Field::new("count_k", DataType::Int64, false),
            Field::new("sum_i8", DataType::Int64, true),
            Field::new("sum_f32", DataType::Float64, true),
            Field::new("min_u64", DataType::Int64, true),
            Field::new("max_f32", DataType::Float64, true),
            Field::new(
                "max_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("min_k", DataType::Utf8, true),
            Field::new("avg_i8", DataType::Float64, true),
            Field::new("distinct_k", DataType::Int64, false),
            Field::new("distinct_f32", DataType::Int64, false),
        ]);
        assert_eq!(schema.as_ref(), &expected);
    }

    #[test]
    fn errors_name_the_column() {
        use AggregateFunction::*;
        let mut unknown_key = spec(vec![]);
        unknown_key.key_columns = vec!["nope".into()];
        assert!(error(unknown_key).contains("'nope'"));

        let mut unknown_time = spec(vec![]);
        unknown_time.event_time_column = "when".into();
        assert!(error(unknown_time).contains("event-time column 'when'"));

        let mut text_time = spec(vec![]);
        text_time.event_time_column = "k".into();
        let message = error(text_time);
        assert!(
            message.contains("'k'") && message.contains("Utf8"),
            "{message}"
        );

        let message = error(spec(vec![agg(Sum, Some("missing"), "total")]));
        assert!(
            message.contains("'missing'") && message.contains("'total'"),
            "{message}"
        );

        let message = error(spec(vec![agg(Sum, Some("k"), "total")]));
        assert!(
            message.contains("'k'") && message.contains("Utf8") && message.contains("SUM"),
            "{message}"
        );
        let message = error(spec(vec![agg(Avg, Some("at"), "mean")]));
        assert!(
            message.contains("'at'") && message.contains("AVG"),
            "{message}"
        );
        let message = error(spec(vec![agg(Min, Some("tags"), "least")]));
        assert!(
            message.contains("'tags'") && message.contains("timestamp or string"),
            "{message}"
        );

        let message = error(spec(vec![agg(Max, None, "top")]));
        assert!(
            message.contains("'top'") && message.contains("MAX"),
            "{message}"
        );

        let message = error(spec(vec![agg(CountDistinct, None, "kinds")]));
        assert!(
            message.contains("'kinds'") && message.contains("COUNT(DISTINCT) needs a column"),
            "{message}"
        );
        let message = error(spec(vec![agg(CountDistinct, Some("missing"), "kinds")]));
        assert!(message.contains("COUNT(DISTINCT missing)"), "{message}");
        let message = error(spec(vec![agg(CountDistinct, Some("tags"), "kinds")]));
        assert!(
            message.contains("'tags'") && message.contains("COUNT(DISTINCT) cannot compare"),
            "{message}"
        );

        let message = error(spec(vec![agg(Count, None, "window_end")]));
        assert!(message.contains("'window_end'"), "{message}");
    }

    #[test]
    fn window_sizes_must_be_positive() {
        let mut zero = spec(vec![]);
        zero.assigner = WindowAssigner::Tumbling { size_ms: 0 };
        assert!(error(zero).contains("size must be positive"));
        let mut negative = spec(vec![]);
        negative.assigner = WindowAssigner::Session { gap_ms: -5 };
        assert!(error(negative).contains("gap must be positive"));
    }
}
