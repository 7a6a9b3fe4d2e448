use std::sync::Arc;
use std::task::{Context, Poll};

use spate_api::StreamElement;
use tokio::sync::mpsc;

use crate::gauge::BufferGauge;

/// A bounded queue of stream elements: a subpartition. Its capacity is what makes a slow consumer
/// push back on its producer.
pub fn queue(capacity: usize, gauge: Arc<BufferGauge>) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    gauge.open_queue(rx.max_capacity());
    (
        QueueSender {
            tx,
            gauge: gauge.clone(),
        },
        QueueReceiver { rx, gauge },
    )
}

#[derive(Debug, Clone)]
pub struct QueueSender {
    tx: mpsc::Sender<StreamElement>,
    gauge: Arc<BufferGauge>,
}

impl QueueSender {
    /// Waits for room. Fails only when the consumer side is gone.
    pub async fn send(&self, element: StreamElement) -> Result<(), StreamElement> {
        // Counted once its slot is reserved, not while the producer still waits for one.
        let Ok(permit) = self.tx.reserve().await else {
            return Err(element);
        };
        if element.is_batch() {
            self.gauge.add();
        }
        permit.send(element);
        Ok(())
    }
}

#[derive(Debug)]
pub struct QueueReceiver {
    rx: mpsc::Receiver<StreamElement>,
    gauge: Arc<BufferGauge>,
}

impl QueueReceiver {
    pub async fn recv(&mut self) -> Option<StreamElement> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<StreamElement>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(element)) = &polled
            && element.is_batch()
        {
            self.gauge.remove();
        }
        polled
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        // Batches still queued leave the worker's buffers with the receiver.
        self.rx.close();
        self.gauge.close_queue(self.rx.max_capacity());
        while let Ok(element) = self.rx.try_recv() {
            if element.is_batch() {
                self.gauge.remove();
            }
        }
    }
}
