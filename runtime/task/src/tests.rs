//! A task with two logical inputs, driven through local queues: which input each batch came
//! from, barrier alignment across the inputs, the watermark as the least of the inputs', and
//! the end of each input.

use std::sync::{Arc, Mutex};

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use futures::FutureExt;
use spate_api::{
    BarrierKind, CheckpointBarrier, MAX_WATERMARK, Operator, Output, Result, StreamElement,
    Timestamp,
};
use spate_network::{
    InputChannel, InputGate, InputGates, Partitioner, QueueReceiver, QueueSender, queue,
};
use tokio::sync::mpsc;

use crate::{
    Canceler, Chain, ChainedOperator, Checkpointing, FINAL_SNAPSHOT, OutputWriter, Task,
    TaskCommand, TaskInput, TaskMetrics, TaskOutcome, TaskSnapshot,
};

/// Writes down every call it gets, in order.
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn log(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

impl Operator for Recorder {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        self.process_batch_from(0, batch, out)
    }

    fn process_batch_from(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Output,
    ) -> Result<()> {
        self.log(format!("batch {input}:{}", value(&batch)));
        out.batch(batch);
        Ok(())
    }

    fn process_watermark(&mut self, watermark: Timestamp, out: &mut Output) -> Result<()> {
        self.log(format!("watermark {}", shown(watermark)));
        out.watermark(watermark);
        Ok(())
    }

    fn process_input_watermark(
        &mut self,
        input: usize,
        watermark: Timestamp,
        _: &mut Output,
    ) -> Result<()> {
        self.log(format!("input {input} watermark {}", shown(watermark)));
        Ok(())
    }

    fn end_input(&mut self, input: usize, _: &mut Output) -> Result<()> {
        self.log(format!("end {input}"));
        Ok(())
    }

    fn finish(&mut self, _: &mut Output) -> Result<()> {
        self.log("finish".into());
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<spate_api::OperatorSnapshot> {
        self.log(format!("snapshot {checkpoint_id}"));
        Ok(Default::default())
    }
}

fn shown(watermark: Timestamp) -> String {
    if watermark == MAX_WATERMARK {
        "MAX".into()
    } else {
        watermark.to_string()
    }
}

fn value(batch: &RecordBatch) -> i64 {
    let column = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    column.value(0)
}

fn batch(v: i64) -> StreamElement {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let column = Arc::new(Int64Array::from(vec![v]));
    StreamElement::Batch(RecordBatch::try_new(schema, vec![column]).unwrap())
}

fn barrier(id: u64) -> StreamElement {
    StreamElement::Barrier(CheckpointBarrier {
        id,
        timestamp: 0,
        kind: BarrierKind::Checkpoint,
    })
}

struct Harness {
    /// By input, by channel.
    inputs: Vec<Vec<QueueSender>>,
    downstream: QueueReceiver,
    snapshots: mpsc::UnboundedReceiver<TaskSnapshot>,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<std::result::Result<TaskOutcome, crate::TaskError>>,
    commands: mpsc::UnboundedSender<TaskCommand>,
}

/// A task whose first operator is a `Recorder` reading `channels[i]` channels on input i.
fn start(channels: &[usize]) -> Harness {
    let mut inputs = Vec::new();
    let mut gates = Vec::new();
    for &n in channels {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|c| {
                let (tx, rx) = queue(64, Arc::default());
                let channel = InputChannel::Local {
                    queue: rx,
                    name: format!("channel {c}"),
                };
                (tx, channel)
            })
            .unzip();
        inputs.push(senders);
        gates.push(InputGate::new(receivers));
    }
    let (out_tx, downstream) = queue(1024, Arc::default());
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (snapshots_tx, snapshots) = mpsc::unbounded_channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorder = ChainedOperator {
        id: "0-recorder".into(),
        name: "recorder".into(),
        operator: Box::new(Recorder(log.clone())),
    };
    let task = Task {
        input: TaskInput::Gates(InputGates::new(gates)),
        chain: Chain::new(vec![recorder]),
        outputs: vec![OutputWriter::new(Partitioner::Forward, vec![out_tx])],
        metrics: Arc::new(TaskMetrics::default()),
        canceler: Canceler::default(),
        checkpointing: Some(Checkpointing {
            commands,
            snapshots: snapshots_tx,
        }),
    };
    Harness {
        inputs,
        downstream,
        snapshots,
        log,
        task: tokio::spawn(task.run()),
        commands: commands_tx,
    }
}

impl Harness {
    async fn send(&self, input: usize, channel: usize, element: StreamElement) {
        self.inputs[input][channel].send(element).await.unwrap();
    }

