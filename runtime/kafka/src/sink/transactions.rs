//! Exactly-once writing with Kafka transactions (two-phase commit, as Flink's Kafka sink does
//! it). Rows between two barriers go into one transaction; at the barrier every row of it is
//! sent and acknowledged and the transaction (its id, producer id and epoch) goes into the
//! checkpoint: pre-committed. When the checkpoint completes the transaction is committed. A
//! restore commits the transactions of the checkpoint it restores (`resume`), then aborts what
//! the failed attempt left open after it, so `read_committed` readers see every row once.

use std::collections::BTreeMap;
use std::time::Duration;

use krafka::Kafka;
use krafka::admin::ListTransactionsOptions;
use krafka::producer::TransactionalProducer;
use spate_api::{OperatorError, Result, StateEntry};
use tracing::{debug, info, warn};

use super::prepared::{Prepared, parse_transactional_id, transactional_id};
use super::resume::{self, Resumed};
use super::sent::Sent;
use crate::record::Message;

/// A transactional id and its producer.
struct Slot {
    slot: u32,
    producer: TransactionalProducer,
}

impl Slot {
    fn prepared(&self, subtask: u32) -> Prepared {
        Prepared {
            transactional_id: self.producer.transactional_id().to_string(),
            subtask,
            producer_id: self.producer.producer_id(),
            producer_epoch: self.producer.producer_epoch(),
            transaction_v2: self.producer.transaction_version().is_v2(),
        }
    }
}

pub struct Transactions {
    kafka: Kafka,
    bootstrap: String,
    topic: String,
    prefix: String,
    timeout: Duration,
    subtask: u32,
    /// The transaction rows go into now, begun with the first row after a barrier.
    open: Option<(Slot, Sent)>,
    /// Pre-committed, by the checkpoint whose barrier closed them.
    pending: BTreeMap<u64, (Slot, Prepared)>,
    /// Producers whose last transaction is committed, ready for the next.
    idle: Vec<Slot>,
}

impl Transactions {
    pub fn new(
        kafka: Kafka,
        bootstrap: String,
        topic: String,
        prefix: String,
        timeout: Duration,
        subtask: u32,
    ) -> Self {
        Transactions {
            kafka,
            bootstrap,
            topic,
            prefix,
            timeout,
            subtask,
            open: None,
            pending: BTreeMap::new(),
            idle: Vec::new(),
        }
    }

    /// Commits the restored checkpoint's transactions this subtask stands in for, then aborts
    /// the transactions of this subtask's ids still open.
    ///
    /// After a change of parallelism, subtask `s` of the old run is taken over by subtask
    /// `s % parallelism`; without one, each subtask takes over its own ids only, so subtasks
    /// that were not restarted (region failover) keep theirs. Committing comes first: starting
    /// a producer on an id aborts that id's open transaction.
    pub async fn restore(&mut self, restored: &[StateEntry], parallelism: u32) -> Result<()> {
        let owned = |subtask: u32| subtask % parallelism == self.subtask;
        for entry in restored {
            let Some(prepared) = Prepared::from_entry(entry) else {
                continue;
            };
            let prepared = prepared?;
            if !owned(prepared.subtask) {
                continue;
            }
            let id = &prepared.transactional_id;
            match resume::commit(&self.bootstrap, &prepared).await {
                Ok(Resumed::Committed) => {
                    info!(transactional_id = %id, "restored transaction committed")
                }
                Ok(Resumed::NoLongerOpen(code)) => debug!(
                    transactional_id = %id, ?code,
                    "restored transaction no longer open (committed before, unless \
                     transaction.timeout.ms aborted it)"
                ),
                Err(e) => {
                    return Err(OperatorError::invalid(format!(
                        "committing Kafka transaction '{id}' of the restored checkpoint: {e}"
                    )));
                }
            }
        }
        for id in self.open_transactions(owned).await? {
            // Starting a producer on the id aborts its open transaction.
            let producer = self.producer(&id).await?;
            info!(transactional_id = %id, "transaction left open by an earlier attempt aborted");
            match parse_transactional_id(&self.prefix, &id) {
                Some((subtask, slot)) if subtask == self.subtask => {
                    self.recycle(Slot { slot, producer }).await;
                }
                _ => close(producer).await,
            }
        }
        Ok(())
    }

    /// Transactional ids of this sink's prefix with a transaction open, whose subtask `owned`.
    async fn open_transactions(&self, owned: impl Fn(u32) -> bool) -> Result<Vec<String>> {
        let listed = self
            .kafka
            .admin()
            .list_transactions(ListTransactionsOptions::default().states(vec!["Ongoing".into()]))
            .await
            .map_err(|e| self.error("listing open transactions", e))?;
        let mut ids = Vec::new();
        for (broker, listing) in listed {
            let listing = listing.map_err(|e| {
                self.error(&format!("listing open transactions of broker {broker}"), e)
            })?;
            ids.extend(listing.into_iter().filter_map(|t| {
                parse_transactional_id(&self.prefix, &t.transactional_id)
                    .filter(|&(subtask, _)| owned(subtask))
                    .map(|_| t.transactional_id)
            }));
        }
        ids.sort();
        Ok(ids)
    }

