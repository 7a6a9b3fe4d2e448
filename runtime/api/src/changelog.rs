//! Changelog streams: rows that insert, update or delete earlier results (Flink's `RowKind`).
//!
//! A changelog stream's batches carry each row's kind in one more column, [`ROW_KIND_COLUMN`],
//! always the last. Because the kind is an ordinary column, chaining, Arrow IPC on the network
//! and hash exchanges carry it without knowing about it; a consumer that was built for inserts
//! only has an input schema without the column, so the graph refuses to connect it to a
//! changelog (see `spate_graph`). Append-only streams have no such column and pay nothing.

use std::fmt;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, UInt8Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{OperatorError, Result};

/// The column of a changelog stream's batches holding each row's [`RowKind`] as its byte.
/// No unquoted SQL identifier can take this name.
pub const ROW_KIND_COLUMN: &str = "$row_kind";

/// What a row does to the result (Flink's `RowKind`, with Flink's byte values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RowKind {
    /// +I: a new row.
    Insert = 0,
    /// -U: the earlier version of a row about to be updated (retracted).
    UpdateBefore = 1,
    /// +U: the new version of an updated row.
    UpdateAfter = 2,
    /// -D: a row taken back.
    Delete = 3,
}

impl RowKind {
    pub fn from_byte(byte: u8) -> Option<RowKind> {
        match byte {
            0 => Some(RowKind::Insert),
            1 => Some(RowKind::UpdateBefore),
            2 => Some(RowKind::UpdateAfter),
            3 => Some(RowKind::Delete),
            _ => None,
        }
    }

    /// Flink's short form: `+I`, `-U`, `+U`, `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// The kind from its short form.
    pub fn from_short_string(text: &str) -> Option<RowKind> {
        [
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::UpdateAfter,
            RowKind::Delete,
        ]
        .into_iter()
        .find(|kind| kind.short_string() == text)
    }

    /// Whether the row adds to the result (+I, +U) rather than takes from it (-U, -D).
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_string())
    }
}

/// Which kinds of rows a stream may carry (Flink's `ChangelogMode`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum ChangelogMode {
    /// Inserts only: every stream read from a source, every window result.
    #[default]
    AppendOnly,
    /// Every kind: an update is a -U of the old row followed by a +U of the new one, so a
    /// consumer can take back exactly what it was given before.
    Retract,
    /// +I, +U and -D of rows identified by `key`: a +U replaces the row of its key, without a -U
    /// before it. All changes of one key must reach the same consumer, in order.
    Upsert { key: Vec<String> },
}

impl ChangelogMode {
    pub fn is_append_only(&self) -> bool {
        matches!(self, ChangelogMode::AppendOnly)
    }

    /// Whether a row of `kind` may appear in a stream of this mode.
    pub fn allows(&self, kind: RowKind) -> bool {
        match self {
            ChangelogMode::AppendOnly => kind == RowKind::Insert,
            ChangelogMode::Retract => true,
            ChangelogMode::Upsert { .. } => kind != RowKind::UpdateBefore,
        }
    }
}

impl fmt::Display for ChangelogMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangelogMode::AppendOnly => f.write_str("append-only"),
            ChangelogMode::Retract => f.write_str("retract"),
            ChangelogMode::Upsert { key } => write!(f, "upsert[{}]", key.join(", ")),
        }
    }
}

/// The row-kind column's field.
pub fn row_kind_field() -> Field {
    Field::new(ROW_KIND_COLUMN, DataType::UInt8, false)
}

/// The position of the row-kind column if the schema is a changelog's.
pub fn row_kind_index(schema: &Schema) -> Option<usize> {
    let last = schema.fields().len().checked_sub(1)?;
    (schema.field(last).name() == ROW_KIND_COLUMN).then_some(last)
}

/// `data` with the row-kind column after its columns: the schema of a changelog of such rows.
pub fn changelog_schema(data: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(row_kind_field());
    Arc::new(Schema::new_with_metadata(fields, data.metadata().clone()))
}

/// The batches of an upsert changelog of `data`'s rows keyed by `key`: a delete carries only
/// its key, so every other column may be null there, whatever `data` declares.
pub fn upsert_schema(data: &Schema, key: &[String]) -> SchemaRef {
    let fields: Vec<Field> = data
        .fields()
        .iter()
        .map(|f| {
            let keyed = key.iter().any(|k| k == f.name());
            f.as_ref().clone().with_nullable(f.is_nullable() || !keyed)
        })
        .collect();
    changelog_schema(&Schema::new_with_metadata(fields, data.metadata().clone()))
}

