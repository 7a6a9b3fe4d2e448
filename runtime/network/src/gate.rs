use std::task::{Context, Poll};

use spate_api::StreamElement;

use crate::error::{NetworkError, Result};
use crate::queue::QueueReceiver;
use crate::remote::RemoteChannel;

/// Where one input channel of a task reads from.
pub enum InputChannel {
    /// A subpartition of a producer on this worker: batches arrive as they were produced.
    Local {
        queue: QueueReceiver,
        name: String,
    },
    Remote(RemoteChannel),
}

/// All input channels of a task, read fairly. A channel leaves the gate after its `End`.
pub struct InputGate {
    channels: Vec<Option<InputChannel>>,
    /// Channels not read until `unblock_all`: they delivered a checkpoint barrier that the
    /// others have not yet, and what follows it belongs to the next checkpoint.
    blocked: Vec<bool>,
    open: usize,
    next: usize,
}

impl InputGate {
    pub fn new(channels: Vec<InputChannel>) -> Self {
        let open = channels.len();
        InputGate {
            blocked: vec![false; channels.len()],
            channels: channels.into_iter().map(Some).collect(),
            open,
            next: 0,
        }
    }

    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    pub fn block(&mut self, channel: usize) {
        self.blocked[channel] = true;
    }

    pub fn unblock_all(&mut self) {
        self.blocked.fill(false);
    }

    /// Channels that have not delivered their `End` yet.
    pub fn is_open(&self, channel: usize) -> bool {
        self.channels[channel].is_some()
    }

    /// Every channel has ended.
    pub fn is_finished(&self) -> bool {
        self.open == 0
    }

    /// The next element of an unblocked channel and the channel's index; `None` once every
    /// channel has ended. Pends forever while every open channel is blocked.
    pub async fn next(&mut self) -> Option<(usize, Result<StreamElement>)> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Result<StreamElement>)>> {
        if self.open == 0 {
            return Poll::Ready(None);
        }
        let n = self.channels.len();
        for offset in 0..n {
            let index = (self.next + offset) % n;
            if self.blocked[index] {
                continue;
            }
            let Some(channel) = self.channels[index].as_mut() else {
                continue;
            };
            let polled = match channel {
                InputChannel::Local { queue, name } => queue
                    .poll_recv(cx)
                    .map(|element| element.ok_or_else(|| NetworkError::ProducerGone(name.clone()))),
                InputChannel::Remote(remote) => remote.poll_recv(cx).map(|element| {
                    element.unwrap_or_else(|| {
                        Err(NetworkError::Remote("channel closed before its end".into()))
                    })
                }),
            };
            if let Poll::Ready(result) = polled {
                self.next = (index + 1) % n;
                if matches!(result, Ok(StreamElement::End) | Err(_)) {
                    self.channels[index] = None;
                    self.open -= 1;
                }
                return Poll::Ready(Some((index, result)));
            }
        }
        Poll::Pending
    }
}

/// A channel of a multi-input task: which logical input, and which channel of that input's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelRef {
    pub input: usize,
    pub channel: usize,
}

/// One gate per logical input of a task (Flink's multiple-input processor), read fairly: an
/// input with data never starves another. An input whose channels have all ended is done; the
/// gates end when every input has.
pub struct InputGates {
    gates: Vec<InputGate>,
    next: usize,
}

impl InputGates {
    pub fn new(gates: Vec<InputGate>) -> Self {
        InputGates { gates, next: 0 }
    }

    pub fn num_inputs(&self) -> usize {
        self.gates.len()
    }

    pub fn num_channels(&self, input: usize) -> usize {
        self.gates[input].num_channels()
    }

    pub fn block(&mut self, at: ChannelRef) {
        self.gates[at.input].block(at.channel);
    }

    pub fn unblock_all(&mut self) {
        self.gates.iter_mut().for_each(InputGate::unblock_all);
    }

