//! A retract changelog as an upsert sink takes it (Flink gives upsert sinks no update-before
//! rows). An update-before followed by its key's update-after is dropped: the update-after
//! replaces the key's row. An update-before with no update-after of its key right after it
//! (a filter dropped the new row, say) deletes its key's row, so it becomes a delete: dropping
//! it would leave a row the query no longer holds.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt8Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{Schema, SchemaRef};
use arrow_select::filter::filter_record_batch;
use spate_api::{Operator, OperatorError, Output, Result, RowKind, row_kind_index};

pub struct UpsertChanges {
    /// The key's columns, by index.
    key: Vec<usize>,
    /// The key's values as bytes, to compare neighbouring rows.
    keys: RowConverter,
    /// The row-kind column's index.
    kinds: usize,
}

impl UpsertChanges {
    /// For batches of `schema` (a changelog's) upserted by the columns named `key`.
    pub fn new(schema: &SchemaRef, key: &[String]) -> Result<Self> {
        let kinds = row_kind_index(schema)
            .ok_or_else(|| OperatorError::invalid("upsert changes: the input is no changelog"))?;
        let key = key
            .iter()
            .map(|name| schema.index_of(name))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(UpsertChanges {
            keys: key_converter(schema, &key)?,
            key,
            kinds,
        })
    }
}

fn key_converter(schema: &Schema, key: &[usize]) -> Result<RowConverter> {
    let fields = key
        .iter()
        .map(|&i| SortField::new(schema.field(i).data_type().clone()))
        .collect();
    Ok(RowConverter::new(fields)?)
}

impl Operator for UpsertChanges {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let kinds = batch
            .column(self.kinds)
            .as_any()
            .downcast_ref::<UInt8Array>()
            .ok_or_else(|| OperatorError::invalid("upsert changes: row kinds are not bytes"))?;
        let kinds = kinds.values();
        const BEFORE: u8 = RowKind::UpdateBefore as u8;
        const AFTER: u8 = RowKind::UpdateAfter as u8;
        if !kinds.contains(&BEFORE) {
            out.batch(batch);
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.key.iter().map(|&i| batch.column(i).clone()).collect();
        let keys = self.keys.convert_columns(&columns)?;
        let mut keep = Vec::with_capacity(kinds.len());
        let mut rewritten = kinds.to_vec();
        for (row, &kind) in kinds.iter().enumerate() {
            let replaced = kind == BEFORE
                && kinds.get(row + 1) == Some(&AFTER)
                && keys.row(row) == keys.row(row + 1);
            keep.push(!replaced);
            if kind == BEFORE && !replaced {
                rewritten[row] = RowKind::Delete as u8;
            }
        }
        let mut columns = batch.columns().to_vec();
        columns[self.kinds] = Arc::new(UInt8Array::from(rewritten));
        let changed = RecordBatch::try_new(batch.schema(), columns)?;
        let keep = BooleanArray::from(keep);
        if keep.true_count() == keep.len() {
            out.batch(changed);
        } else {
            out.batch(filter_record_batch(&changed, &keep)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Int64Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::{DataType, Field};
    use spate_api::{StreamElement, changelog_batch, changelog_schema, split_row_kinds};

    use super::*;

    #[test]
    fn an_update_before_is_dropped_before_its_update_after_and_deletes_otherwise() {
        use RowKind::*;
        let data = Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
        ]);
        let schema = changelog_schema(&data);
        let rows = RecordBatch::try_new(
            Arc::new(data),
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 1, 2, 3, 3, 2])),
                Arc::new(Int64Array::from(vec![1, 1, 2, 5, 7, 8, 6])),
            ],
        )
        .unwrap();
        let kinds = [
            Insert,
            UpdateBefore,
            UpdateAfter,
            UpdateBefore,
            UpdateBefore,
            UpdateAfter,
            UpdateAfter,
        ];
        let batch = changelog_batch(schema.clone(), &rows, &kinds).unwrap();
        let mut operator = UpsertChanges::new(&schema, &["k".into()]).unwrap();
        let mut out = Output::default();
        operator.process_batch(batch, &mut out).unwrap();
        let mut got = Vec::new();
        for element in out.drain() {
            let StreamElement::Batch(batch) = element else {
                continue;
            };
            let (data, kinds) = split_row_kinds(&batch).unwrap();
            let (k, n) = (
                data.column(0).as_primitive::<Int64Type>(),
                data.column(1).as_primitive::<Int64Type>(),
            );
            for (row, kind) in kinds.unwrap().into_iter().enumerate() {
                got.push((kind.short_string(), k.value(row), n.value(row)));
            }
        }
        assert_eq!(
            got,
            [
                ("+I", 1, 1),
                ("+U", 1, 2),
                // Key 2's update-before is followed by key 3's rows: it deletes.
                ("-D", 2, 5),
                ("+U", 3, 8),
                ("+U", 2, 6),
            ]
        );
    }
}
