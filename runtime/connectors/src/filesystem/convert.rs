//! Turning text columns into the table's declared column types.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{Field, SchemaRef};
use spate_api::{OperatorError, Result};

use super::source::TextChunk;

/// Converts every column of `chunk` to its declared type. A value that does not parse is an
/// error naming the file, line and column, as is a missing value in a NOT NULL column.
pub(super) fn to_declared(
    chunk: &TextChunk,
    schema: &SchemaRef,
    file: &str,
) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .zip(chunk.rows.columns())
        .map(|(field, text)| {
            let at = |row: usize, detail: String| {
                OperatorError::invalid(format!(
                    "{file}: line {}: column '{}': {detail}",
                    chunk.lines[row],
                    field.name()
                ))
            };
            convert_column(field, text, at)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn convert_column(
    field: &Field,
    text: &ArrayRef,
    at: impl Fn(usize, String) -> OperatorError,
) -> Result<ArrayRef> {
    // A "safe" cast turns unparsable values into nulls instead of failing on the first one
    // without saying where; comparing null masks then finds the row.
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let typed = cast_with_options(text, field.data_type(), &options)?;
    if typed.null_count() > text.null_count() {
        let row = (0..text.len())
            .find(|&i| text.is_valid(i) && typed.is_null(i))
            .expect("a value turned null");
        let value = text.as_string::<i32>().value(row);
        return Err(at(
            row,
            format!("cannot parse '{value}' as {}", field.data_type()),
        ));
    }
    if !field.is_nullable()
        && let Some(row) = (0..typed.len()).find(|&i| typed.is_null(i))
    {
        return Err(at(row, "no value, but the column is NOT NULL".to_string()));
    }
    Ok(typed)
}
