//! The worker's part of checkpointing: downloading the state a task restores, and uploading the
//! snapshots a task takes, off the task thread, then acknowledging them to the JobMaster.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, anyhow};
use spate_api::{BarrierKind, RestoredState};
use spate_checkpoint::{
    CheckpointStorage, SnapshotLocation, SnapshotTarget, StorageOptions, TaskSnapshotUploader,
};
use spate_proto::v1::{
    AcknowledgeCheckpointRequest, CheckpointConfig, DeclineCheckpointRequest, KeyedStateHandle,
    OperatorSubtaskState, StateEntry, TaskId, TaskRestore,
};
use spate_task::TaskSnapshot;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::jobmaster::Upward;
use crate::local_recovery::{LocalCopy, LocalRecovery};

/// Storage handles by URL and the savepoint directories announced by the JobMaster.
#[derive(Default)]
pub struct CheckpointHub {
    storages: tokio::sync::Mutex<HashMap<String, CheckpointStorage>>,
    savepoints: Mutex<HashMap<u64, String>>,
}

impl CheckpointHub {
    pub async fn storage(&self, config: &CheckpointConfig) -> anyhow::Result<CheckpointStorage> {
        let mut storages = self.storages.lock().await;
        if let Some(storage) = storages.get(&config.storage_url) {
            return Ok(storage.clone());
        }
        let options: BTreeMap<String, String> =
            config.storage_options.clone().into_iter().collect();
        let options = StorageOptions::from_map(&options)?;
        let storage = CheckpointStorage::open(&config.storage_url, &options)
            .await
            .context("opening checkpoint storage")?;
        storages.insert(config.storage_url.clone(), storage.clone());
        Ok(storage)
    }

    pub fn announce_savepoint(&self, id: u64, location: String) {
        self.savepoints
            .lock()
            .expect("savepoints lock")
            .insert(id, location);
    }

    fn savepoint(&self, id: u64) -> Option<String> {
        self.savepoints
            .lock()
            .expect("savepoints lock")
            .get(&id)
            .cloned()
    }
}

/// What a task restores, and where its bytes came from.
pub struct Restored {
    /// By operator id.
    pub operators: HashMap<String, RestoredState>,
    pub downloaded_bytes: u64,
    pub local_bytes: u64,
}

/// Brings the keyed state of every operator of `task` into `state_dir/restore/...`: from this
/// worker's local copy of the checkpoint where it has one (same subtask, same key groups),
/// downloaded otherwise. The restored directories become the subtask's local copy.
pub async fn download_restore(
    storage: &CheckpointStorage,
    restore: &TaskRestore,
    state_dir: &Path,
    local: &LocalRecovery,
    task: &TaskId,
) -> anyhow::Result<Restored> {
    let location = SnapshotLocation::parse(&restore.location)?;
    let subtask = (task.job_id.clone(), task.vertex, task.subtask);
    let mut restored = Restored {
        operators: HashMap::new(),
        downloaded_bytes: 0,
        local_bytes: 0,
    };
    let mut copy = LocalCopy {
        checkpoint_id: restore.checkpoint_id,
        operators: HashMap::new(),
    };
    for operator in &restore.operators {
        let mut keyed = Vec::new();
        // Only a subtask restoring exactly one snapshot (no rescaling) can match a local copy.
        let local_copy = match operator.keyed.len() {
            1 => local.find(&subtask, restore.checkpoint_id, &operator.operator_id),
            _ => None,
        };
        for (index, handle) in operator.keyed.iter().enumerate() {
            let dir = state_dir
                .join("restore")
                .join(&operator.operator_id)
                .join(index.to_string());
            let from = storage
                .restore_keyed(&location, handle, &dir, local_copy.as_deref())
                .await
                .with_context(|| format!("restoring operator {}", operator.operator_id))?;
            restored.downloaded_bytes += from.downloaded_bytes;
            restored.local_bytes += from.local_bytes;
            if operator.keyed.len() == 1 {
                copy.operators.insert(operator.operator_id.clone(), dir);
            }
            keyed.push(from.snapshot);
        }
        let entries = operator
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        restored.operators.insert(
            operator.operator_id.clone(),
            RestoredState {
                checkpoint_id: restore.checkpoint_id,
                entries,
                keyed,
            },
        );
    }
    if !copy.operators.is_empty() {
        local.completed(subtask, copy);
    }
    Ok(restored)
}

/// Uploads one task's snapshots in order and acknowledges each (or declines it, naming why).
pub struct SnapshotUploads {
    pub task: TaskId,
    pub storage: CheckpointStorage,
    pub job_dir: String,
    pub uploaders: HashMap<String, TaskSnapshotUploader>,
    pub upward: mpsc::UnboundedSender<Upward>,
    pub local: Arc<LocalRecovery>,
    /// Local snapshot directories of checkpoints uploaded but not yet complete.
    pub local_copies: BTreeMap<u64, LocalCopy>,
    /// The task's final snapshot once acknowledged, kept while the task waits for the final
    /// checkpoint: a JobMaster that replaces the one it went to never saw it.
    pub final_ack: FinalAck,
}

/// A task's acknowledged final snapshot, shared with the task manager.
pub type FinalAck = Arc<Mutex<Option<AcknowledgeCheckpointRequest>>>;

