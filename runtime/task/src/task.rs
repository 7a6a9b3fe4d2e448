use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spate_api::{
    CancelFlag, MAX_WATERMARK, SourcePoll, SourceReader, StreamElement, Timestamp, now_millis,
};
use spate_network::InputGate;
use tokio::sync::Notify;

use crate::chain::Chain;
use crate::error::TaskError;
use crate::metrics::TaskMetrics;
use crate::output::OutputWriter;
use crate::valve::WatermarkValve;
use crate::watermarks::WatermarkGenerator;

/// How long a source task waits before polling a reader that had nothing.
const IDLE_POLL: Duration = Duration::from_millis(10);

pub enum TaskInput {
    Source {
        reader: Box<dyn SourceReader>,
        watermarks: Option<WatermarkGenerator>,
    },
    Gate(InputGate),
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
}

impl Task {
    pub async fn run(mut self) -> Result<TaskOutcome, TaskError> {
        let canceler = self.canceler.clone();
        let input = std::mem::replace(&mut self.input, TaskInput::Gate(InputGate::new(Vec::new())));
        let work = async move {
            match input {
                TaskInput::Source { reader, watermarks } => {
                    self.run_source(reader, watermarks).await
                }
                TaskInput::Gate(gate) => self.run_gate(gate).await,
            }
        };
        tokio::select! {
            biased;
            _ = canceler.canceled() => Ok(TaskOutcome::Canceled),
            done = work => done.map(|()| TaskOutcome::Finished),
        }
    }

    async fn run_source(
        &mut self,
        mut reader: Box<dyn SourceReader>,
        mut watermarks: Option<WatermarkGenerator>,
    ) -> Result<(), TaskError> {
        let mut last_data = now_millis();
        let mut idle = false;
        loop {
            match reader.poll_next()? {
                SourcePoll::Batch(batch) => {
                    last_data = now_millis();
                    if idle {
                        idle = false;
                        self.emit_event(StreamElement::Idle(false)).await?;
                    }
                    self.metrics.input(batch.num_rows());
                    let watermark = match &mut watermarks {
                        Some(generator) => generator.on_batch(&batch)?,
                        None => None,
                    };
                    self.process(StreamElement::Batch(batch)).await?;
                    if let Some(wm) = watermark
                        && wm > self.metrics.watermark.load(Ordering::Relaxed)
                    {
                        self.metrics.watermark.store(wm, Ordering::Relaxed);
                        self.process(StreamElement::Watermark(wm)).await?;
                    }
                }
                SourcePoll::Idle => {
                    let timeout = watermarks
                        .as_ref()
                        .and_then(WatermarkGenerator::idle_timeout_ms);
                    if !idle && timeout.is_some_and(|t| now_millis() - last_data >= t) {
                        idle = true;
                        self.emit_event(StreamElement::Idle(true)).await?;
                    }
                    self.fire_processing_timers().await?;
                    tokio::time::sleep(IDLE_POLL).await;
                }
                SourcePoll::End => break,
            }
        }
        self.finish(true).await
    }

    async fn run_gate(&mut self, mut gate: InputGate) -> Result<(), TaskError> {
        let mut valve = WatermarkValve::new(gate.num_channels());
        loop {
            let timer = self.chain.next_processing_timer();
            let next = tokio::select! {
                next = gate.next() => next,
                _ = sleep_until_millis(timer), if timer.is_some() => {
                    self.fire_processing_timers().await?;
                    continue;
                }
            };
            let Some((channel, element)) = next else {
                break;
            };
            let element = element.map_err(|source| TaskError::Input { channel, source })?;
            match element {
                StreamElement::Batch(batch) => {
                    self.metrics.input(batch.num_rows());
                    self.process(StreamElement::Batch(batch)).await?;
                }
                event => {
                    for out in valve.input(channel, &event) {
                        match out {
                            StreamElement::Watermark(wm) => {
                                self.metrics.watermark.store(wm, Ordering::Relaxed);
                                self.process(StreamElement::Watermark(wm)).await?;
                            }
                            other => self.emit_event(other).await?,
                        }
                    }
                }
            }
        }
        let flushed = valve.current() == MAX_WATERMARK;
        self.finish(!flushed).await
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
        let mut emitted = Vec::new();
        self.chain.push(0, element, &mut emitted)?;
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
