//! Splitting a JSON-lines file into text fields (arrow-json parses, numbers and booleans are kept
//! as their text).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;

use arrow_array::RecordBatch;
use arrow_json::reader::Decoder;
use arrow_schema::SchemaRef;
use spate_api::{OperatorError, Result};

use super::source::{BATCH_SIZE, TextChunk, TextReader};

pub(super) struct JsonTextReader {
    file: String,
    input: BufReader<File>,
    text_schema: SchemaRef,
    decoder: Decoder,
    /// Lines read so far.
    line: usize,
}

impl JsonTextReader {
    pub(super) fn open(file: &str, text_schema: SchemaRef) -> Result<Self> {
        let input = File::open(file)
            .map_err(|e| OperatorError::invalid(format!("cannot open {file}: {e}")))?;
        Ok(JsonTextReader {
            file: file.to_string(),
            input: BufReader::new(input),
            decoder: decoder(&text_schema)?,
            text_schema,
            line: 0,
        })
    }

    fn error_at(&self, line: usize, detail: impl std::fmt::Display) -> OperatorError {
        OperatorError::invalid(format!("{}: line {line}: {detail}", self.file))
    }

    /// Converting the parsed values fails as a whole (say, an object where a column expects a
    /// scalar); the culprit is found by converting the chunk's lines one at a time.
    fn locate(&self, text: &str, spans: &[Range<usize>], lines: &[usize]) -> Option<OperatorError> {
        spans.iter().zip(lines).find_map(|(span, &line)| {
            let mut single = decoder(&self.text_schema).ok()?;
            let converted: Result<Option<RecordBatch>, _> = single
                .decode(text[span.clone()].as_bytes())
                .and_then(|_| single.flush());
            converted.err().map(|e| self.error_at(line, e))
        })
    }
}

/// Decodes one line, which must hold exactly one complete value: JSON lines is line-based, and
/// that is what lets an error name its line.
fn feed(decoder: &mut Decoder, line: &str) -> std::result::Result<(), String> {
    let before = decoder.len();
    decoder.decode(line.as_bytes()).map_err(|e| e.to_string())?;
    if decoder.has_partial_record() || decoder.len() != before + 1 {
        return Err("expected exactly one JSON object".to_string());
    }
    Ok(())
}

fn decoder(text_schema: &SchemaRef) -> Result<Decoder> {
    Ok(arrow_json::ReaderBuilder::new(text_schema.clone())
        .with_coerce_primitive(true)
        // One more than a chunk holds, so `decode` never stops early in the middle of a line.
        .with_batch_size(BATCH_SIZE + 1)
        .build_decoder()?)
}

impl TextReader for JsonTextReader {
    fn next_chunk(&mut self) -> Result<Option<TextChunk>> {
        let mut text = String::new();
        let mut spans = Vec::new();
        let mut lines = Vec::new();
        while lines.len() < BATCH_SIZE {
            let start = text.len();
            let read = self
                .input
                .read_line(&mut text)
                .map_err(|e| self.error_at(self.line + 1, e))?;
            if read == 0 {
                break;
            }
            self.line += 1;
            if text[start..].trim().is_empty() {
                text.truncate(start);
                continue;
            }
            if let Err(detail) = feed(&mut self.decoder, &text[start..]) {
                return Err(self.error_at(self.line, detail));
            }
            spans.push(start..text.len());
            lines.push(self.line);
        }
        match self.decoder.flush() {
            Ok(Some(rows)) => Ok(Some(TextChunk { rows, lines })),
            Ok(None) => Ok(None),
            Err(e) => Err(self
                .locate(&text, &spans, &lines)
                .unwrap_or_else(|| OperatorError::invalid(format!("{}: {e}", self.file)))),
        }
    }
}
