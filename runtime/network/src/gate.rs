use std::task::Poll;

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

    /// The next element of an unblocked channel and the channel's index; `None` once every
    /// channel has ended. Pends forever while every open channel is blocked.
    pub async fn next(&mut self) -> Option<(usize, Result<StreamElement>)> {
        if self.open == 0 {
            return None;
        }
        let polled = std::future::poll_fn(|cx| {
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
                    InputChannel::Local { queue, name } => queue.poll_recv(cx).map(|element| {
                        Some(element.ok_or_else(|| NetworkError::ProducerGone(name.clone())))
                    }),
                    InputChannel::Remote(remote) => remote.poll_recv(cx).map(|element| {
                        Some(element.unwrap_or_else(|| {
                            Err(NetworkError::Remote("channel closed before its end".into()))
                        }))
                    }),
                };
                if let Poll::Ready(Some(result)) = polled {
                    self.next = (index + 1) % n;
                    return Poll::Ready((index, result));
                }
            }
            Poll::Pending
        })
        .await;
        let (index, result) = polled;
        if matches!(result, Ok(StreamElement::End) | Err(_)) {
            self.channels[index] = None;
            self.open -= 1;
        }
        Some((index, result))
    }
}