impl SnapshotUploads {
    /// Seeds the incremental base of each operator from the handles it was restored from.
    pub fn seed(&mut self, restore: &TaskRestore) -> anyhow::Result<()> {
        for operator in &restore.operators {
            self.uploader(&operator.operator_id)?.seed(&operator.keyed);
        }
        Ok(())
    }

    fn uploader(&mut self, operator_id: &str) -> anyhow::Result<&mut TaskSnapshotUploader> {
        if !self.uploaders.contains_key(operator_id) {
            let uploader = TaskSnapshotUploader::new(
                self.storage.clone(),
                &self.job_dir,
                operator_id,
                self.task.subtask,
            )?;
            self.uploaders.insert(operator_id.to_string(), uploader);
        }
        Ok(self.uploaders.get_mut(operator_id).expect("inserted above"))
    }

    pub async fn run(
        mut self,
        hub: Arc<CheckpointHub>,
        mut snapshots: mpsc::UnboundedReceiver<TaskSnapshot>,
        mut completed: mpsc::UnboundedReceiver<u64>,
    ) {
        loop {
            tokio::select! {
                snapshot = snapshots.recv() => {
                    let Some(snapshot) = snapshot else { return };
                    let id = snapshot.barrier.map_or(0, |b| b.id);
                    let message = match self.upload(&hub, snapshot).await {
                        Ok(ack) => {
                            if ack.r#final {
                                *self.final_ack.lock().expect("final ack lock") = Some(ack.clone());
                            }
                            Upward::Ack(ack)
                        }
                        Err(e) => {
                            warn!(checkpoint = id, error = %format!("{e:#}"), "declining checkpoint");
                            Upward::Decline(DeclineCheckpointRequest {
                                task: Some(self.task.clone()),
                                checkpoint_id: id,
                                reason: format!("{e:#}"),
                            })
                        }
                    };
                    if self.upward.send(message).is_err() {
                        return;
                    }
                }
                id = completed.recv() => {
                    let Some(id) = id else { return };
                    for uploader in self.uploaders.values_mut() {
                        uploader.notify_complete(id);
                    }
                    let older: Vec<u64> = self.local_copies.range(..=id).map(|(&k, _)| k).collect();
                    for checkpoint in older {
                        if let Some(copy) = self.local_copies.remove(&checkpoint)
                            && checkpoint == id
                        {
                            let task = &self.task;
                            self.local.completed((task.job_id.clone(), task.vertex, task.subtask), copy);
                        }
                    }
                }
            }
        }
    }

    async fn upload(
        &mut self,
        hub: &CheckpointHub,
        snapshot: TaskSnapshot,
    ) -> anyhow::Result<AcknowledgeCheckpointRequest> {
        let started = Instant::now();
        let target = match snapshot.barrier {
            Some(b) if b.kind == BarrierKind::Savepoint => {
                let location = hub
                    .savepoint(b.id)
                    .ok_or_else(|| anyhow!("no directory announced for savepoint {}", b.id))?;
                Some(SnapshotTarget::Savepoint(SnapshotLocation::parse(
                    &location,
                )?))
            }
            Some(b) => Some(SnapshotTarget::Checkpoint(b.id)),
            None => None,
        };
        if let Some(SnapshotTarget::Checkpoint(id)) = &target {
            let operators = snapshot
                .operators
                .iter()
                .filter_map(|(op, s)| s.keyed.as_ref().map(|k| (op.clone(), k.dir.clone())))
                .collect();
            self.local_copies.insert(
                *id,
                LocalCopy {
                    checkpoint_id: *id,
                    operators,
                },
            );
        }
        let mut states = Vec::new();
        let (mut uploaded_bytes, mut state_bytes) = (0, 0);
        for (operator_id, operator) in snapshot.operators {
            if operator.is_empty() {
                continue;
            }
            let keyed = match (&operator.keyed, &target) {
                (Some(keyed), Some(target)) => {
                    let uploaded = self
                        .uploader(&operator_id)?
                        .upload(target, keyed)
                        .await
                        .with_context(|| format!("uploading the state of {operator_id}"))?;
                    uploaded_bytes += uploaded.uploaded_bytes;
                    state_bytes += uploaded.handle.files.iter().map(|f| f.size).sum::<u64>();
                    Some(uploaded.handle)
                }
                _ => None,
            };
            states.push(subtask_state(
                &operator_id,
                self.task.subtask,
                keyed,
                operator.entries,
            ));
        }
        debug!(uploaded_bytes, "snapshot uploaded");
        Ok(AcknowledgeCheckpointRequest {
            task: Some(self.task.clone()),
            checkpoint_id: snapshot.barrier.map_or(0, |b| b.id),
            r#final: snapshot.barrier.is_none(),
            states,
            uploaded_bytes,
            state_bytes,
            sync_duration_us: snapshot.sync_duration.as_micros() as u64,
            async_duration_us: started.elapsed().as_micros() as u64,
        })
    }
}

fn subtask_state(
    operator_id: &str,
    subtask: u32,
    keyed: Option<KeyedStateHandle>,
    entries: Vec<spate_api::StateEntry>,
) -> OperatorSubtaskState {
    OperatorSubtaskState {
        operator_id: operator_id.to_string(),
        subtask,
        keyed,
        entries: entries
            .into_iter()
            .map(|(name, value)| StateEntry { name, value })
            .collect(),
    }
}
