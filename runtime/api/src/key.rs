use arrow_array::{ArrayRef, RecordBatch};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{Field, Schema};

use crate::error::{OperatorError, Result};

/// Flink's default: max(128, 1.5 × parallelism rounded up to a power of two), at most 32768.
pub fn default_max_parallelism(parallelism: u32) -> u32 {
    let wanted = (parallelism as u64 + parallelism as u64 / 2).next_power_of_two();
    wanted.clamp(128, 32768) as u32
}

/// The hash every component uses for keys, stable across processes and runs.
pub fn hash_key(key_bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key_bytes)
}

pub fn key_group(hash: u64, max_parallelism: u32) -> u32 {
    (hash % max_parallelism as u64) as u32
}

/// Key groups are assigned to subtasks in contiguous ranges, so rescaling moves whole ranges.
pub fn subtask_for_key_group(key_group: u32, parallelism: u32, max_parallelism: u32) -> u32 {
    (key_group as u64 * parallelism as u64 / max_parallelism as u64) as u32
}

/// Turns the key columns of a batch into compact, comparable byte strings (Arrow's row format):
/// one representation for hashing, state lookup and, decoded, for output columns.
#[derive(Debug)]
pub struct KeyEncoder {
    indices: Vec<usize>,
    fields: Vec<Field>,
    converter: RowConverter,
}

impl KeyEncoder {
    pub fn new(schema: &Schema, key_columns: &[String]) -> Result<Self> {
        if key_columns.is_empty() {
            return Err(OperatorError::invalid("a key needs at least one column"));
        }
        let mut indices = Vec::with_capacity(key_columns.len());
        let mut fields = Vec::with_capacity(key_columns.len());
        for name in key_columns {
            let index = schema.index_of(name).map_err(|_| {
                OperatorError::invalid(format!(
                    "key column '{name}' is not in the input (columns: {})",
                    column_names(schema)
                ))
            })?;
            indices.push(index);
            fields.push(schema.field(index).clone());
        }
        let converter = RowConverter::new(
            fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(KeyEncoder {
            indices,
            fields,
            converter,
        })
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        let columns: Vec<ArrayRef> = self
            .indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        Ok(self.converter.convert_columns(&columns)?)
    }

    /// Decodes stored keys back into key columns, in the order given.
    pub fn decode<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let parser = self.converter.parser();
        let rows: Vec<_> = keys.into_iter().map(|k| parser.parse(k)).collect();
        Ok(self.converter.convert_rows(rows)?)
    }
}

/// The schema's column names, comma-separated, for error messages that list what exists.
pub fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::DataType;
    use std::sync::Arc;

    #[test]
    fn max_parallelism_follows_flink_default() {
        assert_eq!(default_max_parallelism(1), 128);
        assert_eq!(default_max_parallelism(100), 256);
        assert_eq!(default_max_parallelism(30000), 32768);
    }

    #[test]
    fn key_groups_map_to_contiguous_subtask_ranges() {
        let owners: Vec<u32> = (0..128)
            .map(|kg| subtask_for_key_group(kg, 3, 128))
            .collect();
        assert!(owners.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(owners.first(), Some(&0));
        assert_eq!(owners.last(), Some(&2));
    }

    #[test]
    fn keys_round_trip_through_the_row_format() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![7, 8])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .unwrap();
        let encoder = KeyEncoder::new(&schema, &["s".into(), "k".into()]).unwrap();
        let rows = encoder.encode(&batch).unwrap();
        let bytes: Vec<Vec<u8>> = rows.iter().map(|r| r.as_ref().to_vec()).collect();
        let columns = encoder.decode(bytes.iter().map(|b| b.as_slice())).unwrap();
        assert_eq!(
            columns[0].as_ref(),
            &StringArray::from(vec!["a", "b"]) as &dyn arrow_array::Array
        );
        assert_eq!(
            columns[1].as_ref(),
            &Int64Array::from(vec![7, 8]) as &dyn arrow_array::Array
        );
    }

    #[test]
    fn unknown_key_column_is_named() {
        let schema = Schema::new(vec![Field::new("k", DataType::Int64, false)]);
        let err = KeyEncoder::new(&schema, &["nope".into()]).unwrap_err();
        assert!(err.to_string().contains("'nope'"), "{err}");
    }
}
