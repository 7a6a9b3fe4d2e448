//! The worker's side of a checkpoint: uploading one operator instance's keyed snapshot, and
//! remembering which shared files a later checkpoint may reference instead of uploading.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use spate_api::KeyedSnapshot;
use spate_proto::v1::{KeyedStateHandle, StateFile};

use crate::error::{CheckpointError, Result};
use crate::layout::{
    SnapshotLocation, file_segment, instance_segment, job_segment, parse_path, shared_dir,
};
use crate::nonce::nonce;
use crate::storage::CheckpointStorage;
use crate::transfer::hash_local_file;

/// Where a snapshot goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotTarget {
    /// A periodic checkpoint: private files under `<job>/chk-<id>`, shared files under
    /// `<job>/shared` unless the last confirmed checkpoint uploaded them already.
    Checkpoint(u64),
    /// A savepoint: every file under the savepoint's directory, uploaded again.
    Savepoint(SnapshotLocation),
}

/// What one upload produced.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedSnapshot {
    /// For the acknowledgement and, through it, the checkpoint's metadata.
    pub handle: KeyedStateHandle,
    pub uploaded_bytes: u64,
    /// Local names of the files this upload sent; the others were referenced.
    pub uploaded_files: Vec<String>,
}

/// Uploads the keyed snapshots of one operator instance (one per checkpoint) and keeps the
/// incremental base: the shared files of the last checkpoint confirmed complete. Only a
/// confirmed checkpoint can be a base (as in Flink): the files of one that is pending may be
/// deleted if it is aborted.
#[derive(Debug)]
pub struct TaskSnapshotUploader {
    storage: CheckpointStorage,
    job: String,
    instance: String,
    /// `<job>/shared/<operator>-<subtask>-<nonce>`: a fresh nonce per uploader, so that shared
    /// files of another task, or of an earlier attempt of this one, are never overwritten.
    shared_dir: Path,
    base: HashMap<String, BaseFile>,
    base_id: Option<u64>,
    /// Shared files (by local name) of checkpoints uploaded and not yet confirmed or aborted.
    pending: BTreeMap<u64, HashMap<String, StateFile>>,
}

#[derive(Debug, Clone)]
struct BaseFile {
    file: StateFile,
    /// False for files seeded from a restored checkpoint until the local file's checksum was
    /// found to match: a restored backend may number its files anew, so a name alone proves
    /// nothing. Files this uploader sent itself are the same immutable files by construction.
    verified: bool,
}

enum Plan {
    Reuse(StateFile),
    Upload {
        // Owned: a borrowed name makes the upload future's type higher-ranked, which
        // `tokio::spawn` cannot take.
        name: String,
        size: u64,
        remote: Path,
        shared: bool,
    },
}

impl TaskSnapshotUploader {
    pub fn new(
        storage: CheckpointStorage,
        job: &str,
        operator_id: &str,
        subtask: u32,
    ) -> Result<Self> {
        let job = job_segment(job)?;
        let instance = instance_segment(operator_id, subtask);
        let shared_dir = shared_dir(&job).join(format!("{instance}-{}", nonce()));
        Ok(TaskSnapshotUploader {
            storage,
            job,
            instance,
            shared_dir,
            base: HashMap::new(),
            base_id: None,
            pending: BTreeMap::new(),
        })
    }

    /// Starts the base from the handles this instance was restored from, so that the first
    /// checkpoint after a restore uploads only what changed. Only shared files of this job's
    /// own checkpoints qualify: files of a savepoint, or of another job, are never referenced
    /// (their owner may delete them), so the first checkpoint after restoring one is full.
    /// A name that two restored handles give to different files is left out.
    pub fn seed(&mut self, restored: &[KeyedStateHandle]) {
        let own_shared = shared_dir(&self.job);
        let mut seeds: HashMap<String, Option<StateFile>> = HashMap::new();
        for file in restored.iter().flat_map(|handle| &handle.files) {
            let ours = file.shared
                && parse_path(&file.path).is_ok_and(|path| path.prefix_matches(&own_shared));
            if !ours {
                continue;
            }
            seeds
                .entry(file.name.clone())
                .and_modify(|seen| {
                    if seen.as_ref().is_some_and(|seen| seen.path != file.path) {
                        *seen = None;
                    }
                })
                .or_insert_with(|| Some(file.clone()));
        }
        self.base = seeds
            .into_iter()
            .filter_map(|(name, file)| {
                Some((
                    name,
                    BaseFile {
                        file: file?,
                        verified: false,
                    },
                ))
            })
            .collect();
        self.base_id = None;
        self.pending.clear();
        tracing::debug!(
            instance = %self.instance,
            files = self.base.len(),
            "incremental base seeded from the restored state"
        );
    }

