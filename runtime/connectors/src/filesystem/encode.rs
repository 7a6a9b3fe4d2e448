//! Turning record batches into the bytes of a CSV or JSON-lines file.

use arrow_array::RecordBatch;
use arrow_json::writer::LineDelimited;
use spate_api::Result;

use super::format::{Format, TIMESTAMP_FORMAT};

/// Appends the rows of `batch` to `out` in `format`, each row ending with a newline.
pub(super) fn encode(format: Format, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    match format {
        Format::Csv { delimiter } => {
            // The writer quotes only fields that need it, doubling quotes, and leaves NULL empty.
            let mut writer = arrow_csv::WriterBuilder::new()
                .with_header(false)
                .with_delimiter(delimiter)
                .with_timestamp_format(TIMESTAMP_FORMAT.to_string())
                .build(out);
            writer.write(batch)?;
        }
        Format::Json => {
            let mut writer = arrow_json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_timestamp_format(TIMESTAMP_FORMAT.to_string())
                .build::<_, LineDelimited>(out);
            writer.write(batch)?;
            writer.finish()?;
        }
    }
    Ok(())
}
