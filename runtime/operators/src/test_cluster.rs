//! The parallel instances of one operator, fed as a job would feed them: rows routed by key group
//! the way the hash exchange routes them, watermarks to every instance, snapshots gathered into
//! the state a restored (and possibly rescaled) set of instances starts from.

use std::path::Path;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_select::take::take_record_batch;
use spate_api::{
    CancelFlag, KeyEncoder, KeyGroupRange, Operator, OperatorContext, Output, RestoredState,
    StateBackendKind, StateContext, StreamElement, Timestamp, hash_key, key_group,
    subtask_for_key_group,
};

pub(crate) const MAX_PARALLELISM: u32 = 128;

/// A small deterministic LCG (Knuth's MMIX constants), high bits out.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub(crate) struct Instances {
    operators: Vec<Box<dyn Operator>>,
    parallelism: u32,
    key_columns: Vec<String>,
    /// Every batch any instance emitted.
    pub(crate) output: Vec<RecordBatch>,
}

impl Instances {
    /// Opens `parallelism` instances made by `make`, each with its own state directory under
    /// `base` (named by `label`), restored from `restored` if given.
    pub(crate) fn open(
        make: impl Fn() -> Box<dyn Operator>,
        base: &Path,
        label: &str,
        backend: StateBackendKind,
        parallelism: u32,
        restored: Option<&RestoredState>,
        key_columns: &[&str],
    ) -> spate_api::Result<Self> {
        let mut operators = Vec::new();
        for subtask in 0..parallelism {
            let ctx = OperatorContext {
                operator_name: label.to_string(),
                subtask,
                parallelism,
                max_parallelism: MAX_PARALLELISM,
                cancel: CancelFlag::default(),
                state: StateContext {
                    dir: base.join(format!("{label}-{subtask}")),
                    backend,
                    key_groups: KeyGroupRange::of_subtask(subtask, parallelism, MAX_PARALLELISM),
                    restored: restored.cloned(),
                    checkpointing: true,
                },
            };
            let mut operator = make();
            operator.open(&ctx)?;
            operators.push(operator);
        }
        Ok(Instances {
            operators,
            parallelism,
            key_columns: key_columns.iter().map(|c| c.to_string()).collect(),
            output: Vec::new(),
        })
    }

    /// Each row goes to the instance owning its key's key group; without key columns every row
    /// has the empty key.
    pub(crate) fn batch(&mut self, batch: RecordBatch) {
        let groups: Vec<u32> = if self.key_columns.is_empty() {
            vec![key_group(hash_key(&[]), MAX_PARALLELISM); batch.num_rows()]
        } else {
            let encoder = KeyEncoder::new(&batch.schema(), &self.key_columns).unwrap();
            let rows = encoder.encode(&batch).unwrap();
            rows.iter()
                .map(|row| key_group(hash_key(row.as_ref()), MAX_PARALLELISM))
                .collect()
        };
        let mut routed = vec![Vec::new(); self.parallelism as usize];
        for (row, group) in groups.into_iter().enumerate() {
            let subtask = subtask_for_key_group(group, self.parallelism, MAX_PARALLELISM);
            routed[subtask as usize].push(row as u32);
        }
        for (operator, rows) in self.operators.iter_mut().zip(routed) {
            let part = take_record_batch(&batch, &UInt32Array::from(rows)).unwrap();
            let mut out = Output::default();
            operator.process_batch(part, &mut out).unwrap();
            collect(&mut out, &mut self.output);
        }
    }

    pub(crate) fn watermark(&mut self, watermark: Timestamp) {
        for operator in &mut self.operators {
            let mut out = Output::default();
            operator.process_watermark(watermark, &mut out).unwrap();
            collect(&mut out, &mut self.output);
        }
    }

    /// Snapshots every instance for checkpoint `id`; the result is what each instance of the
    /// next attempt is restored from (it keeps the key groups it owns).
    pub(crate) fn snapshot(&mut self, id: u64) -> RestoredState {
        let mut restored = RestoredState {
            checkpoint_id: id,
            ..RestoredState::default()
        };
        for operator in &mut self.operators {
            let snapshot = operator.snapshot_state(id).unwrap();
            restored.entries.extend(snapshot.entries);
            restored.keyed.extend(snapshot.keyed);
        }
        restored
    }

    pub(crate) fn late_records_dropped(&self) -> u64 {
        self.operators
            .iter()
            .map(|o| o.metrics().late_records_dropped)
            .sum()
    }
}

fn collect(out: &mut Output, into: &mut Vec<RecordBatch>) {
    for element in out.drain() {
        if let StreamElement::Batch(batch) = element {
            into.push(batch);
        }
    }
}
