//! Rows into records: JSON objects (`spate_connectors::text::write_json`, as the file sink
//! writes them), one per row.

use arrow_array::{Array, RecordBatch, StringArray};
use spate_api::{OperatorError, Result, RowKind};
use spate_connectors::text::{TIMESTAMP_FORMAT, debezium_envelopes, write_json};

use super::{Envelope, Layout, Message, Text};

pub struct Encoder {
    table: String,
    layout: Layout,
    /// The columns of the record key of the `Value` and `Changes` layouts, if any.
    key: Option<Vec<usize>>,
    /// Reused between batches.
    buffer: Vec<u8>,
}

impl Encoder {
    pub fn new(table: &str, layout: Layout, key: Option<Vec<usize>>) -> Self {
        Encoder {
            table: table.to_string(),
            layout,
            key,
            buffer: Vec::new(),
        }
    }

    /// The records of `data`'s rows, whose kinds are `kinds` (all inserts without). Upserts
    /// write inserts and update-afters as the key's row and deletes as tombstones, and skip
    /// update-befores (the update-after that follows replaces the key's row).
    pub fn encode(
        &mut self,
        data: &RecordBatch,
        kinds: Option<&[RowKind]>,
    ) -> Result<Vec<Message>> {
        match &self.layout {
            Layout::Value(text) => {
                if kinds.is_some_and(|kinds| kinds.iter().any(|&k| k != RowKind::Insert)) {
                    return Err(OperatorError::invalid(format!(
                        "table '{}': the kafka connector writes inserts only but received \
                         updates or deletes (upsert-kafka writes them)",
                        self.table
                    )));
                }
                let values = match *text {
                    Text::Json => json_lines(&self.table, &mut self.buffer, data)?
                        .into_iter()
                        .map(Some)
                        .collect(),
                    Text::Csv { delimiter } => csv_lines(data, delimiter, &mut self.buffer)?,
                    Text::Raw => raw_texts(&self.table, data)?,
                };
                self.keyed(data, values)
            }
            Layout::Changes(Envelope::Debezium {
                schema_include: false,
            }) => {
                let envelopes = debezium_envelopes(data, kinds)?;
                let values = json_lines(&self.table, &mut self.buffer, &envelopes)?;
                self.keyed(data, values.into_iter().map(Some).collect())
            }
            Layout::Changes(envelope) => Err(OperatorError::invalid(format!(
                "table '{}': writing {envelope:?} envelopes is not supported",
                self.table
            ))),
            Layout::Upsert { key, value } => {
                let (key, value) = (data.project(key)?, data.project(value)?);
                let keys = json_lines(&self.table, &mut self.buffer, &key)?;
                let values = json_lines(&self.table, &mut self.buffer, &value)?;
                let rows = keys.into_iter().zip(values).enumerate();
                Ok(rows
                    .filter_map(|(row, (key, value))| {
                        match kinds.map_or(RowKind::Insert, |kinds| kinds[row]) {
                            RowKind::Insert | RowKind::UpdateAfter => Some(Message {
                                key: Some(key),
                                value: Some(value),
                            }),
                            RowKind::Delete => Some(Message {
                                key: Some(key),
                                value: None,
                            }),
                            RowKind::UpdateBefore => None,
                        }
                    })
                    .collect())
            }
        }
    }
}

impl Encoder {
    /// Each row's value, with its key if the sink has key columns.
    fn keyed(&mut self, data: &RecordBatch, values: Vec<Option<Vec<u8>>>) -> Result<Vec<Message>> {
        let keys = match &self.key {
            Some(key) => json_lines(&self.table, &mut self.buffer, &data.project(key)?)?
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None; values.len()],
        };
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| Message { key, value })
            .collect())
    }
}

/// Each row of `batch` as one CSV line, without its line break (Flink's csv format: a field
/// with a line break is quoted, so a line is always one row), written through `buffer`.
fn csv_lines(
    batch: &RecordBatch,
    delimiter: u8,
    buffer: &mut Vec<u8>,
) -> Result<Vec<Option<Vec<u8>>>> {
    (0..batch.num_rows())
        .map(|row| {
            buffer.clear();
            let mut writer = arrow_csv::WriterBuilder::new()
                .with_header(false)
                .with_delimiter(delimiter)
                .with_timestamp_format(TIMESTAMP_FORMAT.to_string())
                .build(&mut *buffer);
            writer.write(&batch.slice(row, 1))?;
            drop(writer);
            let line = buffer.strip_suffix(b"\n").unwrap_or(buffer);
            Ok(Some(line.to_vec()))
        })
        .collect()
}

