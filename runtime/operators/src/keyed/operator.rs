use arrow_array::{RecordBatch, UInt32Array};
use arrow_row::Rows;
use arrow_schema::SchemaRef;
use arrow_select::take::take_record_batch;
use spate_api::{
    KeyEncoder, MIN_WATERMARK, Operator, OperatorContext, OperatorError, OperatorSnapshot, Output,
    Result, Timestamp, now_millis,
};
use spate_state::{KeyedStateBackend, open_backend};

use super::context::{Emitter, KeyedContext};
use super::hash::FastMap;
use super::state::StateHandles;
use super::{KeyedCoProcessFunction, KeyedProcessFunction, TimeDomain};
use crate::checkpoint::{FINAL_CHECKPOINT, restored_watermark, watermark_entry};

/// How a keyed operator hands rows and timers to user code: a function of one input
/// ([`OneInput`]) or of two ([`TwoInputs`]). Everything else (grouping by key, state, timers,
/// checkpoints) is the same for both, in [`KeyedOperator`].
pub trait KeyedLogic: Send {
    fn output_schema(&self) -> SchemaRef;

    fn process(
        &mut self,
        input: usize,
        key: &[u8],
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()>;

    fn on_timer(
        &mut self,
        key: &[u8],
        timestamp: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()>;
}

/// A `KeyedProcessFunction` as the logic of a keyed operator.
pub struct OneInput<F>(F);

impl<F: KeyedProcessFunction> KeyedLogic for OneInput<F> {
    fn output_schema(&self) -> SchemaRef {
        self.0.output_schema()
    }

    fn process(
        &mut self,
        _input: usize,
        key: &[u8],
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        self.0.process(key, rows, ctx)
    }

    fn on_timer(
        &mut self,
        key: &[u8],
        timestamp: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        self.0.on_timer(key, timestamp, domain, ctx)
    }
}

/// A `KeyedCoProcessFunction` as the logic of a keyed operator: input 0 goes to `process1`,
/// input 1 to `process2`.
pub struct TwoInputs<F>(F);

impl<F: KeyedCoProcessFunction> KeyedLogic for TwoInputs<F> {
    fn output_schema(&self) -> SchemaRef {
        self.0.output_schema()
    }

    fn process(
        &mut self,
        input: usize,
        key: &[u8],
        rows: &RecordBatch,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        match input {
            0 => self.0.process1(key, rows, ctx),
            _ => self.0.process2(key, rows, ctx),
        }
    }

    fn on_timer(
        &mut self,
        key: &[u8],
        timestamp: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
    ) -> Result<()> {
        self.0.on_timer(key, timestamp, domain, ctx)
    }
}

/// Runs a `KeyedProcessFunction`: groups each batch by key and drives the function's timers.
pub type KeyedProcessOperator<F> = KeyedOperator<OneInput<F>>;

/// Runs a `KeyedCoProcessFunction` on two inputs keyed alike: state and timers of a key are
/// shared by the rows of both inputs.
pub type KeyedCoProcessOperator<F> = KeyedOperator<TwoInputs<F>>;

/// Groups each batch by key and drives the logic's timers. Keyed state and timers live in a
/// spate-state backend (heap or RocksDB, as the job configures), which snapshots them at
/// checkpoints and restores them in `open`.
pub struct KeyedOperator<L: KeyedLogic> {
    logic: L,
    /// By input: the key columns of each input, of equal types, so a key's bytes are the same
    /// whichever input it came from (and so are its key group and its state).
    keys: Vec<KeyEncoder>,
    backend: Box<dyn KeyedStateBackend>,
    handles: StateHandles,
    emitter: Emitter,
    watermark: Timestamp,
    /// The earliest processing-time timer, kept up to date after every call that can change
    /// timers: `next_processing_timer` takes `&self`, and the backend lends its timers only
    /// mutably.
    next_processing: Option<Timestamp>,
}

impl<F: KeyedProcessFunction> KeyedOperator<OneInput<F>> {
    /// Until `open` gives it the instance's state, the operator runs on empty heap state owning
    /// every key, as the single instance of a job (for tests and tools).
    pub fn new(function: F, key_columns: Vec<String>, input: SchemaRef) -> Result<Self> {
        let keys = KeyEncoder::new(&input, &key_columns)?;
        KeyedOperator::with(OneInput(function), vec![keys])
    }

    pub fn function(&self) -> &F {
        &self.logic.0
    }
}

impl<F: KeyedCoProcessFunction> KeyedOperator<TwoInputs<F>> {
    /// Keys input 0 by `first`'s columns and input 1 by `second`'s, which must have the same
    /// types in the same order (the names may differ).
    pub fn new(
        function: F,
        first: (Vec<String>, SchemaRef),
        second: (Vec<String>, SchemaRef),
    ) -> Result<Self> {
        let keys = vec![
            KeyEncoder::new(&first.1, &first.0)?,
            KeyEncoder::new(&second.1, &second.0)?,
        ];
        let types = |k: &KeyEncoder| -> Vec<String> {
            k.fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect()
        };
        if types(&keys[0]) != types(&keys[1]) {
            return Err(OperatorError::invalid(format!(
                "the inputs are keyed by columns of other types: ({}) is ({}) and ({}) is ({})",
                first.0.join(", "),
                types(&keys[0]).join(", "),
                second.0.join(", "),
                types(&keys[1]).join(", ")
            )));
        }
        KeyedOperator::with(TwoInputs(function), keys)
    }

    pub fn function(&self) -> &F {
        &self.logic.0
    }
}

impl<L: KeyedLogic> KeyedOperator<L> {
    fn with(logic: L, keys: Vec<KeyEncoder>) -> Result<Self> {
        let emitter = Emitter::new(logic.output_schema());
        let single = OperatorContext::single("keyed process");
        Ok(KeyedOperator {
            logic,
            keys,
            backend: open_backend(&single.state, single.max_parallelism)?,
            handles: StateHandles::default(),
            emitter,
            watermark: MIN_WATERMARK,
            next_processing: None,
        })
    }

    fn fire(
        &mut self,
        domain: TimeDomain,
        time: Timestamp,
        processing_time: Timestamp,
        out: &mut Output,
    ) -> Result<()> {
        // The queue is re-read after each callback: timers the function registers at or before
        // `time` fire in this same round, in timestamp order.
        while let Some(timer) = self.backend.timers().pop_due(domain, time) {
            let mut ctx = KeyedContext::new(
                timer.key.as_key(),
                &mut *self.backend,
                &mut self.handles,
                &mut self.emitter,
                out,
                self.watermark,
                processing_time,
            );
            self.logic
                .on_timer(&timer.key.bytes, timer.timestamp, domain, &mut ctx)?;
        }
        self.timers_changed();
        self.emitter.flush(out)
    }

    fn timers_changed(&mut self) {
        self.next_processing = self
            .backend
            .timers()
            .next_timestamp(TimeDomain::ProcessingTime);
    }
}

impl<L: KeyedLogic> Operator for KeyedOperator<L> {
    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        self.backend = open_backend(&ctx.state, ctx.max_parallelism)?;
        // Handles are ids in the backend that registered them.
        self.handles = StateHandles::default();
        // Restored so that the function sees the event time it saw before (a function dropping
        // records behind the watermark drops the same ones after a restore).
        self.watermark = restored_watermark(ctx.state.restored.as_ref())?;
        self.timers_changed();
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        self.process_batch_from(0, batch, out)
    }

    fn process_batch_from(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Output,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = self.keys.get(input).ok_or_else(|| {
            OperatorError::invalid(format!(
                "a batch for input {input} of an operator with {} input(s)",
                self.keys.len()
            ))
        })?;
        let rows = keys.encode(&batch)?;
        let groups = KeyGroups::of(&rows);
        let grouped = if groups.firsts.len() == 1 {
            batch
        } else {
            take_record_batch(&batch, &UInt32Array::from(groups.order))?
        };
        let processing_time = now_millis();
        for (group, &first) in groups.firsts.iter().enumerate() {
            let offset = groups.offsets[group] as usize;
            let len = groups.offsets[group + 1] as usize - offset;
            let key = rows.row(first as usize).data();
            let mut ctx = KeyedContext::new(
                self.backend.key(key),
                &mut *self.backend,
                &mut self.handles,
                &mut self.emitter,
                out,
                self.watermark,
                processing_time,
            );
            self.logic
                .process(input, key, &grouped.slice(offset, len), &mut ctx)?;
        }
        self.timers_changed();
        self.emitter.flush(out)
    }

    fn process_watermark(&mut self, watermark: Timestamp, out: &mut Output) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        self.fire(TimeDomain::EventTime, self.watermark, now_millis(), out)?;
        out.watermark(watermark);
        Ok(())
    }

