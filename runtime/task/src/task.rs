use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::time::Instant;

use spate_api::{
    CancelFlag, CheckpointBarrier, MAX_WATERMARK, OperatorSnapshot, StreamElement, Timestamp,
    now_millis,
};
use spate_network::InputGates;
use tokio::sync::Notify;

use crate::align::BarrierAligner;
use crate::chain::Chain;
use crate::checkpoint::{Checkpointing, TaskCommand, TaskSnapshot};
use crate::error::TaskError;
use crate::metrics::TaskMetrics;
use crate::output::OutputWriter;
use crate::source::{SourceEvent, SourceInput};
use crate::valve::InputValves;

/// The checkpoint id under which operators take and commit their final snapshot.
pub const FINAL_SNAPSHOT: u64 = u64::MAX;

/// How long a source task waits before polling a reader that had nothing.
const IDLE_POLL: Duration = Duration::from_millis(10);

pub enum TaskInput {
    Source(SourceInput),
    /// One gate per logical input of the first operator.
    Gates(InputGates),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    Finished,
    Canceled,
}

/// Stops a task: the flag reaches synchronous operator code, the notification wakes the task
/// wherever it waits (input, output back-pressure, timers).
#[derive(Clone, Default)]
pub struct Canceler {
    pub flag: CancelFlag,
    wake: Arc<Notify>,
}

impl Canceler {
    pub fn cancel(&self) {
        self.flag.cancel();
        self.wake.notify_one();
    }

    async fn canceled(&self) {
        while !self.flag.is_canceled() {
            self.wake.notified().await;
        }
    }
}

pub struct Task {
    pub input: TaskInput,
    pub chain: Chain,
    pub outputs: Vec<OutputWriter>,
    pub metrics: Arc<TaskMetrics>,
    pub canceler: Canceler,
    /// `None` when the job takes no checkpoints.
    pub checkpointing: Option<Checkpointing>,
}

impl Task {
    pub async fn run(mut self) -> Result<TaskOutcome, TaskError> {
        let canceler = self.canceler.clone();
        let input = std::mem::replace(&mut self.input, TaskInput::Gates(InputGates::new(vec![])));
        let work = async move {
            match input {
                TaskInput::Source(source) => self.run_source(source).await,
                TaskInput::Gates(gates) => self.run_gates(gates).await,
            }
        };
        tokio::select! {
            biased;
            _ = canceler.canceled() => Ok(TaskOutcome::Canceled),
            done = work => done.map(|()| TaskOutcome::Finished),
        }
    }

    async fn run_source(&mut self, mut source: SourceInput) -> Result<(), TaskError> {
        let mut last_data = now_millis();
        let mut idle = false;
        loop {
            while let Some(command) = self.pending_command() {
                match command {
                    TaskCommand::Trigger(barrier) => {
                        let positions = source.snapshot()?;
                        let operator = (source.operator_id.clone(), positions);
                        self.checkpoint(barrier, Some(operator)).await?;
                    }
                    TaskCommand::Complete(id) => self.chain.notify_checkpoint_complete(id)?,
                }
            }
            match source.poll()? {
                SourceEvent::Batch(batch, watermark) => {
                    last_data = now_millis();
                    if idle {
                        idle = false;
                        self.emit_event(StreamElement::Idle(false)).await?;
                    }
                    self.metrics.input(batch.num_rows());
                    self.process(StreamElement::Batch(batch)).await?;
                    if let Some(wm) = watermark {
                        self.source_watermark(wm).await?;
                    }
                }
                SourceEvent::Watermark(wm) => self.source_watermark(wm).await?,
                SourceEvent::Idle => {
                    let timeout = source.idle_timeout_ms();
                    if !idle && timeout.is_some_and(|t| now_millis() - last_data >= t) {
                        idle = true;
                        self.emit_event(StreamElement::Idle(true)).await?;
                    }
                    self.fire_processing_timers().await?;
                    tokio::time::sleep(IDLE_POLL).await;
                }
                SourceEvent::End => break,
            }
        }
        self.finish(true).await?;
        let positions = source.snapshot()?;
        self.final_snapshot(Some((source.operator_id.clone(), positions)))
            .await
    }

