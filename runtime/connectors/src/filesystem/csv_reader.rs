//! Splitting a CSV file into text fields (arrow-csv handles quoting and delimiters).

use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Mutex};

use arrow_schema::SchemaRef;
use spate_api::{OperatorError, Result};

use super::source::{BATCH_SIZE, TextChunk, TextReader};

pub(super) struct CsvTextReader {
    file: String,
    reader: arrow_csv::Reader<QuoteTracker>,
    quotes: Arc<Mutex<Quotes>>,
    /// Records read so far; a record is a line unless a quoted field holds a line break.
    records: usize,
}

impl CsvTextReader {
    pub(super) fn open(file: &str, text_schema: SchemaRef, delimiter: u8) -> Result<Self> {
        let input = File::open(file)
            .map_err(|e| OperatorError::invalid(format!("cannot open {file}: {e}")))?;
        let quotes = Arc::new(Mutex::new(Quotes::new(delimiter)));
        let reader = arrow_csv::ReaderBuilder::new(text_schema)
            .with_header(false)
            .with_delimiter(delimiter)
            .with_batch_size(BATCH_SIZE)
            .build(QuoteTracker {
                input,
                quotes: quotes.clone(),
            })?;
        Ok(CsvTextReader {
            file: file.to_string(),
            reader,
            quotes,
            records: 0,
        })
    }
}

impl TextReader for CsvTextReader {
    fn next_chunk(&mut self) -> Result<Option<TextChunk>> {
        let Some(rows) = self.reader.next() else {
            // arrow-csv ends a quoted field that is never closed at the end of the file, with
            // every row after the quote inside it: refuse that instead of losing those rows.
            let quotes = self.quotes.lock().expect("quote tracker lock");
            if let Some(line) = quotes.open_since() {
                return Err(OperatorError::invalid(format!(
                    "{}: line {line}: a quoted field opens here and is never closed (every line \
                     after it would be read as part of that field)",
                    self.file
                )));
            }
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

/// Passes the file's bytes to arrow-csv and follows its quoting on the way (RFC 4180: a field
/// that starts with a quote ends at the next quote not doubled), to tell at the end whether a
/// quoted field was left open.
struct QuoteTracker {
    input: File,
    quotes: Arc<Mutex<Quotes>>,
}

impl Read for QuoteTracker {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.quotes
            .lock()
            .expect("quote tracker lock")
            .scan(&buf[..n]);
        Ok(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Start,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: its end, or the first half of a doubled quote.
    QuoteInQuoted,
}

struct Quotes {
    delimiter: u8,
    field: Field,
    line: usize,
    /// Where the quoted field being read began.
    opened_at: usize,
}

impl Quotes {
    fn new(delimiter: u8) -> Self {
        Quotes {
            delimiter,
            field: Field::Start,
            line: 1,
            opened_at: 0,
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            let ends_field = byte == self.delimiter || byte == b'\n' || byte == b'\r';
            self.field = match (self.field, byte) {
                (Field::Start, b'"') => {
                    self.opened_at = self.line;
                    Field::Quoted
                }
                (Field::Quoted, b'"') => Field::QuoteInQuoted,
                (Field::Quoted, _) => Field::Quoted,
                (Field::QuoteInQuoted, b'"') => Field::Quoted,
                (_, _) if ends_field => Field::Start,
                _ => Field::Unquoted,
            };
            if byte == b'\n' {
                self.line += 1;
            }
        }
    }

    /// The line of a quoted field still open, if one is.
    fn open_since(&self) -> Option<usize> {
        (self.field == Field::Quoted).then_some(self.opened_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_since(text: &str) -> Option<usize> {
        let mut quotes = Quotes::new(b',');
        // In two pieces, as reads may cut the text anywhere.
        let (a, b) = text.as_bytes().split_at(text.len() / 2);
        quotes.scan(a);
        quotes.scan(b);
        quotes.open_since()
    }

    #[test]
    fn quoted_fields_left_open_are_found_with_their_line() {
        assert_eq!(
            open_since("1,plain\n2,\"quoted, \"\"doubled\"\"\nline\"\n"),
            None
        );
        assert_eq!(
            open_since("1,a\"b\n2,c\n"),
            None,
            "a quote inside a field is text"
        );
        assert_eq!(open_since("1,ok\n2,\"never closed\n3,x\n4,y\n"), Some(2));
        assert_eq!(open_since("1,\"ends with a doubled quote\"\"\n"), Some(1));
    }
}
