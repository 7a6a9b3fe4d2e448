//! Turning record batches into the bytes of a CSV, JSON-lines or debezium-json file.

use arrow_array::RecordBatch;
use spate_api::{OperatorError, Result, RowKind};

use super::format::Format;
use crate::text::{TIMESTAMP_FORMAT, debezium_envelopes, write_json};

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
        Format::DebeziumJson => write_json(&debezium_envelopes(batch, kinds)?, out)?,
    }
    Ok(())
}
