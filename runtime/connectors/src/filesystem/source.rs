//! The bounded file source: one split per data file, read file after file by each subtask.

use std::collections::VecDeque;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use spate_api::{
    OperatorContext, OperatorError, Result, SourceFactory, SourcePoll, SourceReader, Split,
    StateEntry, position_entries, restored_position,
};

use super::csv_reader::CsvTextReader;
use super::format::Format;
use super::json_reader::JsonTextReader;
use crate::text::{text_schema, to_declared};

/// Rows per batch handed to the task.
pub(super) const BATCH_SIZE: usize = 4096;

/// Rows of one file as text, before conversion to the declared types.
pub(super) struct TextChunk {
    /// One nullable Utf8 column per declared column, same names.
    pub rows: RecordBatch,
    /// The line in the file of each row, for error messages.
    pub lines: Vec<usize>,
}

impl TextChunk {
    fn skip(self, rows: usize) -> TextChunk {
        TextChunk {
            rows: self.rows.slice(rows, self.rows.num_rows() - rows),
            lines: self.lines[rows..].to_vec(),
        }
    }
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
        ctx: &OperatorContext,
    ) -> Result<Box<dyn SourceReader>> {
        let skip = restored_position(ctx)?;
        Ok(Box::new(FileReader {
            schema: self.schema.clone(),
            text_schema: text_schema(&self.schema),
            format: self.format,
            pending: splits.into(),
            current: None,
            emitted: skip,
            skip,
        }))
    }
}

struct FileReader {
    schema: SchemaRef,
    text_schema: SchemaRef,
    format: Format,
    pending: VecDeque<Split>,
    /// The file being read and its reader.
    current: Option<(String, Box<dyn TextReader>)>,
    /// Rows of the splits, in order, emitted so far (the checkpointed position).
    emitted: u64,
    /// Rows still to pass over after a restore: a restarted reader reads its files again from
    /// the start and drops what it had emitted before.
    skip: u64,
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
            // The connector refuses such a source when the table is planned.
            Format::DebeziumJson => {
                return Err(OperatorError::invalid(format!(
                    "{file}: the filesystem source cannot read debezium-json"
                )));
            }
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
                Some(chunk) if (chunk.rows.num_rows() as u64) <= self.skip => {
                    self.skip -= chunk.rows.num_rows() as u64;
                }
                Some(mut chunk) => {
                    if self.skip > 0 {
                        chunk = chunk.skip(self.skip as usize);
                        self.skip = 0;
                    }
                    self.emitted += chunk.rows.num_rows() as u64;
                    let locate = |row: usize| format!("{file}: line {}", chunk.lines[row]);
                    return Ok(SourcePoll::Batch(to_declared(
                        &chunk.rows,
                        &self.schema,
                        &locate,
                    )?));
                }
                None => self.current = None,
            }
        }
    }

    fn snapshot_positions(&mut self) -> Result<Vec<StateEntry>> {
        Ok(position_entries(self.emitted))
    }
}
