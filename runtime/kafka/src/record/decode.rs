//! Records into rows. With the `kafka` layout a record's value is a row and a record without
//! a value (a tombstone) is no row, as in Flink's json format. With a changelog format the
//! value is an envelope of changes (`super::envelope`), and a tombstone (Debezium writes one
//! after a delete, for compaction) no change. With the upsert layout every
//! record is a change of its key's row: an update-after with a value, a delete without one;
//! its key columns come from the record's key. A record that does not parse fails the job
//! naming its topic, partition and offset, or, where its side's `ignore-parse-errors` is set,
//! is skipped with a warning.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt8Array, UInt32Array};
use arrow_schema::{Schema, SchemaRef};
use arrow_select::take::take;
use spate_api::{OperatorError, Result, RowKind, changelog_batch, changelog_schema, upsert_schema};
use spate_connectors::text::to_declared;
use tracing::warn;

use super::text::TextReader;
use super::{Envelope, Layout, Text};
use crate::fetcher::Fetch;

/// Which records that do not parse are skipped rather than failing the job, by side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tolerance {
    pub key: bool,
    pub value: bool,
}

/// One side of a record: its text as rows of some columns.
struct Side {
    text: TextReader,
    schema: SchemaRef,
    /// The side's columns, by their index in the table's.
    columns: Vec<usize>,
}

impl Side {
    fn new(physical: &Schema, columns: &[usize], text: Text) -> Result<Self> {
        let schema = Arc::new(physical.project(columns)?);
        Ok(Side {
            text: TextReader::new(text, &schema),
            schema,
            columns: columns.to_vec(),
        })
    }

    fn parse(&self, documents: &[&[u8]], locate: &dyn Fn(usize) -> String) -> Result<RecordBatch> {
        let text = self.text.parse(documents, locate)?;
        to_declared(&text, &self.schema, locate)
    }
}

/// Why a record did not parse, and on which side.
struct Failure {
    error: OperatorError,
    key: bool,
}

pub struct Decoder {
    topic: String,
    /// The batches' schema: the table's columns, and the row kinds of changes and upserts.
    schema: SchemaRef,
    value: Side,
    /// Changelog formats only.
    envelope: Option<Envelope>,
    /// Upserts only.
    key: Option<Side>,
    tolerance: Tolerance,
}

impl Decoder {
    pub fn new(
        topic: &str,
        physical: &SchemaRef,
        layout: &Layout,
        tolerance: Tolerance,
    ) -> Result<Self> {
        let all: Vec<usize> = (0..physical.fields().len()).collect();
        let mut envelope = None;
        let (schema, value, key) = match layout {
            Layout::Value(text) => (physical.clone(), Side::new(physical, &all, *text)?, None),
            Layout::Changes(changes) => {
                envelope = Some(*changes);
                let rows = Side::new(physical, &all, Text::Json)?;
                (changelog_schema(physical), rows, None)
            }
            Layout::Upsert { key, value } => {
                let names: Vec<String> = key
                    .iter()
                    .map(|&i| physical.field(i).name().clone())
                    .collect();
                (
                    upsert_schema(physical, &names),
                    Side::new(physical, value, Text::Json)?,
                    Some(Side::new(physical, key, Text::Json)?),
                )
            }
        };
        Ok(Decoder {
            topic: topic.to_string(),
            schema,
            value,
            envelope,
            key,
            tolerance,
        })
    }

    /// The rows of `records`, skipping those that do not parse on a side that tolerates it.
    pub fn decode(&self, records: &[Fetch]) -> Result<RecordBatch> {
        let all: Vec<&Fetch> = records.iter().collect();
        let failure = match self.parse(&all) {
            Ok(rows) => return Ok(rows),
            Err(failure) => failure,
        };
        if !self.tolerates(&failure) {
            return Err(failure.error);
        }
        let mut good = Vec::with_capacity(all.len());
        for record in all {
            match self.parse(&[record]) {
                Ok(_) => good.push(record),
                Err(failure) if self.tolerates(&failure) => {
                    warn!(error = %failure.error, "skipping a record that does not parse");
                }
                Err(failure) => return Err(failure.error),
            }
        }
        self.parse(&good).map_err(|failure| failure.error)
    }

    fn tolerates(&self, failure: &Failure) -> bool {
        if failure.key {
            self.tolerance.key
        } else {
            self.tolerance.value
        }
    }

