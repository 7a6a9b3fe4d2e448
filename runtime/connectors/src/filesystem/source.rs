//! The bounded file source: one split per data file, read file after file by each subtask.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use spate_api::{OperatorContext, Result, SourceFactory, SourcePoll, SourceReader, Split};

use super::convert::to_declared;
use super::csv_reader::CsvTextReader;
use super::format::Format;
use super::json_reader::JsonTextReader;

/// Rows per batch handed to the task.
pub(super) const BATCH_SIZE: usize = 4096;

/// Rows of one file as text, before conversion to the declared types.
pub(super) struct TextChunk {
    /// One nullable Utf8 column per declared column, same names.
    pub rows: RecordBatch,
    /// The line in the file of each row, for error messages.
    pub lines: Vec<usize>,
}

/// Splits a file into [`TextChunk`]s of at most [`BATCH_SIZE`] rows; `None` at the end.
pub(super) trait TextReader: Send {
    fn next_chunk(&mut self) -> Result<Option<TextChunk>>;
}

pub(super) struct FileSource {
    schema: SchemaRef,
    format: Format,
    /// Listed when the table was planned, so every subtask sees the same splits.
    files: Vec<String>,
}

impl FileSource {
    pub(super) fn new(schema: SchemaRef, format: Format, files: Vec<String>) -> Self {
        FileSource {
            schema,
            format,
            files,
        }
    }
}

impl SourceFactory for FileSource {
    fn splits(&self, _parallelism: u32) -> Vec<Split> {
        self.files.iter().map(Split::new).collect()
    }

    fn create_reader(
        &self,
        splits: Vec<Split>,
        _ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>> {
        Ok(Box::new(FileReader {
            schema: self.schema.clone(),
            text_schema: text_schema(&self.schema),
            format: self.format,
            pending: splits.into(),
            current: None,
        }))
    }
}

/// Files are parsed as text first and converted afterwards, so that a value that does not parse
/// can be reported with its file, line and column, which the Arrow readers cannot all do.
fn text_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

struct FileReader {
    schema: SchemaRef,
    text_schema: SchemaRef,
    format: Format,
    pending: VecDeque<Split>,
    /// The file being read and its reader.
    current: Option<(String, Box<dyn TextReader>)>,
}

impl FileReader {
    fn open(&self, file: &str) -> Result<Box<dyn TextReader>> {
        Ok(match self.format {
            Format::Csv { delimiter } => Box::new(CsvTextReader::open(
                file,
                self.text_schema.clone(),
                delimiter,
            )?),
            Format::Json => Box::new(JsonTextReader::open(file, self.text_schema.clone())?),
        })
    }
}

impl SourceReader for FileReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        loop {
            let Some((file, reader)) = self.current.as_mut() else {
                let Some(split) = self.pending.pop_front() else {
                    return Ok(SourcePoll::End);
                };
                let reader = self.open(&split.id)?;
                self.current = Some((split.id, reader));
                continue;
            };
            match reader.next_chunk()? {
                Some(chunk) => {
                    return Ok(SourcePoll::Batch(to_declared(&chunk, &self.schema, file)?));
                }
                None => self.current = None,
            }
        }
    }
}
