//! A record's value as one row of text fields, before the fields take the table's types
//! (`spate_connectors::text::to_declared`): JSON objects, CSV lines, or the raw text.

use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{Schema, SchemaRef};
use spate_api::{OperatorError, Result};
use spate_connectors::text::{JsonText, text_schema};

use super::Text;

/// Reads values of one text format as rows of text fields.
pub enum TextReader {
    Json(JsonText),
    Csv { schema: SchemaRef, delimiter: u8 },
    Raw { schema: SchemaRef },
}

impl TextReader {
    pub fn new(text: Text, schema: &Schema) -> Self {
        match text {
            Text::Json => TextReader::Json(JsonText::new(schema)),
            Text::Csv { delimiter } => TextReader::Csv {
                schema: text_schema(schema),
                delimiter,
            },
            Text::Raw => TextReader::Raw {
                schema: text_schema(schema),
            },
        }
    }

    /// One row of text fields per document; an error names the document (`locate`) that does
    /// not parse.
    pub fn parse(
        &self,
        documents: &[&[u8]],
        locate: &dyn Fn(usize) -> String,
    ) -> Result<RecordBatch> {
        match self {
            TextReader::Json(json) => json.parse(documents, locate),
            TextReader::Csv { schema, delimiter } => {
                match csv_rows(schema, *delimiter, documents) {
                    Ok(rows) if rows.num_rows() == documents.len() => Ok(rows),
                    // Which document: each on its own.
                    _ => {
                        for (index, document) in documents.iter().enumerate() {
                            let single = csv_rows(schema, *delimiter, &[document]);
                            let problem = match single {
                                Ok(rows) if rows.num_rows() == 1 => continue,
                                Ok(rows) => format!("{} CSV lines in one record", rows.num_rows()),
                                Err(e) => e.to_string(),
                            };
                            return Err(OperatorError::invalid(format!(
                                "{}: {problem}",
                                locate(index)
                            )));
                        }
                        Err(OperatorError::invalid(
                            "CSV records that do not parse together",
                        ))
                    }
                }
            }
            TextReader::Raw { schema } => {
                let texts = documents
                    .iter()
                    .enumerate()
                    .map(|(index, document)| {
                        std::str::from_utf8(document).map_err(|e| {
                            OperatorError::invalid(format!("{}: not UTF-8: {e}", locate(index)))
                        })
                    })
                    .collect::<Result<Vec<&str>>>()?;
                let column = Arc::new(StringArray::from(texts));
                Ok(RecordBatch::try_new(schema.clone(), vec![column])?)
            }
        }
    }
}

/// The CSV lines of `documents` (each ended by a line break if it lacks one) as text rows.
fn csv_rows(schema: &SchemaRef, delimiter: u8, documents: &[&[u8]]) -> Result<RecordBatch> {
    let mut decoder = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_delimiter(delimiter)
        .with_batch_size(documents.len().max(1) + 1)
        .build_decoder();
    for document in documents {
        let line: Vec<u8>;
        let mut rest: &[u8] = if document.ends_with(b"\n") {
            document
        } else {
            line = [document, &b"\n"[..]].concat();
            &line
        };
        while !rest.is_empty() {
            let read = decoder.decode(rest)?;
            if read == 0 {
                break;
            }
            rest = &rest[read..];
        }
    }
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_schema::{DataType, Field};

    use super::*;

    fn columns(n: usize) -> Schema {
        Schema::new(
            (0..n)
                .map(|i| Field::new(format!("c{i}"), DataType::Int64, true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn csv_lines_are_rows_and_a_bad_one_is_named() {
        let csv = TextReader::new(Text::Csv { delimiter: b';' }, &columns(2));
        let locate = |i: usize| format!("record {i}");
        let rows = csv.parse(&[b"1;\"a;b\"", b"2;3\n"], &locate).unwrap();
        assert_eq!(rows.num_rows(), 2);
        assert_eq!(rows.column(1).as_string::<i32>().value(0), "a;b");
        let error = csv
            .parse(&[b"1;2", b"1;2;3"], &locate)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("record 1:"), "{error}");
        let error = csv.parse(&[b"1;2\n3;4"], &locate).unwrap_err().to_string();
        assert!(error.contains("record 0: 2 CSV lines"), "{error}");
    }

    #[test]
    fn raw_values_are_the_text_itself() {
        let raw = TextReader::new(Text::Raw, &columns(1));
        let locate = |i: usize| format!("record {i}");
        let rows = raw.parse(&[b"a,b {c}", b""], &locate).unwrap();
        assert_eq!(rows.column(0).as_string::<i32>().value(0), "a,b {c}");
        let error = raw
            .parse(&[b"ok", &[0xff, 0xfe]], &locate)
            .unwrap_err()
            .to_string();
        assert!(error.contains("record 1: not UTF-8"), "{error}");
    }
}