/// The one STRING column's text of each row; a NULL is a record without a value.
fn raw_texts(table: &str, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
    let texts = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .filter(|_| batch.num_columns() == 1)
        .ok_or_else(|| {
            OperatorError::invalid(format!("table '{table}': raw writes one STRING column"))
        })?;
    Ok(texts
        .iter()
        .map(|text| text.map(|t| t.as_bytes().to_vec()))
        .collect())
}

/// Each row of `batch` as a JSON object (JSON escapes line breaks, so lines are rows), written
/// through `buffer`.
fn json_lines(table: &str, buffer: &mut Vec<u8>, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    buffer.clear();
    write_json(batch, buffer)?;
    let lines: Vec<Vec<u8>> = buffer
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if lines.len() != batch.num_rows() {
        return Err(OperatorError::invalid(format!(
            "table '{table}': {} JSON lines for {} rows",
            lines.len(),
            batch.num_rows()
        )));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};

    use super::*;

    fn rows() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(vec![1, 1, 2, 1])) as _),
            (
                "v",
                Arc::new(StringArray::from(vec!["a", "b", "c", "b"])) as _,
            ),
        ])
        .unwrap()
    }

    fn text(bytes: &Option<Vec<u8>>) -> Option<String> {
        bytes
            .as_ref()
            .map(|b| String::from_utf8(b.clone()).unwrap())
    }

    #[test]
    fn upserts_are_keyed_and_deletes_are_tombstones() {
        use RowKind::*;
        let kinds = [Insert, UpdateBefore, UpdateAfter, Delete];
        let layout = Layout::Upsert {
            key: vec![0],
            value: vec![1],
        };
        let messages = Encoder::new("t", layout, None)
            .encode(&rows(), Some(&kinds))
            .unwrap();
        let got: Vec<_> = messages
            .iter()
            .map(|m| (text(&m.key), text(&m.value)))
            .collect();
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            [
                (some(r#"{"k":1}"#), some(r#"{"v":"a"}"#)),
                (some(r#"{"k":2}"#), some(r#"{"v":"c"}"#)),
                (some(r#"{"k":1}"#), None),
            ]
        );
    }

    #[test]
    fn csv_and_raw_values_are_one_row_each() {
        let mut csv = Encoder::new("t", Layout::Value(Text::Csv { delimiter: b'|' }), None);
        let lines: Vec<_> = csv
            .encode(&rows(), None)
            .unwrap()
            .iter()
            .map(|m| text(&m.value).unwrap())
            .collect();
        assert_eq!(lines, ["1|a", "1|b", "2|c", "1|b"]);
        let one = RecordBatch::try_from_iter([(
            "s",
            Arc::new(StringArray::from(vec![Some("x,y"), None])) as _,
        )])
        .unwrap();
        let raw = Encoder::new("t", Layout::Value(Text::Raw), None)
            .encode(&one, None)
            .unwrap();
        assert_eq!(text(&raw[0].value).as_deref(), Some("x,y"));
        assert_eq!(raw[1].value, None, "a NULL has no value");
    }

    #[test]
    fn changes_are_debezium_envelopes_keyed_by_the_key_fields() {
        let kinds = [
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::UpdateAfter,
            RowKind::Delete,
        ];
        let layout = Layout::Changes(Envelope::Debezium {
            schema_include: false,
        });
        let messages = Encoder::new("t", layout, Some(vec![0]))
            .encode(&rows(), Some(&kinds))
            .unwrap();
        let got: Vec<_> = messages
            .iter()
            .map(|m| (text(&m.key).unwrap(), text(&m.value).unwrap()))
            .collect();
        assert_eq!(
            got[1],
            (
                r#"{"k":1}"#.to_string(),
                r#"{"before":{"k":1,"v":"b"},"after":null,"op":"d"}"#.to_string()
            )
        );
        assert_eq!(got[3].0, r#"{"k":1}"#, "a delete is keyed by its row's key");
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn the_kafka_connector_writes_unkeyed_inserts_and_refuses_changes() {
        let mut encoder = Encoder::new("t", Layout::Value(Text::Json), None);
        let messages = encoder.encode(&rows(), None).unwrap();
        assert_eq!(messages.len(), 4);
        assert!(messages.iter().all(|m| m.key.is_none()));
        assert_eq!(text(&messages[0].value).unwrap(), r#"{"k":1,"v":"a"}"#);
        let kinds = [
            RowKind::Insert,
            RowKind::Delete,
            RowKind::Insert,
            RowKind::Insert,
        ];
        let error = encoder.encode(&rows(), Some(&kinds)).unwrap_err();
        assert!(error.to_string().contains("inserts only"), "{error}");
    }
}
