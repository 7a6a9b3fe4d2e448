//! Splitting a CSV file into text fields (arrow-csv handles quoting and delimiters).

use std::fs::File;

use arrow_schema::SchemaRef;
use spate_api::{OperatorError, Result};

use super::source::{BATCH_SIZE, TextChunk, TextReader};

pub(super) struct CsvTextReader {
    file: String,
    reader: arrow_csv::Reader<File>,
    /// Records read so far; a record is a line unless a quoted field holds a line break.
    records: usize,
}

impl CsvTextReader {
    pub(super) fn open(file: &str, text_schema: SchemaRef, delimiter: u8) -> Result<Self> {
        let input = File::open(file)
            .map_err(|e| OperatorError::invalid(format!("cannot open {file}: {e}")))?;
        let reader = arrow_csv::ReaderBuilder::new(text_schema)
            .with_header(false)
            .with_delimiter(delimiter)
            .with_batch_size(BATCH_SIZE)
            .build(input)?;
        Ok(CsvTextReader {
            file: file.to_string(),
            reader,
            records: 0,
        })
    }
}

impl TextReader for CsvTextReader {
    fn next_chunk(&mut self) -> Result<Option<TextChunk>> {
        let Some(rows) = self.reader.next() else {
            return Ok(None);
        };
        // arrow-csv's own messages name the line ("incorrect number of fields for line 3").
        let rows = rows.map_err(|e| OperatorError::invalid(format!("{}: {e}", self.file)))?;
        let first = self.records + 1;
        self.records += rows.num_rows();
        Ok(Some(TextChunk {
            lines: (first..=self.records).collect(),
            rows,
        }))
    }
}
