//! The checkpoint coordinator: triggers checkpoints at the sources, collects the tasks'
//! acknowledgements, completes a checkpoint by writing its metadata last, tells the tasks, and
//! counts what failed. Savepoints and the final checkpoint at the end of input go the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use backon::{ExponentialBuilder, Retryable};
use futures::future::join_all;
use spate_checkpoint::{
    CheckpointError, CheckpointStorage, CompletedCheckpointStore, CompletedSnapshot,
    METADATA_FORMAT_VERSION, SnapshotLocation, StorageOptions,
};
use spate_graph::{JobGraph, SubtaskRef};
use spate_proto::v1::{
    AcknowledgeCheckpointRequest, CheckpointMetadata, CheckpointStats, DeclineCheckpointRequest,
    NotifyCheckpointCompleteRequest, OperatorParallelism, SnapshotKind, TaskId,
    TriggerCheckpointRequest,
};
use tokio::sync::oneshot;
use tracing::{Instrument, info, info_span, instrument, warn};

use super::settings::CheckpointSettings;
use crate::clients::WorkerClients;
use crate::failover::FailureCause;

/// The id under which tasks commit the final snapshot (spate-task's `FINAL_SNAPSHOT`).
pub(super) const FINAL_SNAPSHOT: u64 = u64::MAX;
/// How long a starting JobMaster waits for unreachable checkpoint storage before it gives up.
const STORAGE_WAIT: Duration = Duration::from_secs(600);
/// A final checkpoint whose metadata could not be written is written again this much later,
/// not at every round: each try counts as a failed checkpoint.
const FINAL_RETRY: Duration = Duration::from_secs(1);
/// The final checkpoint's notice is sent again this often to the tasks that have not finished:
/// a notice lost on the way (a worker too busy to answer within the control deadline) is not
/// made up by a later checkpoint, as a periodic one's is, and the tasks would wait forever.
pub(super) const FINAL_NOTICE_AGAIN: Duration = Duration::from_secs(2);

pub type SavepointReply = oneshot::Sender<Result<(u64, String), String>>;

/// A savepoint someone asked for; with `stop`, the job ends once it completes and nothing after
/// it is committed (stop-with-savepoint).
pub struct SavepointRequest {
    pub stop: bool,
    pub reply: SavepointReply,
}

/// A deployed task (its current attempt), as the coordinator needs it.
#[derive(Debug, Clone)]
pub struct TaskRef {
    pub id: TaskId,
    pub worker_id: String,
    pub is_source: bool,
    /// The task has finished (after the final checkpoint's notice reached it).
    pub finished: bool,
}

/// The current attempt of every subtask, by (vertex, subtask).
pub type CheckpointTasks = BTreeMap<(u32, u32), TaskRef>;

/// What a round of the coordinator works with, copied from the job's record when the round
/// starts: the current attempts (the record is their one keeper) and the workers' clients.
pub struct Round {
    pub tasks: CheckpointTasks,
    pub clients: WorkerClients,
}

struct Pending {
    kind: SnapshotKind,
    savepoint: Option<SnapshotLocation>,
    trigger_ms: i64,
    started: Instant,
    acks: HashMap<(u32, u32), AcknowledgeCheckpointRequest>,
    reply: Option<SavepointReply>,
    stop: bool,
}

pub struct Coordinator {
    settings: CheckpointSettings,
    storage: CheckpointStorage,
    store: CompletedCheckpointStore,
    job: String,
    job_name: String,
    max_parallelism: u32,
    operators: Vec<OperatorParallelism>,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    /// Final snapshots of tasks whose input ended, by (vertex, subtask). Kept once the final
    /// checkpoint is written: a task restarted after it (its worker died before the completion
    /// notice reached it) ends its input again, and the next final checkpoint holds its new
    /// snapshot beside those of the tasks that finished meanwhile and send none again.
    finals: HashMap<(u32, u32), AcknowledgeCheckpointRequest>,
    /// The final checkpoint of every task's current attempt is written.
    final_written: bool,
    /// Writing it failed: not before then again.
    final_retry_at: Option<Instant>,
    /// When the final checkpoint's notice was last sent.
    final_noticed: Option<Instant>,
    last_end: Instant,
    /// The first checkpoint of an attempt waits one interval, like the ones after it.
    last_trigger: Option<Instant>,
    consecutive_failures: u32,
    waiting_savepoints: Vec<SavepointRequest>,
    /// A stop-with-savepoint is under way: no other checkpoint starts.
    stopping: bool,
    /// Where the stop-with-savepoint went, once it completed: the job is to end.
    pub stopped: Option<String>,
    pub stats: CheckpointStats,
    /// A worker did not take a checkpoint call: it may be gone, which nothing else may notice
    /// soon when no exchange connects it to the others (forward-only pipelines).
    pub worker_unreachable: bool,
}