    pub fn is_open(&self, at: ChannelRef) -> bool {
        self.gates[at.input].is_open(at.channel)
    }

    /// Every channel of `input` has ended.
    pub fn is_finished(&self, input: usize) -> bool {
        self.gates[input].is_finished()
    }

    /// The next element of any input and where it came from; `None` once every input ended.
    pub async fn next(&mut self) -> Option<(ChannelRef, Result<StreamElement>)> {
        std::future::poll_fn(|cx| {
            let n = self.gates.len();
            let mut open = false;
            for offset in 0..n {
                let input = (self.next + offset) % n;
                let gate = &mut self.gates[input];
                if gate.is_finished() {
                    continue;
                }
                open = true;
                if let Poll::Ready(Some((channel, result))) = gate.poll_next(cx) {
                    self.next = (input + 1) % n;
                    return Poll::Ready(Some((ChannelRef { input, channel }, result)));
                }
            }
            if open {
                Poll::Pending
            } else {
                Poll::Ready(None)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    use super::*;
    use crate::queue::{QueueSender, queue};

    fn local(name: &str) -> (QueueSender, InputChannel) {
        let (tx, rx) = queue(16, Arc::default());
        let channel = InputChannel::Local {
            queue: rx,
            name: name.into(),
        };
        (tx, channel)
    }

    fn batch(v: i64) -> StreamElement {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let column = Arc::new(Int64Array::from(vec![v]));
        StreamElement::Batch(RecordBatch::try_new(schema, vec![column]).unwrap())
    }

    fn value(element: &StreamElement) -> i64 {
        let StreamElement::Batch(b) = element else {
            panic!("not a batch: {element:?}")
        };
        b.column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    }

    #[tokio::test]
    async fn inputs_are_read_in_turn_and_a_blocked_one_does_not_stop_the_other() {
        let (a, channel_a) = local("a");
        let (b, channel_b) = local("b");
        let mut gates = InputGates::new(vec![
            InputGate::new(vec![channel_a]),
            InputGate::new(vec![channel_b]),
        ]);
        for v in 0..3 {
            a.send(batch(v)).await.unwrap();
            b.send(batch(10 + v)).await.unwrap();
        }
        let mut order = Vec::new();
        for _ in 0..4 {
            let (at, element) = gates.next().await.unwrap();
            order.push((at.input, value(&element.unwrap())));
        }
        assert_eq!(order, [(0, 0), (1, 10), (0, 1), (1, 11)]);

        gates.block(ChannelRef {
            input: 0,
            channel: 0,
        });
        let (at, element) = gates.next().await.unwrap();
        assert_eq!((at.input, value(&element.unwrap())), (1, 12));
        gates.unblock_all();
        let (at, element) = gates.next().await.unwrap();
        assert_eq!((at.input, value(&element.unwrap())), (0, 2));
    }

    #[tokio::test]
    async fn the_gates_end_once_every_input_ended() {
        let (a, channel_a) = local("a");
        let (b, channel_b) = local("b");
        let mut gates = InputGates::new(vec![
            InputGate::new(vec![channel_a]),
            InputGate::new(vec![channel_b]),
        ]);
        a.send(StreamElement::End).await.unwrap();
        let (at, element) = gates.next().await.unwrap();
        assert!(matches!(element, Ok(StreamElement::End)));
        assert_eq!(
            at,
            ChannelRef {
                input: 0,
                channel: 0
            }
        );
        assert!(gates.is_finished(0) && !gates.is_finished(1));
        assert!(!gates.is_open(at));

        b.send(batch(7)).await.unwrap();
        b.send(StreamElement::End).await.unwrap();
        assert_eq!(value(&gates.next().await.unwrap().1.unwrap()), 7);
        assert!(matches!(
            gates.next().await.unwrap().1,
            Ok(StreamElement::End)
        ));
        assert!(gates.next().await.is_none());
    }
}
