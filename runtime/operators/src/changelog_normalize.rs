//! An upsert changelog made a retract one (Flink's `ChangelogNormalize`): an upsert source
//! (upsert-kafka) says only what each key's row is now, but what consumes it (a group
//! aggregate, a join) must be told what to take back. Each key keeps its last row in keyed
//! state; a new row for the key retracts it (`-U` of the old row, `+U` of the new), the first
//! row of a key is an insert, and a delete takes back the row kept (`-D` of the whole row, as
//! the upsert delete carries only the key). As in Flink, a row equal to the one kept changes
//! nothing and emits nothing, and a delete of a key without a row is dropped.

use std::sync::Arc;

use arrow_array::{RecordBatch, UInt8Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{Schema, SchemaRef};
use spate_api::{OperatorError, Result, RowKind, changelog_schema, split_row_kinds};

use crate::keyed::{KeyedContext, KeyedProcessFunction};

/// The keyed state of a key's current row, as row-format bytes.
const LAST: &str = "last row";

pub struct ChangelogNormalize {
    /// The data columns as bytes and back.
    rows: RowConverter,
    schema: SchemaRef,
}

impl ChangelogNormalize {
    /// Normalizes a changelog whose data columns are `data` (the batches carry the row kinds
    /// after them); the output has the same schema.
    pub fn new(data: &Schema) -> Result<Self> {
        let rows = RowConverter::new(
            data.fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(ChangelogNormalize {
            rows,
            schema: changelog_schema(data),
        })
    }

    fn batch(&self, changes: &[(Vec<u8>, RowKind)]) -> Result<RecordBatch> {
        let parser = self.rows.parser();
        let mut columns = self
            .rows
            .convert_rows(changes.iter().map(|(row, _)| parser.parse(row)))?;
        let kinds = changes.iter().map(|(_, kind)| *kind as u8);
        columns.push(Arc::new(UInt8Array::from_iter_values(kinds)));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl KeyedProcessFunction for ChangelogNormalize {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _: &[u8], rows: &RecordBatch, ctx: &mut KeyedContext<'_>) -> Result<()> {
        let (data, kinds) = split_row_kinds(rows)?;
        let kinds = kinds.ok_or_else(|| {
            OperatorError::invalid("changelog normalize: the input carries no row kinds")
        })?;
        let encoded = self.rows.convert_columns(data.columns())?;
        let mut state = ctx.value_state::<Vec<u8>>(LAST)?;
        let kept = state.get()?;
        let mut last = kept.clone();
        let mut changes = Vec::new();
        for (row, kind) in kinds.into_iter().enumerate() {
            if kind.is_addition() {
                let now = encoded.row(row).as_ref().to_vec();
                match last.take() {
                    Some(before) if before == now => {}
                    Some(before) => {
                        changes.push((before, RowKind::UpdateBefore));
                        changes.push((now.clone(), RowKind::UpdateAfter));
                    }
                    None => changes.push((now.clone(), RowKind::Insert)),
                }
                last = Some(now);
            } else if let Some(before) = last.take() {
                // A retraction (-D, or a -U should one come) takes back the row kept.
                changes.push((before, RowKind::Delete));
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        if last != kept {
            match &last {
                Some(row) => state.set(row)?,
                None => state.clear()?,
            }
        }
        let batch = self.batch(&changes)?;
        ctx.emit(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Array, Int64Array};
    use arrow_schema::{DataType, Field};
    use spate_api::{Operator, StateBackendKind, changelog_batch};

    use super::*;
    use crate::keyed::KeyedProcessOperator;
    use crate::test_cluster::{Instances, Lcg};

    /// (k, v): the key and a nullable value.
    fn data() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ])
    }

    fn make() -> Box<dyn Operator> {
        let function = ChangelogNormalize::new(&data()).unwrap();
        Box::new(
            KeyedProcessOperator::new(function, vec!["k".into()], changelog_schema(&data()))
                .unwrap(),
        )
    }

    fn upserts(changes: &[(i64, Option<i64>, RowKind)]) -> RecordBatch {
        let rows = RecordBatch::try_new(
            Arc::new(data()),
            vec![
                Arc::new(Int64Array::from_iter_values(changes.iter().map(|c| c.0))),
                Arc::new(Int64Array::from_iter(changes.iter().map(|c| c.1))),
            ],
        )
        .unwrap();
        let kinds: Vec<RowKind> = changes.iter().map(|c| c.2).collect();
        changelog_batch(changelog_schema(&data()), &rows, &kinds).unwrap()
    }

    /// The changes as (kind, k, v), in order.
    fn changes(output: &[RecordBatch]) -> Vec<(&'static str, i64, Option<i64>)> {
        let mut changes = Vec::new();
        for batch in output {
            let (data, kinds) = split_row_kinds(batch).unwrap();
            let keys = data.column(0).as_primitive::<Int64Type>();
            let values = data.column(1).as_primitive::<Int64Type>();
            for (row, kind) in kinds.unwrap().into_iter().enumerate() {
                let value = values.is_valid(row).then(|| values.value(row));
                changes.push((kind.short_string(), keys.value(row), value));
            }
        }
        changes
    }

    #[test]
    fn upserts_become_retractions_of_the_row_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut instances = Instances::open(
            make,
            dir.path(),
            "n",
            StateBackendKind::Heap,
            1,
            None,
            &["k"],
        )
        .unwrap();
        use RowKind::{Delete, UpdateAfter};
        instances.batch(upserts(&[
            (1, Some(10), UpdateAfter),
            (1, Some(11), UpdateAfter),
            (1, Some(11), UpdateAfter),
            (2, None, Delete),
            (1, None, Delete),
            (1, Some(12), RowKind::Insert),
        ]));
        assert_eq!(
            changes(&instances.output),
            [
                ("+I", 1, Some(10)),
                ("-U", 1, Some(10)),
                ("+U", 1, Some(11)),
                // The same row again: nothing. A delete of key 2, never seen: nothing.
                ("-D", 1, Some(11)),
                ("+I", 1, Some(12)),
            ]
        );
    }

    /// Random upserts and deletes over a few keys, on either backend, restored halfway at
    /// another parallelism: applying the retractions leaves each key's last upserted row, and
    /// every retraction names exactly the row it takes back.
    #[test]
    fn the_retractions_leave_the_last_row_of_each_key() {
        for backend in [StateBackendKind::Heap, StateBackendKind::RocksDb] {
            let dir = tempfile::tempdir().unwrap();
            let mut rng = Lcg(7);
            let mut want: BTreeMap<i64, Option<i64>> = BTreeMap::new();
            let mut table: BTreeMap<i64, Option<i64>> = BTreeMap::new();
            let mut restored = None;
            for (phase, parallelism) in [(0, 2), (1, 3)] {
                let mut instances = Instances::open(
                    make,
                    dir.path(),
                    &format!("n-{phase}"),
                    backend,
                    parallelism,
                    restored.as_ref(),
                    &["k"],
                )
                .unwrap();
                for _ in 0..30 {
                    let changes: Vec<(i64, Option<i64>, RowKind)> = (0..1 + rng.below(10))
                        .map(|_| {
                            let key = rng.below(5) as i64;
                            if rng.below(4) == 0 {
                                want.remove(&key);
                                (key, None, RowKind::Delete)
                            } else {
                                let value = (rng.below(5) > 0).then(|| rng.below(3) as i64);
                                want.insert(key, value);
                                (key, value, RowKind::UpdateAfter)
                            }
                        })
                        .collect();
                    instances.batch(upserts(&changes));
                }
                for (kind, key, value) in changes(&instances.output) {
                    match kind {
                        "+I" => assert_eq!(table.insert(key, value), None, "{key} had a row"),
                        "+U" => assert_eq!(table.insert(key, value), None, "{key} not retracted"),
                        _ => assert_eq!(table.remove(&key), Some(value), "{key}: another row"),
                    }
                }
                restored = Some(instances.snapshot(phase + 1));
            }
            assert_eq!(table, want, "{backend:?}");
        }
    }
}
