//! Turning record batches into the bytes of a CSV, JSON-lines or debezium-json file.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, StructArray};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, Field, Schema};
use spate_api::{OperatorError, Result, RowKind};

use super::format::Format;
use crate::text::{TIMESTAMP_FORMAT, write_json};

/// Appends the rows of `batch` to `out` in `format`, each row ending with a newline. `kinds`
/// are the rows' kinds when the batch is a changelog (none: every row is an insert); only a
/// changelog format can write rows other than inserts.
pub(super) fn encode(
    format: Format,
    batch: &RecordBatch,
    kinds: Option<&[RowKind]>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let updates = kinds.is_some_and(|kinds| kinds.iter().any(|&k| k != RowKind::Insert));
    match format {
        Format::Csv { .. } | Format::Json if updates => {
            return Err(OperatorError::invalid(format!(
                "the {} format writes inserts only but received updates or deletes",
                format.name()
            )));
        }
        Format::Csv { delimiter } => {
            // The writer quotes only fields that need it, doubling quotes, and leaves NULL empty.
            let mut writer = arrow_csv::WriterBuilder::new()
                .with_header(false)
                .with_delimiter(delimiter)
                .with_timestamp_format(TIMESTAMP_FORMAT.to_string())
                .build(out);
            writer.write(batch)?;
        }
        Format::Json => write_json(batch, out)?,
        Format::DebeziumJson => write_json(&debezium(batch, kinds)?, out)?,
    }
    Ok(())
}

/// The batch as debezium envelopes: the row is `after` of a "c" when it adds to the result
/// and `before` of a "d" when it takes from it, as Flink's debezium-json serializer writes.
fn debezium(batch: &RecordBatch, kinds: Option<&[RowKind]>) -> Result<RecordBatch> {
    let adds: BooleanBuffer = match kinds {
        Some(kinds) => kinds.iter().map(|k| k.is_addition()).collect(),
        None => BooleanBuffer::new_set(batch.num_rows()),
    };
    let fields = batch.schema().fields().clone();
    let row = DataType::Struct(fields.clone());
    let side = |present: BooleanBuffer| -> Result<ArrayRef> {
        let array = StructArray::try_new(
            fields.clone(),
            batch.columns().to_vec(),
            Some(NullBuffer::new(present)),
        )?;
        Ok(Arc::new(array))
    };
    let op: StringArray = adds
        .iter()
        .map(|add| Some(if add { "c" } else { "d" }))
        .collect();
    let schema = Schema::new(vec![
        Field::new("before", row.clone(), true),
        Field::new("after", row, true),
        Field::new("op", DataType::Utf8, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![side(!&adds)?, side(adds)?, Arc::new(op)],
    )?)
}