    /// Waits until the log has `n` lines, and returns them.
    async fn log_of(&self, n: usize) -> Vec<String> {
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.len() >= n {
                return log;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Lets the task end: its final snapshot, once taken, is acknowledged as the JobMaster
    /// would.
    async fn finished(&mut self) -> TaskOutcome {
        while let Some(snapshot) = self.snapshots.recv().await {
            if snapshot.barrier.is_none() {
                break;
            }
        }
        let _ = self.commands.send(TaskCommand::Complete(FINAL_SNAPSHOT));
        (&mut self.task).await.unwrap().unwrap()
    }

    /// The events that reached the consumer, batches as their value.
    fn downstream(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        let receiver = &mut self.downstream;
        while let Some(Some(element)) =
            std::future::poll_fn(|cx| receiver.poll_recv(cx)).now_or_never()
        {
            seen.push(match element {
                StreamElement::Batch(b) => format!("batch {}", value(&b)),
                StreamElement::Barrier(b) => format!("barrier {}", b.id),
                StreamElement::Watermark(w) => format!("watermark {}", shown(w)),
                other => format!("{other:?}"),
            });
        }
        seen
    }
}

#[tokio::test]
async fn a_barrier_is_aligned_across_inputs_before_the_records_after_it() {
    let mut h = start(&[1, 1]);
    h.send(0, 0, batch(1)).await;
    h.send(0, 0, barrier(7)).await;
    // Behind the barrier on input 0: part of the next checkpoint.
    h.send(0, 0, batch(2)).await;
    h.send(1, 0, batch(10)).await;
    let log = h.log_of(2).await;
    assert_eq!(
        log,
        ["batch 0:1", "batch 1:10"],
        "input 0 is blocked after its barrier"
    );

    h.send(1, 0, barrier(7)).await;
    let log = h.log_of(4).await;
    assert_eq!(&log[2..], ["snapshot 7", "batch 0:2"]);
    let snapshot = h.snapshots.recv().await.unwrap();
    assert_eq!(snapshot.barrier.map(|b| b.id), Some(7));

    h.send(0, 0, StreamElement::End).await;
    h.send(1, 0, StreamElement::End).await;
    assert_eq!(h.finished().await, TaskOutcome::Finished);
    // One barrier downstream, between the records before it and those after.
    let downstream = h.downstream();
    let barrier_at = downstream.iter().position(|e| e == "barrier 7").unwrap();
    assert_eq!(
        downstream
            .iter()
            .filter(|e| e.starts_with("barrier"))
            .count(),
        1
    );
    assert!(downstream[..barrier_at].contains(&"batch 1".to_string()));
    assert!(downstream[..barrier_at].contains(&"batch 10".to_string()));
    assert!(downstream[barrier_at..].contains(&"batch 2".to_string()));
}

#[tokio::test]
async fn an_input_that_ended_does_not_hold_back_alignment() {
    let h = start(&[1, 2]);
    h.send(1, 0, StreamElement::End).await;
    h.send(0, 0, barrier(3)).await;
    h.send(1, 1, barrier(3)).await;
    h.log_of(1).await;
    let snapshot = h.log.lock().unwrap().iter().any(|l| l == "snapshot 3");
    assert!(snapshot, "{:?}", h.log.lock().unwrap());
}

#[tokio::test]
async fn event_time_is_the_least_of_the_inputs_and_an_idle_input_does_not_hold_it() {
    let mut h = start(&[1, 1]);
    h.send(0, 0, StreamElement::Watermark(100)).await;
    h.send(1, 0, StreamElement::Watermark(40)).await;
    let log = h.log_of(3).await;
    assert_eq!(
        log,
        [
            "input 0 watermark 100",
            "input 1 watermark 40",
            "watermark 40"
        ]
    );

    // Input 1 goes idle: input 0 alone moves event time.
    h.send(1, 0, StreamElement::Idle(true)).await;
    h.send(0, 0, StreamElement::Watermark(300)).await;
    let log = h.log_of(5).await;
    assert_eq!(&log[3..], ["input 0 watermark 300", "watermark 300"]);

    // Both active again (input 1 caught up): the least of the two.
    h.send(1, 0, StreamElement::Idle(false)).await;
    h.send(1, 0, StreamElement::Watermark(350)).await;
    h.log_of(6).await;
    h.send(0, 0, StreamElement::Watermark(500)).await;
    let log = h.log_of(8).await;
    assert_eq!(
        &log[5..],
        [
            "input 1 watermark 350",
            "input 0 watermark 500",
            "watermark 350"
        ]
    );

    h.send(1, 0, StreamElement::End).await;
    h.send(0, 0, StreamElement::End).await;
    assert_eq!(h.finished().await, TaskOutcome::Finished);
    let log = h.log.lock().unwrap().clone();
    assert_eq!(
        &log[8..],
        [
            "input 1 watermark MAX",
            "watermark 500",
            "end 1",
            "input 0 watermark MAX",
            "watermark MAX",
            "end 0",
            "finish",
            "snapshot 18446744073709551615",
        ]
    );
    let downstream = h.downstream();
    assert_eq!(downstream.last().map(String::as_str), Some("End"));
}
