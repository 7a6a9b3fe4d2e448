//! The `blackhole` connector (Flink's connector of the same name): a sink that swallows every
//! row, for measuring a pipeline without the cost of its output.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use spate_api::{
    ChangelogMode, Operator, OperatorContext, OperatorError, OperatorFactory, Output, Result,
    split_row_kinds,
};

use crate::{Connector, ConnectorError, OptionDoc, TableContext, TableOptions, upsert_or_retract};

const NAME: &str = "blackhole";

/// The `blackhole` connector.
pub struct Blackhole;

impl Connector for Blackhole {
    fn name(&self) -> &'static str {
        NAME
    }

    fn options(&self) -> &'static [OptionDoc] {
        &[]
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
        table.options.finish(NAME, &[])?;
        let name = table.table.to_string();
        let schema = table.schema;
        Ok(Arc::new(
            move |_: &OperatorContext| -> Result<Box<dyn Operator>> {
                Ok(Box::new(BlackholeSink {
                    table: name.clone(),
                    schema: schema.clone(),
                }))
            },
        ))
    }
}

struct BlackholeSink {
    table: String,
    schema: SchemaRef,
}

impl Operator for BlackholeSink {
    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        let (data, _) = split_row_kinds(&batch)?;
        check_batch(&self.table, &self.schema, &data)
    }
}

/// Checks that a batch reaching a sink has the table's declared column types. Every sink calls it:
/// a mismatch means the plan is wrong, and writing the batch anyway would corrupt the output
/// without a word. It lives here because checking is all the blackhole sink does.
pub fn check_batch(table: &str, schema: &Schema, batch: &RecordBatch) -> Result<()> {
    let declared = schema.fields();
    if batch.num_columns() != declared.len() {
        return Err(OperatorError::invalid(format!(
            "table '{table}' has {} columns but received a batch of {}",
            declared.len(),
            batch.num_columns()
        )));
    }
    for (field, column) in declared.iter().zip(batch.columns()) {
        if column.data_type() != field.data_type() {
            return Err(OperatorError::invalid(format!(
                "table '{table}': column '{}' is declared {} but received {}",
                field.name(),
                field.data_type(),
                column.data_type()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::{Int32Array, Int64Array};
    use arrow_schema::{DataType, Field};

    use super::*;

    fn sink(options: &[(&str, &str)]) -> Result<Arc<dyn OperatorFactory>, ConnectorError> {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let values: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut options = TableOptions::new("t", values);
        Blackhole.sink(TableContext {
            table: "t",
            schema,
            options: &mut options,
            primary_key: &[],
        })
    }

    #[test]
    fn swallows_batches_of_the_declared_types_only() {
        let factory = sink(&[("connector", "blackhole")]).unwrap();
        let mut sink = factory.create(&OperatorContext::single("sink")).unwrap();
        let mut out = Output::default();
        let good =
            RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2])) as _)])
                .unwrap();
        sink.process_batch(good, &mut out).unwrap();
        assert!(out.is_empty());

        let bad =
            RecordBatch::try_from_iter([("id", Arc::new(Int32Array::from(vec![1])) as _)]).unwrap();
        let err = sink.process_batch(bad, &mut out).unwrap_err().to_string();
        assert!(
            err.contains("column 'id' is declared Int64 but received Int32"),
            "{err}"
        );
    }

    #[test]
    fn refuses_every_option() {
        let err = sink(&[("connector", "blackhole"), ("path", "/tmp")])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown option(s) path"), "{err}");
    }
}