    fn locate(&self, record: &Fetch) -> String {
        format!(
            "topic '{}' partition {} offset {}",
            self.topic, record.partition, record.offset
        )
    }

    fn parse(&self, records: &[&Fetch]) -> std::result::Result<RecordBatch, Failure> {
        let value_failure = |error| Failure { error, key: false };
        if let Some(envelope) = &self.envelope {
            return self.changes(envelope, records).map_err(value_failure);
        }
        let with_value: Vec<usize> = (0..records.len())
            .filter(|&i| records[i].value.is_some())
            .collect();
        let values: Vec<&[u8]> = with_value
            .iter()
            .map(|&i| records[i].value.as_deref().unwrap_or_default())
            .collect();
        let locate_value = |index: usize| self.locate(records[with_value[index]]);
        let value_rows = self
            .value
            .parse(&values, &locate_value)
            .map_err(value_failure)?;
        let Some(key) = &self.key else {
            return Ok(value_rows);
        };
        let key_failure = |error| Failure { error, key: true };
        let keys = records
            .iter()
            .map(|record| {
                record.key.as_deref().ok_or_else(|| {
                    key_failure(OperatorError::invalid(format!(
                        "{}: the record has no key; upsert-kafka records are keyed by the \
                         table's PRIMARY KEY",
                        self.locate(record)
                    )))
                })
            })
            .collect::<std::result::Result<Vec<&[u8]>, Failure>>()?;
        let locate = |index: usize| self.locate(records[index]);
        let key_rows = key.parse(&keys, &locate).map_err(key_failure)?;
        self.upserts(records.len(), &with_value, &key_rows, &value_rows)
            .map_err(value_failure)
    }

    /// The changes the records' envelopes hold, in order.
    fn changes(&self, envelope: &Envelope, records: &[&Fetch]) -> Result<RecordBatch> {
        let (mut rows, mut kinds, mut from) = (Vec::new(), Vec::new(), Vec::new());
        for (index, record) in records.iter().enumerate() {
            let Some(value) = &record.value else {
                continue;
            };
            let changes = envelope.changes(value).map_err(|detail| {
                OperatorError::invalid(format!("{}: {detail}", self.locate(record)))
            })?;
            for (row, kind) in changes {
                rows.push(row);
                kinds.push(kind);
                from.push(index);
            }
        }
        let documents: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let locate = |row: usize| self.locate(records[from[row]]);
        let data = self.value.parse(&documents, &locate)?;
        changelog_batch(self.schema.clone(), &data, &kinds)
    }

