//! The job's owner: the one task that holds the job's record. The gRPC handlers send it events
//! (`events.rs`) and read what it last published; nothing of the job is behind a lock. The
//! driver runs on the owner's task and applies what came in whenever it looks at the record,
//! and while it waits for anything (an RPC, a storage write, a delay) through `serve_until`,
//! so registrations, heartbeats and task states are taken in as they arrive.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_proto::v1::{AcknowledgeCheckpointRequest, DeclineCheckpointRequest, JobStatus};
use tokio::sync::{mpsc, watch};

use crate::checkpoint::{Round, SavepointRequest};
use crate::clients::WorkerClients;
use crate::events::{Event, Events};
use crate::record::JobRecord;

/// How long the owner waits for news before the driver looks at the job again (heartbeats
/// expire, checkpoints fall due).
const POLL: Duration = Duration::from_millis(100);

/// What the handlers read without asking the owner: the status, and what a heartbeat's answer
/// needs. Replaced whole after each change, never changed in place.
pub struct Published {
    status: JobStatus,
    started: Option<Instant>,
    known_workers: BTreeSet<String>,
    pub shutdown: bool,
}

impl Published {
    pub fn status(&self) -> JobStatus {
        JobStatus {
            running_ms: self.started.map_or(0, |s| s.elapsed().as_millis() as u64),
            ..self.status.clone()
        }
    }

    pub fn knows(&self, worker_id: &str) -> bool {
        self.known_workers.contains(worker_id)
    }

    fn of(record: &JobRecord) -> Self {
        Published {
            status: record.status(),
            started: record.started,
            known_workers: record.workers.iter().map(|w| w.id.clone()).collect(),
            shutdown: record.shutdown,
        }
    }
}

/// The handlers' view: events to send, the latest published state to read.
#[derive(Clone)]
pub struct OwnerHandle {
    pub events: Events,
    pub published: watch::Receiver<Arc<Published>>,
}

/// Checkpoint acknowledgements, declines and savepoint requests, for the coordinator.
pub struct CheckpointMessages {
    pub acks: Vec<AcknowledgeCheckpointRequest>,
    pub declines: Vec<DeclineCheckpointRequest>,
    pub savepoints: Vec<SavepointRequest>,
}

pub struct Owner {
    record: JobRecord,
    events: mpsc::UnboundedReceiver<Event>,
    published: watch::Sender<Arc<Published>>,
    /// The record changed since it was last published.
    changed: bool,
    /// Requests filed until the driver takes them.
    acks: Vec<AcknowledgeCheckpointRequest>,
    declines: Vec<DeclineCheckpointRequest>,
    savepoints: Vec<SavepointRequest>,
    cancel: Option<String>,
    /// The job is over: requests that need a running job are turned away at once.
    over: bool,
}

impl Owner {
    pub fn new(record: JobRecord) -> (Owner, OwnerHandle) {
        let (sender, events) = mpsc::unbounded_channel();
        let (published, reader) = watch::channel(Arc::new(Published::of(&record)));
        let owner = Owner {
            record,
            events,
            published,
            changed: false,
            acks: Vec::new(),
            declines: Vec::new(),
            savepoints: Vec::new(),
            cancel: None,
            over: false,
        };
        let handle = OwnerHandle {
            events: sender,
            published: reader,
        };
        (owner, handle)
    }

    /// The record, with every event that came in applied, to change.
    pub fn record(&mut self) -> &mut JobRecord {
        self.drain();
        self.changed = true;
        &mut self.record
    }

    /// The record, with every event that came in applied, to read.
    pub fn view(&mut self) -> &JobRecord {
        self.drain();
        &self.record
    }

    /// The clients of the workers registered by now.
    pub fn clients(&mut self) -> WorkerClients {
        WorkerClients::of(self.view())
    }

    /// What a checkpoint round needs of the record: the current attempts and their clients.
    pub fn checkpoint_round(&mut self) -> Round {
        Round {
            tasks: self.view().checkpoint_tasks(),
            clients: self.clients(),
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

    /// The job is over: savepoint requests still waiting, or asked for from now on, are
    /// answered that it ended (their reply is dropped); cancels and acknowledgements change
    /// nothing any more.
    pub fn job_over(&mut self) {
        self.drain();
        self.over = true;
        self.acks.clear();
        self.declines.clear();
        self.savepoints.clear();
    }

    /// Waits until an event comes in or a short while passed.
    pub async fn wait(&mut self) {
        self.publish();
        tokio::select! {
            Some(event) = self.events.recv() => self.apply(event),
            _ = tokio::time::sleep(POLL) => {}
        }
        self.publish();
    }

    /// Runs `work` to its end, taking events in meanwhile. `work` must not need the record:
    /// what it needs of it is copied out first.
    pub async fn serve_until<F: Future>(&mut self, work: F) -> F::Output {
        self.publish();
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                Some(event) = self.events.recv() => {
                    self.apply(event);
                    self.publish();
                }
            }
        }
    }

    /// Makes the record's current state what the handlers read.
    pub fn publish(&mut self) {
        if std::mem::take(&mut self.changed) {
            self.published
                .send_replace(Arc::new(Published::of(&self.record)));
        }
    }

    fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.apply(event);
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::WorkerRegistered { request, reply } => {
                let registered = self.record.register(request);
                // Published before the answer, so the worker's first heartbeat finds it known.
                self.changed = true;
                self.publish();
                let _ = reply.send(registered);
            }
            Event::Heartbeat {
                worker_id,
                worker,
                tasks,
            } => {
                self.record.heartbeat(&worker_id, worker, tasks);
                self.changed = true;
            }
            Event::TaskStateChanged {
                worker_id,
                task,
                state,
                failure,
                metrics,
            } => {
                self.record
                    .task_state(&worker_id, &task, state, failure, metrics);
                self.changed = true;
            }
            _ if self.over => {}
            Event::Acknowledge(ack) => self.acks.push(ack),
            Event::Decline(decline) => self.declines.push(decline),
            Event::Savepoint(savepoint) => self.savepoints.push(savepoint),
            // The first reason given is the one the status shows.
            Event::Cancel { reason } => {
                self.cancel.get_or_insert(reason);
            }
        }
    }
}