    /// Queues `messages` into the open transaction, beginning one if there is none.
    pub async fn write(&mut self, messages: Vec<Message>) -> Result<()> {
        let (slot, mut sent) = match self.open.take() {
            Some(open) => open,
            None => {
                let slot = self.next_slot().await?;
                slot.producer
                    .begin()
                    .map_err(|e| self.error("beginning a transaction", e))?;
                (slot, Sent::default())
            }
        };
        let mut written = Ok(());
        for message in messages {
            let record = message.record(&self.topic);
            written = match slot.producer.enqueue(record).await {
                Ok(handle) => sent.push(handle, &self.topic).await,
                Err(e) => Err(self.error("writing a row", e)),
            };
            if written.is_err() {
                break;
            }
        }
        self.open = Some((slot, sent));
        written
    }

    /// The barrier of `checkpoint_id`: every row of the open transaction is acknowledged, and
    /// the transaction waits for the checkpoint to complete.
    pub async fn pre_commit(&mut self, checkpoint_id: u64) -> Result<()> {
        if let Some((slot, mut sent)) = self.open.take() {
            slot.producer
                .flush()
                .await
                .map_err(|e| self.error("flushing the transaction", e))?;
            sent.acknowledged(&self.topic).await?;
            let prepared = slot.prepared(self.subtask);
            debug!(transactional_id = %prepared.transactional_id, checkpoint_id, "transaction pre-committed");
            self.pending.insert(checkpoint_id, (slot, prepared));
        }
        Ok(())
    }

    /// What the checkpoint keeps: every pre-committed transaction not yet committed.
    pub fn entries(&self) -> Vec<StateEntry> {
        self.pending.values().map(|(_, p)| p.entry()).collect()
    }

    /// Checkpoint `checkpoint_id` completed: its transaction and every earlier one commit.
    pub async fn commit_up_to(&mut self, checkpoint_id: u64) -> Result<()> {
        let later = match checkpoint_id.checked_add(1) {
            Some(next) => self.pending.split_off(&next),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.pending, later);
        for (id, (slot, prepared)) in due {
            slot.producer.commit().await.map_err(|e| {
                OperatorError::invalid(format!(
                    "committing Kafka transaction '{}' of checkpoint {id}: {e}",
                    prepared.transactional_id
                ))
            })?;
            debug!(transactional_id = %prepared.transactional_id, checkpoint_id = id, "transaction committed");
            self.recycle(slot).await;
        }
        Ok(())
    }

    /// Commits the open transaction at once: the end of input of a job without checkpoints.
    pub async fn commit_open(&mut self) -> Result<()> {
        self.pre_commit(u64::MAX).await?;
        self.commit_up_to(u64::MAX).await
    }

    /// A producer for the next transaction: an idle one, or one on the lowest free slot.
    async fn next_slot(&mut self) -> Result<Slot> {
        if let Some(slot) = self.idle.pop() {
            return Ok(slot);
        }
        let used: Vec<u32> = self
            .pending
            .values()
            .map(|(s, _)| s.slot)
            .chain(self.idle.iter().map(|s| s.slot))
            .collect();
        let slot = (0..).find(|s| !used.contains(s)).unwrap_or_default();
        let id = transactional_id(&self.prefix, self.subtask, slot);
        let producer = self.producer(&id).await?;
        Ok(Slot { slot, producer })
    }

    /// A producer started on `id`, which aborts a transaction the id left open.
    async fn producer(&self, id: &str) -> Result<TransactionalProducer> {
        self.kafka
            .producer()
            .transaction_timeout(self.timeout)
            .metrics_push(false)
            .build_transactional(id)
            .await
            .map_err(|e| self.error(&format!("starting transactional producer '{id}'"), e))
    }

    /// Keeps a producer whose transaction ended for the next one, when that transaction will
    /// have its own epoch: under transaction version 2 every commit bumps the epoch. Under
    /// version 1 the epoch stays, so a later transaction of the same producer could be
    /// committed by a restore of this one's checkpoint; the next transaction on the slot gets
    /// a new producer, whose start bumps the epoch.
    async fn recycle(&mut self, slot: Slot) {
        if slot.producer.transaction_version().is_v2() {
            self.idle.push(slot);
        } else {
            close(slot.producer).await;
        }
    }

    fn error(&self, doing: &str, error: krafka::error::KrafkaError) -> OperatorError {
        OperatorError::invalid(format!(
            "Kafka sink of topic '{}': {doing}: {error}",
            self.topic
        ))
    }
}

async fn close(producer: TransactionalProducer) {
    if let Err(error) = producer.close().await {
        warn!(transactional_id = producer.transactional_id(), %error, "closing a producer failed");
    }
}