    fn next_processing_timer(&self) -> Option<Timestamp> {
        self.next_processing
    }

    fn on_processing_time(&mut self, now: Timestamp, out: &mut Output) -> Result<()> {
        self.fire(TimeDomain::ProcessingTime, now, now, out)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot> {
        let keyed = if checkpoint_id == FINAL_CHECKPOINT {
            None
        } else {
            Some(self.backend.snapshot(checkpoint_id)?)
        };
        Ok(OperatorSnapshot {
            entries: vec![watermark_entry(self.watermark)],
            keyed,
        })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        Ok(self.backend.notify_checkpoint_complete(checkpoint_id)?)
    }
}

/// A stable grouping of a batch's rows by key: groups in order of first appearance, rows of a
/// group in arrival order, laid out contiguously so each group is a zero-copy slice.
struct KeyGroups {
    /// Row indices, group after group.
    order: Vec<u32>,
    /// Where each group starts in `order`, plus the total at the end.
    offsets: Vec<u32>,
    /// The first row of each group, to read its key from.
    firsts: Vec<u32>,
}

impl KeyGroups {
    fn of(rows: &Rows) -> Self {
        let n = rows.num_rows();
        let mut ids: FastMap<&[u8], u32> = FastMap::default();
        let mut firsts = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut group_of = Vec::with_capacity(n);
        for row in 0..n {
            let group = *ids.entry(rows.row(row).data()).or_insert_with(|| {
                firsts.push(row as u32);
                counts.push(0);
                (firsts.len() - 1) as u32
            });
            counts[group as usize] += 1;
            group_of.push(group);
        }
        let mut offsets = Vec::with_capacity(counts.len() + 1);
        let mut total = 0;
        offsets.push(0);
        for count in counts {
            total += count;
            offsets.push(total);
        }
        let mut next = offsets.clone();
        let mut order = vec![0; n];
        for (row, group) in group_of.into_iter().enumerate() {
            let slot = &mut next[group as usize];
            order[*slot as usize] = row as u32;
            *slot += 1;
        }
        KeyGroups {
            order,
            offsets,
            firsts,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use spate_api::{OperatorError, StreamElement};

    use super::*;

    /// Counts rows per key; every row asks for an event-time timer at ts + 10 and all ask for
    /// one processing-time timer at 1000. A negative ts deletes the event-time timer at
    /// -ts + 10 instead. The timer at 15 chains a timer at 16.
    struct CountPerKey {
        counts: HashMap<Vec<u8>, (String, i64)>,
        calls: Vec<(String, Vec<i64>)>,
        schema: SchemaRef,
    }

    impl CountPerKey {
        fn new() -> Self {
            CountPerKey {
                counts: HashMap::new(),
                calls: Vec::new(),
                schema: Arc::new(Schema::new(vec![
                    Field::new("k", DataType::Utf8, false),
                    Field::new("count", DataType::Int64, false),
                    Field::new("timer", DataType::Int64, false),
                    Field::new("domain", DataType::Utf8, false),
                ])),
            }
        }
    }

    impl KeyedProcessFunction for CountPerKey {
        fn output_schema(&self) -> SchemaRef {
            self.schema.clone()
        }

        fn process(
            &mut self,
            key: &[u8],
            rows: &RecordBatch,
            ctx: &mut KeyedContext<'_>,
        ) -> Result<()> {
            let names = rows.column(0).as_string::<i32>();
            let times = rows.column(1).as_primitive::<Int64Type>();
            self.calls
                .push((names.value(0).to_string(), times.values().to_vec()));
            let entry = self
                .counts
                .entry(key.to_vec())
                .or_insert_with(|| (names.value(0).to_string(), 0));
            entry.1 += rows.num_rows() as i64;
            for &ts in times.values() {
                if ts < 0 {
                    ctx.delete_event_time_timer(-ts + 10);
                } else {
                    ctx.register_event_time_timer(ts + 10)?;
                }
            }
            ctx.register_processing_time_timer(1000)?;
            Ok(())
        }

        fn on_timer(
            &mut self,
            key: &[u8],
            timestamp: Timestamp,
            domain: TimeDomain,
            ctx: &mut KeyedContext<'_>,
        ) -> Result<()> {
            if domain == TimeDomain::EventTime {
                assert!(timestamp <= ctx.current_watermark());
                if timestamp == 15 {
                    ctx.register_event_time_timer(16)?;
                }
            }
            let (name, count) = self.counts[key].clone();
            let domain = match domain {
                TimeDomain::EventTime => "event",
                TimeDomain::ProcessingTime => "processing",
            };
            ctx.emit(RecordBatch::try_new(
                self.schema.clone(),
                vec![
                    Arc::new(StringArray::from(vec![name])),
                    Arc::new(Int64Array::from(vec![count])),
                    Arc::new(Int64Array::from(vec![timestamp])),
                    Arc::new(StringArray::from(vec![domain])),
                ],
            )?)
        }
    }

    fn input(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Row(String, i64, i64, String),
        Watermark(Timestamp),
    }

    fn drain(out: &mut Output) -> Vec<Seen> {
        let mut seen = Vec::new();
        for element in out.drain() {
            match element {
                StreamElement::Batch(batch) => {
                    for i in 0..batch.num_rows() {
                        seen.push(Seen::Row(
                            batch.column(0).as_string::<i32>().value(i).to_string(),
                            batch.column(1).as_primitive::<Int64Type>().value(i),
                            batch.column(2).as_primitive::<Int64Type>().value(i),
                            batch.column(3).as_string::<i32>().value(i).to_string(),
                        ));
                    }
                }
                StreamElement::Watermark(wm) => seen.push(Seen::Watermark(wm)),
                other => panic!("unexpected {other:?}"),
            }
        }
        seen
    }

    fn row(k: &str, count: i64, timer: i64, domain: &str) -> Seen {
        Seen::Row(k.into(), count, timer, domain.into())
    }

    #[test]
    fn counts_per_key_and_fires_timers_in_order() {
        let batch = input(&[("a", 1), ("b", 2), ("a", 1), ("a", 5), ("c", 3)]);
        let mut op =
            KeyedProcessOperator::new(CountPerKey::new(), vec!["k".into()], batch.schema())
                .unwrap();
        let mut out = Output::default();
        op.process_batch(batch, &mut out).unwrap();
        op.process_batch(input(&[("c", -3)]), &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(
            op.function().calls,
            vec![
                ("a".to_string(), vec![1, 1, 5]),
                ("b".to_string(), vec![2]),
                ("c".to_string(), vec![3]),
                ("c".to_string(), vec![-3]),
            ]
        );

        // a@11 was registered twice but fires once; c@13 was deleted.
        op.process_watermark(13, &mut out).unwrap();
        assert_eq!(
            drain(&mut out),
            vec![
                row("a", 3, 11, "event"),
                row("b", 1, 12, "event"),
                Seen::Watermark(13)
            ]
        );

        // The timer at 16 that a@15 registers is due too, so it fires before the watermark.
        op.process_batch(input(&[("b", 30)]), &mut out).unwrap();
        op.process_watermark(20, &mut out).unwrap();
        assert_eq!(
            drain(&mut out),
            vec![
                row("a", 3, 15, "event"),
                row("a", 3, 16, "event"),
                Seen::Watermark(20)
            ]
        );

        assert_eq!(op.next_processing_timer(), Some(1000));
        op.on_processing_time(999, &mut out).unwrap();
        assert!(out.is_empty());
        op.on_processing_time(1000, &mut out).unwrap();
        // Timers due at the same time fire by key group, then key: an order that survives
        // restores and rescaling, unlike the order of registration.
        assert_eq!(
            drain(&mut out),
            vec![
                row("b", 2, 1000, "processing"),
                row("c", 2, 1000, "processing"),
                row("a", 3, 1000, "processing"),
            ]
        );
        assert_eq!(op.next_processing_timer(), None);

        op.process_watermark(spate_api::MAX_WATERMARK, &mut out)
            .unwrap();
        assert_eq!(
            drain(&mut out),
            vec![
                row("b", 2, 40, "event"),
                Seen::Watermark(spate_api::MAX_WATERMARK)
            ]
        );
    }

    #[test]
    fn groups_keep_first_appearance_and_arrival_order() {
        let batch = input(&[("x", 0), ("y", 1), ("x", 2), ("z", 3), ("y", 4), ("x", 5)]);
        let encoder = KeyEncoder::new(&batch.schema(), &["k".into()]).unwrap();
        let groups = KeyGroups::of(&encoder.encode(&batch).unwrap());
        assert_eq!(groups.order, vec![0, 2, 5, 1, 4, 3]);
        assert_eq!(groups.offsets, vec![0, 3, 5, 6]);
        assert_eq!(groups.firsts, vec![0, 1, 3]);
    }

    struct WrongSchema;

    impl KeyedProcessFunction for WrongSchema {
        fn output_schema(&self) -> SchemaRef {
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
        }

        fn process(
            &mut self,
            _: &[u8],
            rows: &RecordBatch,
            ctx: &mut KeyedContext<'_>,
        ) -> Result<()> {
            ctx.emit(rows.clone())
        }
    }

    #[test]
    fn emitting_other_columns_than_declared_is_an_error() {
        let batch = input(&[("a", 1)]);
        let mut op =
            KeyedProcessOperator::new(WrongSchema, vec!["k".into()], batch.schema()).unwrap();
        let err = op.process_batch(batch, &mut Output::default()).unwrap_err();
        assert!(matches!(err, OperatorError::Invalid(_)));
        assert!(
            err.to_string()
                .contains("(k Utf8 NOT NULL, ts Int64 NOT NULL)"),
            "{err}"
        );
        assert!(err.to_string().contains("(n Int64 NOT NULL)"), "{err}");
    }

    #[test]
    fn unknown_key_column_is_named() {
        let err = KeyedProcessOperator::new(WrongSchema, vec!["nope".into()], input(&[]).schema())
            .err()
            .unwrap();
        assert!(err.to_string().contains("'nope'"), "{err}");
    }

    /// Per key: rows of input 0 add 1, rows of input 1 add 100, to one value state; the
    /// event-time timer at 100 emits the total.
    struct Both(SchemaRef, HashMap<Vec<u8>, String>);

    impl Both {
        fn add(
            &mut self,
            key: &[u8],
            rows: &RecordBatch,
            n: i64,
            ctx: &mut KeyedContext<'_>,
        ) -> Result<()> {
            let name = rows.column(0).as_string::<i32>().value(0).to_string();
            self.1.insert(key.to_vec(), name);
            let mut total = ctx.value_state::<i64>("total")?;
            let seen = total.get()?.unwrap_or(0);
            total.set(&(seen + n))?;
            ctx.register_event_time_timer(100)
        }
    }

    impl KeyedCoProcessFunction for Both {
        fn output_schema(&self) -> SchemaRef {
            self.0.clone()
        }

        fn process1(
            &mut self,
            key: &[u8],
            rows: &RecordBatch,
            ctx: &mut KeyedContext<'_>,
        ) -> Result<()> {
            self.add(key, rows, rows.num_rows() as i64, ctx)
        }

        fn process2(
            &mut self,
            key: &[u8],
            rows: &RecordBatch,
            ctx: &mut KeyedContext<'_>,
        ) -> Result<()> {
            self.add(key, rows, 100 * rows.num_rows() as i64, ctx)
        }

        fn on_timer(
            &mut self,
            key: &[u8],
            _: Timestamp,
            _: TimeDomain,
            ctx: &mut KeyedContext<'_>,
        ) -> Result<()> {
            let total = ctx.value_state::<i64>("total")?.get()?.unwrap_or(0);
            let name = self.1[key].clone();
            ctx.emit(RecordBatch::try_new(
                self.0.clone(),
                vec![
                    Arc::new(StringArray::from(vec![name])),
                    Arc::new(Int64Array::from(vec![total])),
                ],
            )?)
        }
    }

    fn named(column: &str, names: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
        let names = StringArray::from_iter_values(names.iter().copied());
        RecordBatch::try_new(schema, vec![Arc::new(names)]).unwrap()
    }

    fn both() -> KeyedCoProcessOperator<Both> {
        let out = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("total", DataType::Int64, false),
        ]));
        let first = (vec!["k".to_string()], named("k", &[]).schema());
        let second = (vec!["name".to_string()], named("name", &[]).schema());
        KeyedCoProcessOperator::new(Both(out, HashMap::new()), first, second).unwrap()
    }

