//! What the gRPC handlers hand to the driver instead of parking it in the shared state:
//! checkpoint acknowledgements and declines, savepoint requests and the cancel request. A
//! handler sends and returns without the job's lock; the driver files what came in whenever
//! it looks, so nothing waits for the phase the job is in (a savepoint asked for during a
//! restart is served once the job runs again).

use std::time::Duration;

use spate_proto::v1::{AcknowledgeCheckpointRequest, DeclineCheckpointRequest};
use tokio::sync::mpsc;

use crate::checkpoint::SavepointRequest;
use crate::state::Shared;

/// How long the driver waits for news before it looks at the job again (heartbeats expire,
/// checkpoints fall due).
const POLL: Duration = Duration::from_millis(100);

pub enum Inbound {
    Acknowledge(AcknowledgeCheckpointRequest),
    Decline(DeclineCheckpointRequest),
    Savepoint(SavepointRequest),
    Cancel { reason: String },
}

/// The handlers' end.
pub type Requests = mpsc::UnboundedSender<Inbound>;

/// The driver's end, with what came in and was not taken yet.
pub struct Inbox {
    receiver: mpsc::UnboundedReceiver<Inbound>,
    acks: Vec<AcknowledgeCheckpointRequest>,
    declines: Vec<DeclineCheckpointRequest>,
    savepoints: Vec<SavepointRequest>,
    cancel: Option<String>,
}

/// Checkpoint acknowledgements, declines and savepoint requests, for the coordinator.
pub struct CheckpointMessages {
    pub acks: Vec<AcknowledgeCheckpointRequest>,
    pub declines: Vec<DeclineCheckpointRequest>,
    pub savepoints: Vec<SavepointRequest>,
}

impl Inbox {
    pub fn new() -> (Requests, Inbox) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let inbox = Inbox {
            receiver,
            acks: Vec::new(),
            declines: Vec::new(),
            savepoints: Vec::new(),
            cancel: None,
        };
        (sender, inbox)
    }

    fn file(&mut self, request: Inbound) {
        match request {
            Inbound::Acknowledge(ack) => self.acks.push(ack),
            Inbound::Decline(decline) => self.declines.push(decline),
            Inbound::Savepoint(savepoint) => self.savepoints.push(savepoint),
            // The first reason given is the one the status shows.
            Inbound::Cancel { reason } => {
                self.cancel.get_or_insert(reason);
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(request) = self.receiver.try_recv() {
            self.file(request);
        }
    }

    /// Why the job is to be canceled, once someone asked.
    pub fn cancel_requested(&mut self) -> Option<String> {
        self.drain();
        self.cancel.clone()
    }

    /// What came in for checkpoints since the last call.
    pub fn checkpoint_messages(&mut self) -> CheckpointMessages {
        self.drain();
        CheckpointMessages {
            acks: std::mem::take(&mut self.acks),
            declines: std::mem::take(&mut self.declines),
            savepoints: std::mem::take(&mut self.savepoints),
        }
    }

    /// Waits until a request comes in, a handler changed the shared state (a registration, a
    /// task state), or a short while passed.
    pub async fn wait(&mut self, shared: &Shared) {
        tokio::select! {
            Some(request) = self.receiver.recv() => self.file(request),
            _ = shared.changed.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
