//! The `print` connector (Flink's connector of the same name): a sink writing every row to the
//! worker's standard output (or error), in Flink's format, for debugging and demos.

use std::io::Write;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::SchemaRef;
use spate_api::{
    ChangelogMode, Operator, OperatorContext, OperatorFactory, Output, Result, RowKind,
    split_row_kinds,
};

use crate::blackhole::check_batch;
use crate::{Connector, ConnectorError, OptionDoc, TableContext, TableOptions, upsert_or_retract};

const NAME: &str = "print";

static OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "print-identifier",
        default: None,
        description: "A prefix for every printed row, to tell several print tables apart.",
    },
    OptionDoc {
        name: "standard-error",
        default: Some("false"),
        description: "'true' prints to standard error instead of standard output.",
    },
];

/// Flink prints TIMESTAMP values in ISO form, with a `T`.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f";

/// The `print` connector.
pub struct Print;

impl Connector for Print {
    fn name(&self) -> &'static str {
        NAME
    }

    fn options(&self) -> &'static [OptionDoc] {
        OPTIONS
    }

    /// Every change is taken; with a key, as an upsert sink's (no update-before rows).
    fn primary_key(&self, _table: &str, _key: &[String]) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn sink_changelog(
        &self,
        _options: &TableOptions,
        primary_key: &[String],
    ) -> Result<ChangelogMode, ConnectorError> {
        Ok(upsert_or_retract(primary_key))
    }

    fn sink(&self, table: TableContext<'_>) -> Result<Arc<dyn OperatorFactory>, ConnectorError> {
        let options = table.options;
        let identifier = options.get("print-identifier").map(str::to_string);
        let standard_error = options.parse("standard-error", false)?;
        options.finish(NAME, OPTIONS)?;
        let name = table.table.to_string();
        let schema = table.schema;
        Ok(Arc::new(
            move |ctx: &OperatorContext| -> Result<Box<dyn Operator>> {
                Ok(Box::new(PrintSink {
                    table: name.clone(),
                    schema: schema.clone(),
                    rows: RowFormat::new(identifier.as_deref(), ctx.subtask, ctx.parallelism),
                    standard_error,
                    text: String::new(),
                }))
            },
        ))
    }
}

struct PrintSink {
    table: String,
    schema: SchemaRef,
    rows: RowFormat,
    standard_error: bool,
    /// The current batch's lines, reused between batches.
    text: String,
}