    /// The changes of `count` records: key columns from `key_rows` (one per record), the
    /// others from `value_rows` (one per record of `with_value`), null for deletes.
    fn upserts(
        &self,
        count: usize,
        with_value: &[usize],
        key_rows: &RecordBatch,
        value_rows: &RecordBatch,
    ) -> Result<RecordBatch> {
        let key = self.key.as_ref().expect("upserts have keys");
        let mut at: Vec<Option<u32>> = vec![None; count];
        for (row, &record) in with_value.iter().enumerate() {
            at[record] = Some(row as u32);
        }
        let kinds: Vec<u8> = at
            .iter()
            .map(|row| match row {
                Some(_) => RowKind::UpdateAfter as u8,
                None => RowKind::Delete as u8,
            })
            .collect();
        let indices = UInt32Array::from(at);
        let width = self.schema.fields().len() - 1;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(width + 1);
        for column in 0..width {
            let array = match key.columns.iter().position(|&c| c == column) {
                Some(k) => key_rows.column(k).clone(),
                None => {
                    let v = self
                        .value
                        .columns
                        .iter()
                        .position(|&c| c == column)
                        .ok_or_else(|| {
                            OperatorError::invalid(format!(
                                "column {column} is neither in the key nor in the value"
                            ))
                        })?;
                    take(value_rows.column(v).as_ref(), &indices, None)?
                }
            };
            columns.push(array);
        }
        columns.push(Arc::new(UInt8Array::from(kinds)));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::{DataType, Field};
    use spate_api::split_row_kinds;

    use super::*;

    fn physical() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
        ]))
    }

    fn record(offset: i64, key: Option<&str>, value: Option<&str>) -> Fetch {
        Fetch {
            partition: 0,
            offset,
            key: key.map(|k| k.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    fn upserts(tolerance: Tolerance) -> Decoder {
        let layout = Layout::Upsert {
            key: vec![0],
            value: vec![1],
        };
        Decoder::new("t", &physical(), &layout, tolerance).unwrap()
    }

    /// (kind, k, n) of each row.
    fn changes(batch: &RecordBatch) -> Vec<(&'static str, i64, Option<i64>)> {
        let (data, kinds) = split_row_kinds(batch).unwrap();
        let keys = data.column(0).as_primitive::<Int64Type>();
        let counts = data.column(1).as_primitive::<Int64Type>();
        kinds
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(row, kind)| {
                let count = counts.is_valid(row).then(|| counts.value(row));
                (kind.short_string(), keys.value(row), count)
            })
            .collect()
    }

    #[test]
    fn values_are_upserts_and_tombstones_deletes_of_their_key() {
        let batch = upserts(Tolerance::default())
            .decode(&[
                record(0, Some(r#"{"k": 1}"#), Some(r#"{"n": 5}"#)),
                record(1, Some(r#"{"k": 2}"#), None),
                record(2, Some(r#"{"k": 1}"#), Some(r#"{"n": 6}"#)),
            ])
            .unwrap();
        assert_eq!(
            changes(&batch),
            [("+U", 1, Some(5)), ("-D", 2, None), ("+U", 1, Some(6))]
        );
    }

    #[test]
    fn a_bad_record_fails_by_offset_or_is_skipped_on_a_tolerant_side() {
        let records = [
            record(0, Some(r#"{"k": 1}"#), Some(r#"{"n": 5}"#)),
            record(1, Some("not json"), Some(r#"{"n": 5}"#)),
            record(2, None, Some(r#"{"n": 5}"#)),
            record(3, Some(r#"{"k": 3}"#), Some(r#"{"n": "x"}"#)),
        ];
        let error = upserts(Tolerance::default())
            .decode(&records)
            .unwrap_err()
            .to_string();
        assert!(error.contains("offset 3"), "{error}");
        // Tolerating bad values only, the bad key still fails the job, by its offset.
        let values_only = Tolerance {
            key: false,
            value: true,
        };
        let error = upserts(values_only)
            .decode(&records)
            .unwrap_err()
            .to_string();
        assert!(error.contains("offset 1"), "{error}");
        let both = Tolerance {
            key: true,
            value: true,
        };
        let batch = upserts(both).decode(&records).unwrap();
        assert_eq!(changes(&batch), [("+U", 1, Some(5))]);
        let keys_only = Tolerance {
            key: true,
            value: false,
        };
        let skipped = upserts(keys_only).decode(&records[2..3]).unwrap();
        assert_eq!(skipped.num_rows(), 0, "a keyless record is a bad key");
    }

    #[test]
    fn envelopes_are_changes_named_by_offset_when_broken() {
        let layout = Layout::Changes(Envelope::Debezium {
            schema_include: false,
        });
        let decoder = Decoder::new("t", &physical(), &layout, Tolerance::default()).unwrap();
        let update = r#"{"before": {"k": 1, "n": 5}, "after": {"k": 1, "n": 6}, "op": "u"}"#;
        let batch = decoder
            .decode(&[
                record(
                    0,
                    None,
                    Some(r#"{"before": null, "after": {"k": 1, "n": 5}, "op": "c"}"#),
                ),
                record(1, None, Some(update)),
                record(2, Some("x"), None),
                record(3, None, Some(r#"{"before": {"k": 1, "n": 6}, "op": "d"}"#)),
            ])
            .unwrap();
        assert_eq!(
            changes(&batch),
            [
                ("+I", 1, Some(5)),
                ("-U", 1, Some(5)),
                ("+U", 1, Some(6)),
                ("-D", 1, Some(6))
            ]
        );
        let error = decoder
            .decode(&[
                record(0, None, Some(update)),
                record(
                    1,
                    None,
                    Some(r#"{"after": {"k": 2, "n": "many"}, "op": "c"}"#),
                ),
            ])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("offset 1") && error.contains("'many'"),
            "{error}"
        );
    }

    #[test]
    fn plain_values_are_rows_and_tombstones_none() {
        let decoder = Decoder::new(
            "t",
            &physical(),
            &Layout::Value(Text::Json),
            Tolerance::default(),
        )
        .unwrap();
        let batch = decoder
            .decode(&[
                record(0, None, Some(r#"{"k": 1, "n": 2}"#)),
                record(1, Some("x"), None),
            ])
            .unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), physical());
    }
}