    /// Uploads `snapshot` to `target` and returns its handle. For a checkpoint, shared files in
    /// the confirmed base are referenced, not uploaded.
    pub async fn upload(
        &mut self,
        target: &SnapshotTarget,
        snapshot: &KeyedSnapshot,
    ) -> Result<UploadedSnapshot> {
        let mut names = HashSet::new();
        for file in &snapshot.files {
            file_segment(&file.name)?;
            if !names.insert(file.name.as_str()) {
                return Err(CheckpointError::Invalid(format!(
                    "the snapshot of {} in {} lists {} twice",
                    self.instance,
                    snapshot.dir.display(),
                    file.name
                )));
            }
        }
        let (private_dir, checkpoint_id) = match target {
            SnapshotTarget::Checkpoint(id) => {
                if self.base_id.is_some_and(|base| *id <= base) {
                    return Err(CheckpointError::Invalid(format!(
                        "checkpoint {id} of {} is not newer than the confirmed checkpoint {}",
                        self.instance,
                        self.base_id.unwrap_or_default()
                    )));
                }
                let location = SnapshotLocation::checkpoint(&self.job, *id)?;
                (location.dir().join(self.instance.as_str()), Some(*id))
            }
            SnapshotTarget::Savepoint(location) => {
                if !location.is_savepoint() || location.job() != self.job {
                    return Err(CheckpointError::Invalid(format!(
                        "{location} is not a savepoint directory of job {}",
                        self.job
                    )));
                }
                (location.dir().join(self.instance.as_str()), None)
            }
        };

        let mut plans = Vec::with_capacity(snapshot.files.len());
        for file in &snapshot.files {
            let reusable = match checkpoint_id {
                Some(_) if file.shared => self.reusable(snapshot, &file.name, file.size).await?,
                _ => None,
            };
            plans.push(match reusable {
                Some(state_file) => Plan::Reuse(state_file),
                None => Plan::Upload {
                    name: file.name.clone(),
                    size: file.size,
                    remote: if file.shared && checkpoint_id.is_some() {
                        self.shared_dir.clone().join(file.name.as_str())
                    } else {
                        private_dir.clone().join(file.name.as_str())
                    },
                    // Nothing in a savepoint is shared with anything else.
                    shared: file.shared && checkpoint_id.is_some(),
                },
            });
        }

        let storage = &self.storage;
        let files: Vec<(StateFile, bool)> = futures::stream::iter(plans)
            .map(|plan| async move {
                match plan {
                    Plan::Reuse(file) => Ok((file, false)),
                    Plan::Upload {
                        name,
                        size,
                        remote,
                        shared,
                    } => {
                        let local = snapshot.dir.join(&name);
                        let uploaded = storage.upload_file(&local, &remote).await?;
                        if uploaded.size != size {
                            return Err(CheckpointError::Invalid(format!(
                                "local state file {} has {} bytes, its snapshot says {size}: \
                                 it changed after the snapshot was taken",
                                local.display(),
                                uploaded.size
                            )));
                        }
                        let file = StateFile {
                            name,
                            path: remote.to_string(),
                            size: uploaded.size,
                            checksum: uploaded.checksum,
                            shared,
                        };
                        Ok((file, true))
                    }
                }
            })
            .buffered(self.storage.concurrency())
            .try_collect()
            .await?;

        let uploaded_bytes = files
            .iter()
            .filter(|(_, sent)| *sent)
            .map(|(file, _)| file.size)
            .sum();
        let uploaded_files = files
            .iter()
            .filter(|(_, sent)| *sent)
            .map(|(file, _)| file.name.clone())
            .collect();
        if let Some(id) = checkpoint_id {
            let shared = files
                .iter()
                .filter(|(file, _)| file.shared)
                .map(|(file, _)| (file.name.clone(), file.clone()))
                .collect();
            self.pending.insert(id, shared);
        }
        Ok(UploadedSnapshot {
            handle: KeyedStateHandle {
                backend: snapshot.backend.name().to_string(),
                key_group_start: snapshot.key_groups.start,
                key_group_end: snapshot.key_groups.end,
                files: files.into_iter().map(|(file, _)| file).collect(),
            },
            uploaded_bytes,
            uploaded_files,
        })
    }

    /// The stored copy of the local file `name` in the base, if it is the same file.
    async fn reusable(
        &mut self,
        snapshot: &KeyedSnapshot,
        name: &str,
        size: u64,
    ) -> Result<Option<StateFile>> {
        let Some(base) = self.base.get_mut(name) else {
            return Ok(None);
        };
        if base.file.size != size {
            return Ok(None);
        }
        if !base.verified {
            let (local_size, checksum) = hash_local_file(&snapshot.dir.join(name)).await?;
            if (local_size, checksum) != (base.file.size, base.file.checksum) {
                return Ok(None);
            }
            base.verified = true;
        }
        Ok(Some(base.file.clone()))
    }

    /// Checkpoint `checkpoint_id` is complete: its shared files become the base. Older pending
    /// checkpoints can no longer complete and are forgotten; a notification older than the
    /// base is ignored.
    pub fn notify_complete(&mut self, checkpoint_id: u64) {
        if self.base_id.is_some_and(|base| checkpoint_id <= base) {
            return;
        }
        if let Some(files) = self.pending.remove(&checkpoint_id) {
            self.base = files
                .into_iter()
                .map(|(name, file)| {
                    let base = BaseFile {
                        file,
                        verified: true,
                    };
                    (name, base)
                })
                .collect();
            self.base_id = Some(checkpoint_id);
        }
        self.pending.retain(|&id, _| id > checkpoint_id);
    }

    /// Checkpoint `checkpoint_id` was aborted: it will never be a base.
    pub fn notify_aborted(&mut self, checkpoint_id: u64) {
        self.pending.remove(&checkpoint_id);
    }
}
