//! Rows read as text, turned into the table's declared column types. Connectors that read text
//! (files, Kafka records) parse every value as a string first and convert afterwards, so that a
//! value that does not parse can be reported with where it came from (a file's line, a
//! record's offset), which the Arrow readers cannot all do. Rows written as JSON text (files,
//! Kafka records) are encoded here too.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, StructArray};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_json::writer::LineDelimited;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use spate_api::{OperatorError, Result, RowKind};

/// How TIMESTAMP(3) values are written, as Flink's CSV and JSON formats do. Reading also accepts
/// the ISO form with a `T` and without fraction.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// Appends the rows of `batch` to `out` as JSON objects, one per line (a string's newlines are
/// escaped, so each line is one row); NULLs are written as `null`, as Flink's json format does.
pub fn write_json(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_timestamp_format(TIMESTAMP_FORMAT.to_string())
        .build::<_, LineDelimited>(out);
    writer.write(batch)?;
    writer.finish()?;
    Ok(())
}

/// The batch as debezium envelopes: the row is `after` of a "c" when it adds to the result
/// and `before` of a "d" when it takes from it, as Flink's debezium-json serializer writes.
pub fn debezium_envelopes(batch: &RecordBatch, kinds: Option<&[RowKind]>) -> Result<RecordBatch> {
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

/// The table's columns, each as nullable text: what a text reader parses into.
pub fn text_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// Converts every column of `rows` (of [`text_schema`]) to its declared type. A value that does
/// not parse is an error naming where its row came from (`locate(row)`) and the column, as is a
/// missing value in a NOT NULL column.
pub fn to_declared(
    rows: &RecordBatch,
    schema: &SchemaRef,
    locate: &dyn Fn(usize) -> String,
) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .zip(rows.columns())
        .map(|(field, text)| {
            let at = |row: usize, detail: String| {
                OperatorError::invalid(format!(
                    "{}: column '{}': {detail}",
                    locate(row),
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

/// Parses standalone JSON documents, one object each (as Kafka records hold them), into rows of
/// text: numbers and booleans keep their text, to be converted by [`to_declared`].
pub struct JsonText {
    text_schema: SchemaRef,
}

impl JsonText {
    pub fn new(schema: &Schema) -> Self {
        JsonText {
            text_schema: text_schema(schema),
        }
    }

    /// `documents` as rows of text. A document that is not exactly one JSON object, or holds a
    /// value a column cannot take as text (an object or array), is an error naming it by
    /// `locate(index)`.
    pub fn parse(
        &self,
        documents: &[&[u8]],
        locate: &dyn Fn(usize) -> String,
    ) -> Result<RecordBatch> {
        let mut decoder = self.decoder(documents.len())?;
        for (index, document) in documents.iter().enumerate() {
            feed_one(&mut decoder, document)
                .map_err(|e| OperatorError::invalid(format!("{}: {e}", locate(index))))?;
        }
        match decoder.flush() {
            Ok(rows) => {
                Ok(rows.unwrap_or_else(|| RecordBatch::new_empty(self.text_schema.clone())))
            }
            Err(e) => Err(self
                .locate_failure(documents, locate)
                .unwrap_or_else(|| e.into())),
        }
    }

    fn decoder(&self, documents: usize) -> Result<arrow_json::reader::Decoder> {
        Ok(arrow_json::ReaderBuilder::new(self.text_schema.clone())
            .with_coerce_primitive(true)
            // One more than there are documents, so `decode` never stops early in one.
            .with_batch_size(documents + 1)
            .build_decoder()?)
    }

    /// Turning the parsed values into text failed as a whole; the culprit is found by parsing
    /// the documents one at a time.
    fn locate_failure(
        &self,
        documents: &[&[u8]],
        locate: &dyn Fn(usize) -> String,
    ) -> Option<OperatorError> {
        documents.iter().enumerate().find_map(|(index, document)| {
            let mut single = self.decoder(1).ok()?;
            let parsed = feed_one(&mut single, document)
                .map_err(|e| e.to_string())
                .and_then(|()| single.flush().map_err(|e| e.to_string()));
            parsed
                .err()
                .map(|e| OperatorError::invalid(format!("{}: {e}", locate(index))))
        })
    }
}

/// Decodes one document, which must hold exactly one complete JSON object.
fn feed_one(
    decoder: &mut arrow_json::reader::Decoder,
    document: &[u8],
) -> std::result::Result<(), String> {
    let before = decoder.len();
    decoder.decode(document).map_err(|e| e.to_string())?;
    if decoder.has_partial_record() || decoder.len() != before + 1 {
        return Err("expected exactly one JSON object".to_string());
    }
    Ok(())
}