    async fn source_watermark(&mut self, wm: Timestamp) -> Result<(), TaskError> {
        if wm > self.metrics.watermark.load(Ordering::Relaxed) {
            self.metrics.watermark.store(wm, Ordering::Relaxed);
            self.process(StreamElement::Watermark(wm)).await?;
        }
        Ok(())
    }

    fn pending_command(&mut self) -> Option<TaskCommand> {
        self.checkpointing.as_mut()?.commands.try_recv().ok()
    }

    async fn run_gates(&mut self, mut gates: InputGates) -> Result<(), TaskError> {
        let mut valves = InputValves::new((0..gates.num_inputs()).map(|i| gates.num_channels(i)));
        let mut aligner = BarrierAligner::default();
        loop {
            let timer = self.chain.next_processing_timer();
            let next = tokio::select! {
                next = gates.next() => next,
                command = Checkpointing::next(&mut self.checkpointing) => {
                    if let TaskCommand::Complete(id) = command {
                        self.chain.notify_checkpoint_complete(id)?;
                    }
                    continue;
                }
                _ = sleep_until_millis(timer), if timer.is_some() => {
                    self.fire_processing_timers().await?;
                    continue;
                }
            };
            let Some((at, element)) = next else {
                break;
            };
            let element = element.map_err(|source| TaskError::Input {
                input: at.input,
                channel: at.channel,
                source,
            })?;
            match element {
                StreamElement::Batch(batch) => {
                    self.metrics.input(batch.num_rows());
                    self.process_input(at.input, StreamElement::Batch(batch))
                        .await?;
                }
                StreamElement::Barrier(barrier) => {
                    if let Some(aligned) = aligner.on_barrier(at, barrier, &mut gates) {
                        self.checkpoint(aligned, None).await?;
                    }
                }
                event => {
                    let end = matches!(event, StreamElement::End);
                    if end && let Some(aligned) = aligner.on_end(&mut gates) {
                        self.checkpoint(aligned, None).await?;
                    }
                    let out = valves.input(at, &event);
                    if let Some(wm) = out.input_watermark {
                        let mut emitted = Vec::new();
                        self.chain.input_watermark(at.input, wm, &mut emitted)?;
                        self.emit(emitted).await?;
                    }
                    for out in out.task {
                        match out {
                            StreamElement::Watermark(wm) => {
                                self.metrics.watermark.store(wm, Ordering::Relaxed);
                                self.process(StreamElement::Watermark(wm)).await?;
                            }
                            other => self.emit_event(other).await?,
                        }
                    }
                    if end && gates.is_finished(at.input) {
                        let mut emitted = Vec::new();
                        self.chain.end_input(at.input, &mut emitted)?;
                        self.emit(emitted).await?;
                    }
                }
            }
        }
        let flushed = valves.current() == MAX_WATERMARK;
        self.finish(!flushed).await?;
        self.final_snapshot(None).await
    }

    /// The synchronous part of a checkpoint: every operator of the chain snapshots (the source's
    /// positions come first), then the barrier goes downstream and the snapshot to the worker.
    async fn checkpoint(
        &mut self,
        barrier: CheckpointBarrier,
        source: Option<(String, Vec<spate_api::StateEntry>)>,
    ) -> Result<(), TaskError> {
        let started = Instant::now();
        let mut operators = Vec::new();
        if let Some((id, entries)) = source {
            operators.push((
                id,
                OperatorSnapshot {
                    entries,
                    keyed: None,
                },
            ));
        }
        operators.extend(self.chain.snapshot(barrier.id)?);
        let snapshot = TaskSnapshot {
            barrier: Some(barrier),
            operators,
            sync_duration: started.elapsed(),
        };
        self.emit_event(StreamElement::Barrier(barrier)).await?;
        self.send_snapshot(snapshot)
    }