impl Operator for PrintSink {
    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        let (data, kinds) = split_row_kinds(&batch)?;
        check_batch(&self.table, &self.schema, &data)?;
        self.text.clear();
        self.rows.format(&data, kinds.as_deref(), &mut self.text)?;
        // One write per batch under the lock keeps lines of concurrent subtasks whole; the flush
        // makes rows appear as they arrive, even when the output is a pipe.
        let mut out: Box<dyn Write> = if self.standard_error {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        };
        out.write_all(self.text.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

/// Flink's print format: `+I[v1, v2, ...]` (or `-U`, `+U`, `-D` for a changelog's rows), after a
/// prefix naming the identifier and, when the
/// sink runs in parallel, the subtask counted from 1: `id:2> `, `2> `, `id> ` or nothing.
struct RowFormat {
    prefix: String,
}

impl RowFormat {
    fn new(identifier: Option<&str>, subtask: u32, parallelism: u32) -> Self {
        let mut prefix = identifier.unwrap_or_default().to_string();
        if parallelism > 1 {
            if !prefix.is_empty() {
                prefix.push(':');
            }
            prefix.push_str(&(subtask + 1).to_string());
        }
        if !prefix.is_empty() {
            prefix.push_str("> ");
        }
        RowFormat { prefix }
    }

    /// Appends one line per row of `batch` to `text`; rows without `kinds` are inserts.
    fn format(
        &self,
        batch: &RecordBatch,
        kinds: Option<&[RowKind]>,
        text: &mut String,
    ) -> Result<()> {
        let options = FormatOptions::new()
            .with_null("null")
            .with_timestamp_format(Some(TIMESTAMP_FORMAT));
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            text.push_str(&self.prefix);
            text.push_str(
                kinds
                    .map_or(RowKind::Insert, |kinds| kinds[row])
                    .short_string(),
            );
            text.push('[');
            for (i, formatter) in formatters.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                formatter.value(row).write(text)?;
            }
            text.push_str("]\n");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::{
        BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
    };

    use super::*;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![Some(1), None])) as _),
            ("n", Arc::new(Int32Array::from(vec![7, -3])) as _),
            ("price", Arc::new(Float64Array::from(vec![1.5, 2.0])) as _),
            (
                "ok",
                Arc::new(BooleanArray::from(vec![Some(true), None])) as _,
            ),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a, \"b\""), None])) as _,
            ),
            (
                "ts",
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_704_164_645_678),
                    None,
                ])) as _,
            ),
        ])
        .unwrap()
    }

    fn printed(identifier: Option<&str>, subtask: u32, parallelism: u32) -> String {
        let mut text = String::new();
        RowFormat::new(identifier, subtask, parallelism)
            .format(&batch(), None, &mut text)
            .unwrap();
        text
    }

    #[test]
    fn rows_are_printed_like_flink() {
        assert_eq!(
            printed(None, 0, 1),
            "+I[1, 7, 1.5, true, a, \"b\", 2024-01-02T03:04:05.678]\n\
             +I[null, -3, 2.0, null, null, null]\n"
        );
    }

    #[test]
    fn changes_are_printed_with_their_kinds() {
        let batch = batch();
        let changes = spate_api::changelog_batch(
            spate_api::changelog_schema(batch.schema_ref()),
            &batch,
            &[RowKind::UpdateBefore, RowKind::Delete],
        )
        .unwrap();
        let (data, kinds) = split_row_kinds(&changes).unwrap();
        let mut text = String::new();
        RowFormat::new(None, 1, 2)
            .format(&data, kinds.as_deref(), &mut text)
            .unwrap();
        let kinds: Vec<&str> = text.lines().map(|l| &l[..5]).collect();
        assert_eq!(kinds, ["2> -U", "2> -D"]);
    }

    #[test]
    fn prefix_names_identifier_and_subtask_from_one() {
        let first_line = |text: String| text.lines().next().unwrap().to_string();
        assert!(first_line(printed(Some("out"), 1, 4)).starts_with("out:2> +I[1, "));
        assert!(first_line(printed(None, 1, 4)).starts_with("2> +I[1, "));
        assert!(first_line(printed(Some("out"), 0, 1)).starts_with("out> +I[1, "));
        assert!(first_line(printed(Some(""), 0, 1)).starts_with("+I[1, "));
    }

    fn sink(options: &[(&str, &str)]) -> Result<Arc<dyn OperatorFactory>, ConnectorError> {
        let values: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut options = TableOptions::new("t", values);
        Print.sink(TableContext {
            table: "t",
            schema: batch().schema(),
            options: &mut options,
            primary_key: &[],
        })
    }

    #[test]
    fn options_are_checked() {
        assert!(sink(&[("print-identifier", "x"), ("standard-error", "true")]).is_ok());
        let err = sink(&[("standard-eror", "true")])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown option(s) standard-eror"), "{err}");
        let err = sink(&[("standard-error", "maybe")])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("'standard-error' = 'maybe'"), "{err}");
    }

    #[test]
    fn sink_refuses_batches_of_other_types() {
        let factory = sink(&[("standard-error", "true")]).unwrap();
        let mut sink = factory.create(&OperatorContext::single("print")).unwrap();
        let other =
            RecordBatch::try_from_iter([("id", Arc::new(Int32Array::from(vec![1])) as _)]).unwrap();
        let err = sink
            .process_batch(other, &mut Output::default())
            .unwrap_err();
        assert!(err.to_string().contains("has 6 columns"), "{err}");
    }
}