    #[test]
    fn a_key_shares_its_state_and_timers_between_the_two_inputs() {
        let mut op = both();
        let mut out = Output::default();
        op.process_batch_from(0, named("k", &["a", "b", "a"]), &mut out)
            .unwrap();
        op.process_batch_from(1, named("name", &["a", "c"]), &mut out)
            .unwrap();
        op.process_watermark(100, &mut out).unwrap();
        let mut rows = Vec::new();
        for element in out.drain() {
            if let StreamElement::Batch(b) = element {
                let names = b.column(0).as_string::<i32>();
                let totals = b.column(1).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    rows.push((names.value(i).to_string(), totals.value(i)));
                }
            }
        }
        rows.sort();
        let expected = [("a", 102), ("b", 1), ("c", 100)].map(|(k, n)| (k.to_string(), n));
        assert_eq!(
            rows, expected,
            "one timer per key, one total across both inputs"
        );

        let err = op
            .process_batch_from(2, named("k", &["a"]), &mut out)
            .unwrap_err();
        assert!(
            err.to_string().contains("input 2 of an operator with 2"),
            "{err}"
        );
    }

    #[test]
    fn inputs_keyed_by_columns_of_other_types_are_refused() {
        let out = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false)]));
        let first = (vec!["k".to_string()], named("k", &[]).schema());
        let second = (vec!["ts".to_string()], input(&[]).schema());
        let err = KeyedCoProcessOperator::new(Both(out, HashMap::new()), first, second)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("(k) is (Utf8) and (ts) is (Int64)"),
            "{err}"
        );
    }
}