    /// After the end of input: hands over what sinks still have to commit and waits until the
    /// JobMaster made the job's final checkpoint durable, then lets the operators commit.
    async fn final_snapshot(
        &mut self,
        source: Option<(String, Vec<spate_api::StateEntry>)>,
    ) -> Result<(), TaskError> {
        if self.checkpointing.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let mut operators = Vec::new();
        if let Some((id, entries)) = source {
            operators.push((
                id,
                OperatorSnapshot {
                    entries,
                    keyed: None,
                },
            ));
        }
        for (id, mut snapshot) in self.chain.snapshot(FINAL_SNAPSHOT)? {
            snapshot.keyed = None;
            operators.push((id, snapshot));
        }
        self.send_snapshot(TaskSnapshot {
            barrier: None,
            operators,
            sync_duration: started.elapsed(),
        })?;
        loop {
            match Checkpointing::next(&mut self.checkpointing).await {
                TaskCommand::Complete(id) if id == FINAL_SNAPSHOT => {
                    return Ok(self.chain.notify_checkpoint_complete(id)?);
                }
                TaskCommand::Complete(id) => self.chain.notify_checkpoint_complete(id)?,
                TaskCommand::Trigger(_) => {}
            }
        }
    }

    fn send_snapshot(&mut self, snapshot: TaskSnapshot) -> Result<(), TaskError> {
        let Some(checkpointing) = &self.checkpointing else {
            return Ok(());
        };
        checkpointing
            .snapshots
            .send(snapshot)
            .map_err(|_| TaskError::CheckpointUploaderGone)
    }

    /// Ends the task: the final watermark (unless the inputs already delivered it) fires every
    /// event-time window and timer, then operators finish and consumers learn the end.
    async fn finish(&mut self, final_watermark: bool) -> Result<(), TaskError> {
        if final_watermark {
            self.metrics
                .watermark
                .store(MAX_WATERMARK, Ordering::Relaxed);
            self.process(StreamElement::Watermark(MAX_WATERMARK))
                .await?;
        }
        let mut emitted = Vec::new();
        self.chain.finish(&mut emitted)?;
        self.emit(emitted).await?;
        self.emit_event(StreamElement::End).await
    }

    async fn process(&mut self, element: StreamElement) -> Result<(), TaskError> {
        self.process_input(0, element).await
    }

    /// Pushes an element of logical input `input` through the chain.
    async fn process_input(
        &mut self,
        input: usize,
        element: StreamElement,
    ) -> Result<(), TaskError> {
        let mut emitted = Vec::new();
        self.chain.push_input(input, element, &mut emitted)?;
        self.metrics
            .late_records_dropped
            .store(self.chain.late_records_dropped(), Ordering::Relaxed);
        self.emit(emitted).await
    }

    async fn fire_processing_timers(&mut self) -> Result<(), TaskError> {
        let mut emitted = Vec::new();
        self.chain.on_processing_time(now_millis(), &mut emitted)?;
        self.emit(emitted).await
    }

    async fn emit(&mut self, elements: Vec<StreamElement>) -> Result<(), TaskError> {
        for element in elements {
            match element {
                StreamElement::Batch(batch) => {
                    for output in &mut self.outputs {
                        output.write_batch(batch.clone(), &self.metrics).await?;
                    }
                }
                event => self.emit_event(event).await?,
            }
        }
        Ok(())
    }

    async fn emit_event(&mut self, event: StreamElement) -> Result<(), TaskError> {
        for output in &mut self.outputs {
            output.broadcast(&event).await?;
        }
        Ok(())
    }
}

async fn sleep_until_millis(deadline: Option<Timestamp>) {
    let wait = deadline.map_or(0, |d| (d - now_millis()).max(0));
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
}
