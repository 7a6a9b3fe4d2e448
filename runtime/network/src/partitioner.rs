use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::Schema;
use arrow_select::take::take_record_batch;
use spate_api::{KeyEncoder, hash_key, key_group, subtask_for_key_group};

use crate::error::{NetworkError, Result};

/// Decides which consumer subtasks receive each row of an output batch.
pub enum Partitioner {
    /// One consumer (same index as the producer): the subpartition list has one entry.
    Forward,
    /// Every consumer gets every batch.
    Broadcast,
    /// Whole batches, round robin.
    Rebalance { next: usize },
    /// Rows by key group, so each key always reaches the same consumer.
    Hash {
        encoder: KeyEncoder,
        max_parallelism: u32,
    },
}

impl Partitioner {
    pub fn hash(schema: &Schema, key_columns: &[String], max_parallelism: u32) -> Result<Self> {
        let encoder = KeyEncoder::new(schema, key_columns)
            .map_err(|e| NetworkError::Partitioning(e.to_string()))?;
        Ok(Partitioner::Hash {
            encoder,
            max_parallelism,
        })
    }

    /// Splits `batch` among `targets` consumers; returns (consumer, rows) pairs, each non-empty.
    pub fn route(
        &mut self,
        batch: RecordBatch,
        targets: usize,
    ) -> Result<Vec<(usize, RecordBatch)>> {
        match self {
            Partitioner::Forward => Ok(vec![(0, batch)]),
            Partitioner::Broadcast => Ok((0..targets).map(|t| (t, batch.clone())).collect()),
            Partitioner::Rebalance { next } => {
                let target = *next % targets;
                *next = next.wrapping_add(1);
                Ok(vec![(target, batch)])
            }
            Partitioner::Hash {
                encoder,
                max_parallelism,
            } => {
                let rows = encoder
                    .encode(&batch)
                    .map_err(|e| NetworkError::Partitioning(e.to_string()))?;
                let mut indices: Vec<Vec<u32>> = vec![Vec::new(); targets];
                for (i, row) in rows.iter().enumerate() {
                    let group = key_group(hash_key(row.as_ref()), *max_parallelism);
                    let target = subtask_for_key_group(group, targets as u32, *max_parallelism);
                    indices[target as usize].push(i as u32);
                }
                if let Some(only) = indices.iter().position(|ix| ix.len() == batch.num_rows()) {
                    return Ok(vec![(only, batch)]);
                }
                let mut routed = Vec::new();
                for (target, ix) in indices.into_iter().enumerate() {
                    if !ix.is_empty() {
                        routed.push((target, take_record_batch(&batch, &UInt32Array::from(ix))?));
                    }
                }
                Ok(routed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array};
    use arrow_schema::{DataType, Field};
    use std::collections::HashMap;
    use std::sync::Arc;

    fn batch(keys: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(keys))]).unwrap()
    }

    #[test]
    fn hash_routes_each_key_to_one_consumer_and_keeps_every_row() {
        let input = batch((0..1000).map(|i| i % 37).collect());
        let mut p = Partitioner::hash(&input.schema(), &["k".into()], 128).unwrap();
        let mut owner: HashMap<i64, usize> = HashMap::new();
        let mut rows = 0;
        for _ in 0..2 {
            for (target, part) in p.route(input.clone(), 4).unwrap() {
                rows += part.num_rows();
                let keys = part
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                for k in keys.values() {
                    assert_eq!(*owner.entry(*k).or_insert(target), target, "key {k} split");
                }
            }
        }
        assert_eq!(rows, 2000);
        assert!(
            owner
                .values()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 1
        );
    }

    #[test]
    fn rebalance_cycles_and_broadcast_copies() {
        let mut r = Partitioner::Rebalance { next: 0 };
        let targets: Vec<usize> = (0..5)
            .map(|_| r.route(batch(vec![1]), 3).unwrap()[0].0)
            .collect();
        assert_eq!(targets, vec![0, 1, 2, 0, 1]);
        let copies = Partitioner::Broadcast.route(batch(vec![1, 2]), 3).unwrap();
        assert_eq!(copies.len(), 3);
        assert!(copies.iter().all(|(_, b)| b.column(0).len() == 2));
    }
}