/// The data columns of a changelog schema (all but the row kind); other schemas unchanged.
pub fn data_schema(schema: &SchemaRef) -> SchemaRef {
    match row_kind_index(schema) {
        Some(index) => Arc::new(
            schema
                .project(&(0..index).collect::<Vec<_>>())
                .expect("in range"),
        ),
        None => schema.clone(),
    }
}

/// A changelog batch of `data`'s rows with the given kinds, one per row. `schema` is the
/// changelog's schema (`changelog_schema` of `data`'s).
pub fn changelog_batch(
    schema: SchemaRef,
    data: &RecordBatch,
    kinds: &[RowKind],
) -> Result<RecordBatch> {
    if kinds.len() != data.num_rows() {
        return Err(OperatorError::invalid(format!(
            "{} row kinds for {} rows",
            kinds.len(),
            data.num_rows()
        )));
    }
    let mut columns: Vec<ArrayRef> = data.columns().to_vec();
    columns.push(Arc::new(UInt8Array::from_iter_values(
        kinds.iter().map(|&kind| kind as u8),
    )));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A batch split into its data columns and, for a changelog batch, each row's kind; an
/// append-only batch's rows are all inserts. A byte that is no kind is refused with its row.
pub fn split_row_kinds(batch: &RecordBatch) -> Result<(RecordBatch, Option<Vec<RowKind>>)> {
    let Some(index) = row_kind_index(batch.schema_ref()) else {
        return Ok((batch.clone(), None));
    };
    let column = batch.column(index);
    let bytes = column
        .as_any()
        .downcast_ref::<UInt8Array>()
        .filter(|c| c.null_count() == 0)
        .ok_or_else(|| {
            OperatorError::invalid(format!(
                "column {ROW_KIND_COLUMN} must be a UInt8 without nulls, found {}",
                column.data_type()
            ))
        })?;
    let kinds = bytes
        .values()
        .iter()
        .enumerate()
        .map(|(row, &byte)| {
            RowKind::from_byte(byte).ok_or_else(|| {
                OperatorError::invalid(format!("row {row}: {byte} is not a row kind (0 to 3)"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let data = batch.project(&(0..index).collect::<Vec<_>>())?;
    Ok((data, Some(kinds)))
}

#[cfg(test)]
mod tests {
    use arrow_array::Int64Array;

    use super::*;

    fn data() -> RecordBatch {
        RecordBatch::try_from_iter([("k", Arc::new(Int64Array::from(vec![1, 1, 2])) as _)]).unwrap()
    }

    #[test]
    fn kinds_round_trip_through_the_column() {
        let data = data();
        let schema = changelog_schema(data.schema_ref());
        assert_eq!(row_kind_index(&schema), Some(1));
        assert_eq!(data_schema(&schema).as_ref(), data.schema_ref().as_ref());
        let kinds = [RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Insert];
        let batch = changelog_batch(schema, &data, &kinds).unwrap();
        let (back, got) = split_row_kinds(&batch).unwrap();
        assert_eq!(back, data);
        assert_eq!(got.as_deref(), Some(&kinds[..]));
        assert_eq!(split_row_kinds(&data).unwrap().1, None);
    }

    #[test]
    fn bad_kinds_are_refused_with_the_row() {
        let data = data();
        let schema = changelog_schema(data.schema_ref());
        let mut columns = data.columns().to_vec();
        columns.push(Arc::new(UInt8Array::from(vec![0, 9, 0])));
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let err = split_row_kinds(&batch).unwrap_err().to_string();
        assert!(err.contains("row 1: 9 is not a row kind"), "{err}");
        let err = changelog_batch(schema, &data, &[RowKind::Insert]).unwrap_err();
        assert!(err.to_string().contains("1 row kinds for 3 rows"), "{err}");
    }

    #[test]
    fn modes_allow_their_kinds() {
        let upsert = ChangelogMode::Upsert {
            key: vec!["k".into()],
        };
        assert!(ChangelogMode::AppendOnly.allows(RowKind::Insert));
        assert!(!ChangelogMode::AppendOnly.allows(RowKind::UpdateAfter));
        assert!(ChangelogMode::Retract.allows(RowKind::UpdateBefore));
        assert!(!upsert.allows(RowKind::UpdateBefore));
        assert!(upsert.allows(RowKind::Delete));
        assert_eq!(upsert.to_string(), "upsert[k]");
        for kind in [
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::UpdateAfter,
            RowKind::Delete,
        ] {
            assert_eq!(RowKind::from_short_string(kind.short_string()), Some(kind));
            assert_eq!(RowKind::from_byte(kind as u8), Some(kind));
        }
    }
}