impl Coordinator {
    /// Opens the storage and recovers the completed checkpoints already in the job's directory.
    pub async fn new(
        settings: CheckpointSettings,
        job: &str,
        graph: &JobGraph,
    ) -> anyhow::Result<Self> {
        let options = StorageOptions::from_map(&settings.storage_options)?;
        let storage = CheckpointStorage::open(&settings.storage_url, &options)
            .await
            .context("opening checkpoint storage")?;
        // A JobMaster that starts (or replaces a dead one) while the storage is unreachable
        // waits for it, rather than exiting into a crash loop; a lasting failure still ends it.
        let store = (|| CompletedCheckpointStore::recover(storage.clone(), job, settings.retained))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(500))
                    .with_max_delay(Duration::from_secs(15))
                    .without_max_times()
                    .with_total_delay(Some(STORAGE_WAIT)),
            )
            .when(CheckpointError::is_transient)
            .notify(|error, after| {
                warn!(%error, ?after, "checkpoint storage unreachable; reading it again soon");
            })
            .await
            .context("reading completed checkpoints")?;
        let next_id = store.latest().map_or(1, |c| c.location.checkpoint_id() + 1);
        let operators = graph
            .vertices
            .iter()
            .flat_map(|v| {
                v.nodes.iter().map(|&n| OperatorParallelism {
                    operator_id: graph.node(n).operator_id(),
                    parallelism: v.parallelism,
                })
            })
            .collect();
        Ok(Coordinator {
            settings,
            storage,
            store,
            job: job.to_string(),
            job_name: job.to_string(),
            max_parallelism: graph.max_parallelism,
            operators,
            next_id,
            pending: BTreeMap::new(),
            finals: HashMap::new(),
            final_written: false,
            final_retry_at: None,
            final_noticed: None,
            last_end: Instant::now(),
            last_trigger: None,
            consecutive_failures: 0,
            waiting_savepoints: Vec::new(),
            stopping: false,
            stopped: None,
            stats: CheckpointStats::default(),
            worker_unreachable: false,
        })
    }

    pub fn storage(&self) -> &CheckpointStorage {
        &self.storage
    }

    pub fn settings(&self) -> &CheckpointSettings {
        &self.settings
    }

    /// The newest completed checkpoint, to restart from.
    pub fn latest(&self) -> Option<CompletedSnapshot> {
        self.store.latest().cloned()
    }

    /// New attempts of `subtasks` were deployed, restored from checkpoint `restored_from` (0:
    /// none): whatever was pending misses their acknowledgements and can never complete.
    pub async fn deployed(&mut self, subtasks: &BTreeSet<SubtaskRef>, restored_from: u64) {
        let stale: Vec<u64> = self.pending.keys().copied().collect();
        for id in stale {
            self.abort(id, "tasks restarted").await;
        }
        for key in subtasks {
            self.finals.remove(key);
            self.final_written = false;
        }
        self.final_retry_at = None;
        self.final_noticed = None;
        self.last_end = Instant::now();
        self.last_trigger = Some(Instant::now());
        // The failures that made the job restart are behind it: a new attempt gets the whole
        // tolerance again. Carried over, they would fail each new attempt at its first round,
        // before it could trigger a checkpoint, until the restart strategy gave up, even after
        // the storage had long come back.
        self.consecutive_failures = 0;
        self.stats.restored_from = restored_from;
        // Ids keep increasing across attempts, so a late barrier of the old attempt is stale.
        self.next_id = self.next_id.max(restored_from + 1);
    }

    /// A new JobMaster took over the round's tasks, running since before it started; the
    /// workers' tasks were asked for checkpoints up to `last_seen`. The latest completed checkpoint is
    /// announced again: the old JobMaster may have died before it told the tasks. Tasks that
    /// wait for a final checkpoint send their final snapshots again once they registered here
    /// (the old JobMaster may have died with them), and the final checkpoint is written anew.
    pub async fn adopted(&mut self, round: &Round, last_seen: u64) {
        self.next_id = self.next_id.max(last_seen + 1);
        self.last_end = Instant::now();
        self.last_trigger = Some(Instant::now());
        if let Some(latest) = self.store.latest().map(|c| c.location.checkpoint_id()) {
            self.notify_complete(round, latest).await;
        }
    }

    pub fn request_savepoint(&mut self, request: SavepointRequest) {
        self.waiting_savepoints.push(request);
    }

    /// One round of the coordinator: time-outs, completions, and a trigger when one is due.
    /// Returns the cause to fail the job with when checkpoints keep failing.
    pub async fn tick(
        &mut self,
        round: &Round,
        acks: Vec<AcknowledgeCheckpointRequest>,
        declines: Vec<DeclineCheckpointRequest>,
        all_running: bool,
    ) -> Option<FailureCause> {
        for ack in acks {
            self.acknowledge(&round.tasks, ack);
        }
        self.abort_unreachable().await;
        for decline in declines {
            let reason = format!(
                "declined by task {}/{}: {}",
                decline.task.as_ref().map_or(0, |t| t.vertex),
                decline.task.as_ref().map_or(0, |t| t.subtask),
                decline.reason
            );
            if self.pending.contains_key(&decline.checkpoint_id) {
                self.fail_checkpoint(decline.checkpoint_id, &reason).await;
            }
        }
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.started.elapsed() > self.settings.timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            let timeout = self.settings.timeout;
            self.fail_checkpoint(id, &format!("not complete within {timeout:?}"))
                .await;
        }
        let complete: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.acks.len() == round.tasks.len())
            .map(|(&id, _)| id)
            .collect();
        for id in complete {
            self.complete(round, id).await;
        }
        let final_due = self.final_retry_at.is_none_or(|at| Instant::now() >= at);
        if !self.final_written
            && final_due
            && !self.finals.is_empty()
            && self.finals.len() == round.tasks.len()
        {
            self.complete_final(round).await;
        } else if self.final_written
            && self
                .final_noticed
                .is_some_and(|at| at.elapsed() >= FINAL_NOTICE_AGAIN)
        {
            let waiting = round.tasks.values().filter(|t| !t.finished);
            self.notify_tasks(round, waiting, FINAL_SNAPSHOT).await;
            self.final_noticed = Some(Instant::now());
        }
        if self.consecutive_failures > self.settings.tolerable_failures {
            return Some(FailureCause::CheckpointsFailing {
                consecutive: self.consecutive_failures,
                tolerable: self.settings.tolerable_failures,
            });
        }
        // Once a task finished its input, no barrier can pass it any more.
        if all_running && self.finals.is_empty() && !self.stopping {
            if let Some(request) = self.waiting_savepoints.pop() {
                self.trigger(round, Some(request)).await;
            } else if self.pending.len() < self.settings.max_concurrent && self.trigger_due() {
                self.trigger(round, None).await;
            }
        } else if !self.finals.is_empty() {
            for request in self.waiting_savepoints.drain(..) {
                let _ = request.reply.send(Err("the job's input has ended".into()));
            }
        }
        None
    }

    /// A task that sent its final snapshot takes no barrier any more (a source ignores triggers
    /// once its input ended, and no barrier follows the end of a channel): a checkpoint it has
    /// not acknowledged can never complete. It is aborted now, not counted as failed when it
    /// times out: nothing went wrong, and after the final checkpoint a failure would restart a
    /// job that is done.
    async fn abort_unreachable(&mut self) {
        let unreachable: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| self.finals.keys().any(|task| !p.acks.contains_key(task)))
            .map(|(&id, _)| id)
            .collect();
        for id in unreachable {
            info!(
                checkpoint = id,
                "aborting a checkpoint a task that ended its input never took"
            );
            self.abort(id, "a task's input ended before its barrier came")
                .await;
        }
    }

    fn trigger_due(&self) -> bool {
        self.last_trigger
            .is_none_or(|t| t.elapsed() >= self.settings.interval)
            && self.last_end.elapsed() >= self.settings.min_pause
    }

    /// Files an acknowledgement of a current attempt; one of an earlier attempt is stale.
    fn acknowledge(&mut self, tasks: &CheckpointTasks, ack: AcknowledgeCheckpointRequest) {
        let Some(task) = ack.task.clone() else {
            return;
        };
        let key = (task.vertex, task.subtask);
        if tasks.get(&key).is_none_or(|t| t.id.attempt != task.attempt) {
            return;
        }
        if ack.r#final {
            self.finals.insert(key, ack);
        } else if let Some(pending) = self.pending.get_mut(&ack.checkpoint_id) {
            pending.acks.insert(key, ack);
        }
    }

    async fn trigger(&mut self, round: &Round, request: Option<SavepointRequest>) {
        let id = self.next_id;
        self.next_id += 1;
        self.trigger_id(round, request, id)
            .instrument(info_span!("checkpoint", id))
            .await
    }

    async fn trigger_id(&mut self, round: &Round, request: Option<SavepointRequest>, id: u64) {
        self.last_trigger = Some(Instant::now());
        let (savepoint, reply, stop) = match request {
            Some(request) => match SnapshotLocation::new_savepoint(&self.job, id) {
                Ok(location) => (Some(location), Some(request.reply), request.stop),
                Err(e) => {
                    let _ = request.reply.send(Err(e.to_string()));
                    return;
                }
            },
            None => (None, None, false),
        };
        self.stopping |= stop;
        let trigger_ms = spate_api::now_millis();
        let kind = if savepoint.is_some() {
            SnapshotKind::Savepoint
        } else {
            SnapshotKind::Checkpoint
        };
        self.pending.insert(
            id,
            Pending {
                kind,
                savepoint: savepoint.clone(),
                trigger_ms,
                started: Instant::now(),
                acks: HashMap::new(),
                reply,
                stop,
            },
        );
        // Every worker learns of a savepoint's directory; the ones with sources inject barriers.
        let mut by_worker: BTreeMap<String, Vec<TaskId>> = BTreeMap::new();
        for task in round.tasks.values() {
            let sources = by_worker.entry(task.worker_id.clone()).or_default();
            if task.is_source {
                sources.push(task.id.clone());
            }
        }
        let savepoint_location = savepoint.map(|l| l.to_string()).unwrap_or_default();
        let sends = by_worker
            .into_iter()
            .filter(|(_, sources)| !sources.is_empty() || !savepoint_location.is_empty())
            .map(|(worker, tasks)| {
                let request = TriggerCheckpointRequest {
                    checkpoint_id: id,
                    timestamp_ms: trigger_ms,
                    tasks,
                    savepoint_location: savepoint_location.clone(),
                };
                async move {
                    let mut client = round.clients.get(&worker)?;
                    client.trigger_checkpoint(request).await?;
                    anyhow::Ok(())
                }
            });
        if let Some(Err(e)) = join_all(sends).await.into_iter().find(Result::is_err) {
            self.worker_unreachable = true;
            self.fail_checkpoint(id, &format!("triggering: {e:#}"))
                .await;
        }
    }

    fn metadata(
        &self,
        id: u64,
        kind: SnapshotKind,
        trigger_ms: i64,
        acks: Vec<&AcknowledgeCheckpointRequest>,
    ) -> CheckpointMetadata {
        let mut states: Vec<_> = acks.iter().flat_map(|a| a.states.iter().cloned()).collect();
        states.sort_by(|a, b| (&a.operator_id, a.subtask).cmp(&(&b.operator_id, b.subtask)));
        CheckpointMetadata {
            format_version: METADATA_FORMAT_VERSION,
            job_name: self.job_name.clone(),
            checkpoint_id: id,
            kind: kind as i32,
            trigger_ms,
            completed_ms: spate_api::now_millis(),
            max_parallelism: self.max_parallelism,
            operators: self.operators.clone(),
            states,
        }
    }

    #[instrument(name = "checkpoint", skip_all, fields(id))]
    async fn complete(&mut self, round: &Round, id: u64) {
        let Some(mut pending) = self.pending.remove(&id) else {
            return;
        };
        let metadata = self.metadata(
            id,
            pending.kind,
            pending.trigger_ms,
            pending.acks.values().collect(),
        );
        let written = match &pending.savepoint {
            Some(location) => self
                .storage
                .write_savepoint(location, &metadata)
                .await
                .map(|()| location.clone()),
            None => self.store.add(metadata).await,
        };
        let location = match written {
            Ok(location) => location,
            Err(e) => {
                self.pending.insert(id, pending);
                self.fail_checkpoint(id, &format!("writing its metadata: {e}"))
                    .await;
                return;
            }
        };
        let url = self.storage.url_of(&location.dir());
        let acks = pending.acks.values();
        self.stats.completed += 1;
        self.stats.latest_id = id;
        self.stats.latest_location = url.clone();
        self.stats.latest_duration_ms = pending.started.elapsed().as_millis() as u64;
        self.stats.latest_uploaded_bytes = acks.clone().map(|a| a.uploaded_bytes).sum();
        self.stats.latest_state_bytes = acks.clone().map(|a| a.state_bytes).sum();
        self.stats.latest_max_sync_us = acks.map(|a| a.sync_duration_us).max().unwrap_or(0);
        self.consecutive_failures = 0;
        self.last_end = Instant::now();
        let completed_ms = spate_api::now_millis().max(0) as u64;
        self.stats.latest_completed_unix_ms = completed_ms;
        if pending.savepoint.is_some() {
            self.stats.savepoint_id = id;
            self.stats.savepoint_location = url.clone();
            self.stats.savepoint_completed_unix_ms = completed_ms;
        }
        info!(
            kind = pending.kind.as_str_name(),
            location = %url,
            duration_ms = self.stats.latest_duration_ms,
            uploaded_bytes = self.stats.latest_uploaded_bytes,
            "checkpoint complete"
        );
        if pending.stop {
            // Checkpoints begun after the savepoint would commit output past it.
            let later: Vec<u64> = self.pending.range(id + 1..).map(|(&id, _)| id).collect();
            for later in later {
                self.abort(later, "the job stops with an earlier savepoint")
                    .await;
            }
            self.stopped = Some(url.clone());
        }
        if let Some(reply) = pending.reply.take() {
            let _ = reply.send(Ok((id, url)));
        }
        self.notify_complete(round, id).await;
    }

    async fn complete_final(&mut self, round: &Round) {
        let id = self.next_id;
        self.next_id += 1;
        self.complete_final_id(round, id)
            .instrument(info_span!("checkpoint", id, kind = "final"))
            .await
    }

    async fn complete_final_id(&mut self, round: &Round, id: u64) {
        let metadata = self.metadata(
            id,
            SnapshotKind::Final,
            spate_api::now_millis(),
            self.finals.values().collect(),
        );
        match self.store.add(metadata).await {
            Ok(location) => {
                let url = self.storage.url_of(&location.dir());
                info!(location = %url, "final checkpoint complete");
                self.final_written = true;
                self.final_noticed = Some(Instant::now());
                self.stats.latest_id = id;
                self.stats.latest_location = url;
                self.stats.latest_completed_unix_ms = spate_api::now_millis().max(0) as u64;
                self.notify_complete(round, FINAL_SNAPSHOT).await;
            }
            Err(e) => {
                // The final snapshots stay: the next round tries again.
                warn!(error = %e, "writing the final checkpoint failed");
                self.final_retry_at = Some(Instant::now() + FINAL_RETRY);
                self.next_id = id;
                self.consecutive_failures += 1;
                self.stats.failed += 1;
            }
        }
    }

    async fn notify_complete(&self, round: &Round, id: u64) {
        self.notify_tasks(round, round.tasks.values(), id).await
    }

    #[instrument(name = "checkpoint", skip_all, fields(id))]
    async fn notify_tasks(&self, round: &Round, tasks: impl Iterator<Item = &TaskRef>, id: u64) {
        let mut by_worker: BTreeMap<String, Vec<TaskId>> = BTreeMap::new();
        for task in tasks {
            by_worker
                .entry(task.worker_id.clone())
                .or_default()
                .push(task.id.clone());
        }
        join_all(by_worker.into_iter().map(|(worker, tasks)| async move {
            let request = NotifyCheckpointCompleteRequest {
                checkpoint_id: id,
                tasks,
            };
            let sent = async {
                round
                    .clients
                    .get(&worker)?
                    .notify_checkpoint_complete(request)
                    .await?;
                anyhow::Ok(())
            };
            if let Err(e) = sent.await {
                // A worker that missed it commits with the next checkpoint, or on restore, or
                // (the final checkpoint's) when the notice is sent again.
                warn!(%worker, error = %format!("{e:#}"), "completion notice not delivered");
            }
        }))
        .await;
    }

    #[instrument(name = "checkpoint", skip_all, fields(id))]
    async fn fail_checkpoint(&mut self, id: u64, reason: &str) {
        warn!(%reason, "checkpoint failed");
        self.consecutive_failures += 1;
        self.stats.failed += 1;
        self.abort(id, reason).await;
    }

    #[instrument(name = "checkpoint", skip_all, fields(id))]
    async fn abort(&mut self, id: u64, reason: &str) {
        let Some(mut pending) = self.pending.remove(&id) else {
            return;
        };
        self.last_end = Instant::now();
        if pending.stop {
            self.stopping = false;
        }
        if let Some(reply) = pending.reply.take() {
            let _ = reply.send(Err(format!("savepoint {id} failed: {reason}")));
        }
        let states: Vec<_> = pending
            .acks
            .values()
            .flat_map(|a| a.states.clone())
            .collect();
        if pending.savepoint.is_none()
            && let Err(e) = self.store.discard_aborted(id, &states).await
        {
            warn!(error = %e, "cleaning up an aborted checkpoint failed");
        }
    }
}

pub async fn resolve(
    storage: &CheckpointStorage,
    location: &str,
) -> anyhow::Result<CompletedSnapshot> {
    let location = storage.resolve(location)?;
    let metadata = storage
        .read_metadata(&location, true)
        .await
        .map_err(|e| anyhow!("cannot restore: {e}"))?;
    Ok(CompletedSnapshot { location, metadata })
}
