//! The JobMaster's side: the completed checkpoints it retains, and the reference counts that
//! decide when a shared file may go.

use std::collections::{BTreeSet, HashMap, VecDeque};

use object_store::path::Path;
use spate_proto::v1::{CheckpointMetadata, OperatorSubtaskState, SnapshotKind};

use crate::error::{CheckpointError, Result};
use crate::layout::{SnapshotLocation, job_dir, job_segment, parse_path, savepoints_dir};
use crate::metadata::{CompletedSnapshot, referenced_files};
use crate::storage::CheckpointStorage;

/// Completed checkpoints retained when nothing else is configured.
pub const DEFAULT_RETAINED_CHECKPOINTS: usize = 3;

/// The completed checkpoints of one job that are retained, newest last, and the shared-state
/// registry over them: how many retained checkpoints reference each file outside its own
/// checkpoint directory. When a checkpoint is subsumed its directory is deleted, and so is every
/// such file no retained checkpoint references any more. Files outside the job's directory
/// (state restored from another job) are referenced but never deleted.
///
/// Rebuilt after a JobMaster restart by [`recover`](Self::recover) from the `_metadata` files
/// in the storage.
#[derive(Debug)]
pub struct CompletedCheckpointStore {
    storage: CheckpointStorage,
    job: String,
    retain: usize,
    retained: VecDeque<CompletedSnapshot>,
    references: HashMap<Path, usize>,
}

impl CompletedCheckpointStore {
    /// An empty store keeping the newest `retain` (at least 1) completed checkpoints of `job`.
    pub fn new(storage: CheckpointStorage, job: &str, retain: usize) -> Result<Self> {
        if retain == 0 {
            return Err(CheckpointError::Invalid(
                "at least one completed checkpoint must be retained".into(),
            ));
        }
        Ok(CompletedCheckpointStore {
            storage,
            job: job_segment(job)?,
            retain,
            retained: VecDeque::new(),
            references: HashMap::new(),
        })
    }

    /// The store as the storage holds it: every completed checkpoint of `job` whose metadata
    /// reads (partial and corrupt ones are skipped with a warning). Nothing is deleted here,
    /// even beyond `retain`: the job may be restoring from one of them right now. The next
    /// [`add`](Self::add) subsumes the excess, by which time every task has restored.
    pub async fn recover(storage: CheckpointStorage, job: &str, retain: usize) -> Result<Self> {
        let mut store = CompletedCheckpointStore::new(storage, job, retain)?;
        for id in store.storage.checkpoint_ids(&store.job).await? {
            let location = SnapshotLocation::checkpoint(&store.job, id)?;
            match store.storage.read_metadata(&location, false).await {
                Ok(metadata) => store.register(CompletedSnapshot { location, metadata })?,
                Err(error @ CheckpointError::InvalidSnapshot { .. }) => {
                    tracing::warn!("not retaining checkpoint: {error}");
                }
                Err(error) => return Err(error),
            }
        }
        tracing::info!(
            job = %store.job,
            checkpoints = ?store.retained.iter().map(|c| c.location.checkpoint_id()).collect::<Vec<_>>(),
            "recovered completed checkpoints"
        );
        Ok(store)
    }

    /// Completes a checkpoint whose tasks have all uploaded their state: writes its
    /// `_metadata` (last), retains it, and subsumes the oldest checkpoints beyond the number to
    /// retain. A failure to delete a subsumed file is logged, not returned: the checkpoint is
    /// complete either way, and [`sweep_orphans`](Self::sweep_orphans) finds the file later.
    pub async fn add(&mut self, metadata: CheckpointMetadata) -> Result<SnapshotLocation> {
        if metadata.job_name != self.job {
            return Err(CheckpointError::Invalid(format!(
                "checkpoint {} belongs to job {:?}, this store to {:?}",
                metadata.checkpoint_id, metadata.job_name, self.job
            )));
        }
        if !matches!(
            metadata.kind(),
            SnapshotKind::Checkpoint | SnapshotKind::Final
        ) {
            return Err(CheckpointError::Invalid(format!(
                "only checkpoints are retained, not {}",
                metadata.kind().as_str_name()
            )));
        }
        if let Some(latest) = self.latest()
            && metadata.checkpoint_id <= latest.location.checkpoint_id()
        {
            return Err(CheckpointError::Invalid(format!(
                "checkpoint {} is not newer than the latest completed checkpoint {}",
                metadata.checkpoint_id,
                latest.location.checkpoint_id()
            )));
        }
        let location = self.storage.write_metadata(&metadata).await?;
        self.register(CompletedSnapshot {
            location: location.clone(),
            metadata,
        })?;
        while self.retained.len() > self.retain {
            if let Some(oldest) = self.retained.pop_front() {
                self.subsume(oldest).await;
            }
        }
        Ok(location)
    }

    /// The newest retained checkpoint.
    pub fn latest(&self) -> Option<&CompletedSnapshot> {
        self.retained.back()
    }

    /// The retained checkpoints, oldest first.
    pub fn retained(&self) -> impl Iterator<Item = &CompletedSnapshot> {
        self.retained.iter()
    }

    /// Deletes what the aborted or declined checkpoint `checkpoint_id` left: its directory, and
    /// the files outside it that the acknowledged `states` name and no retained checkpoint
    /// references. Call it once no checkpoint older than this one is pending (with one
    /// checkpoint in flight at a time, right away): a pending older checkpoint may have
    /// uploaded the same shared file. Files of tasks that never acknowledged are left to
    /// [`sweep_orphans`](Self::sweep_orphans).
    pub async fn discard_aborted(
        &self,
        checkpoint_id: u64,
        states: &[OperatorSubtaskState],
    ) -> Result<()> {
        let location = SnapshotLocation::checkpoint(&self.job, checkpoint_id)?;
        if self
            .retained
            .iter()
            .any(|c| c.location.checkpoint_id() == checkpoint_id)
        {
            return Err(CheckpointError::Invalid(format!(
                "checkpoint {checkpoint_id} is completed and retained; it cannot be discarded"
            )));
        }
        let dir = location.dir();
        let mut doomed: Vec<Path> = self
            .storage
            .list(&dir)
            .await?
            .into_iter()
            .map(|object| object.location)
            .collect();
        let job_dir = job_dir(&self.job);
        for state in states {
            for file in state.keyed.iter().flat_map(|keyed| &keyed.files) {
                let path = parse_path(&file.path)?;
                let deletable = path.prefix_matches(&job_dir)
                    && !path.prefix_matches(&dir)
                    && !self.needs(&path);
                if deletable {
                    doomed.push(path);
                }
            }
        }
        tracing::info!(
            job = %self.job,
            checkpoint_id,
            files = doomed.len(),
            "discarding the files of an aborted checkpoint"
        );
        // The directory's own files first, in any order: without `_metadata` it never counts.
        self.storage.delete_all(doomed).await
    }

    /// Deletes everything under the job's directory that no retained checkpoint needs: partial
    /// checkpoints, subsumed files a failed deletion left, files of tasks that never
    /// acknowledged. Savepoints are not touched. Only call it while no checkpoint is in
    /// flight (after [`recover`](Self::recover), before the first trigger): the files of a
    /// pending checkpoint look exactly like orphans. Returns the number of files deleted.
    pub async fn sweep_orphans(&self) -> Result<usize> {
        let savepoints = savepoints_dir(&self.job);
        let orphans: Vec<Path> = self
            .storage
            .list(&job_dir(&self.job))
            .await?
            .into_iter()
            .map(|object| object.location)
            .filter(|path| !path.prefix_matches(&savepoints) && !self.needs(path))
            .collect();
        let count = orphans.len();
        if count > 0 {
            tracing::info!(job = %self.job, files = count, "deleting orphaned checkpoint files");
        }
        self.storage.delete_all(orphans).await?;
        Ok(count)
    }

    /// Whether a retained checkpoint references `path` or holds it in its directory.
    fn needs(&self, path: &Path) -> bool {
        self.references.contains_key(path)
            || self
                .retained
                .iter()
                .any(|c| path.prefix_matches(&c.location.dir()))
    }

    fn register(&mut self, completed: CompletedSnapshot) -> Result<()> {
        for path in self.counted_files(&completed)? {
            *self.references.entry(path).or_default() += 1;
        }
        self.retained.push_back(completed);
        Ok(())
    }

    /// The files of `checkpoint` that reference counting covers: those outside its own
    /// directory (which goes as a whole) and inside the job's (the rest is not ours to delete).
    fn counted_files(&self, checkpoint: &CompletedSnapshot) -> Result<BTreeSet<Path>> {
        let own_dir = checkpoint.location.dir();
        let job_dir = job_dir(&self.job);
        let files = referenced_files(&checkpoint.metadata)
            .map_err(|reason| self.storage.invalid(&checkpoint.location, reason))?;
        Ok(files
            .into_keys()
            .filter(|path| !path.prefix_matches(&own_dir) && path.prefix_matches(&job_dir))
            .collect())
    }

    async fn subsume(&mut self, checkpoint: CompletedSnapshot) {
        let id = checkpoint.location.checkpoint_id();
        let mut released = Vec::new();
        // Registered files always parse: `register` counted them.
        for path in self.counted_files(&checkpoint).unwrap_or_default() {
            if let Some(count) = self.references.get_mut(&path) {
                *count -= 1;
                if *count == 0 {
                    self.references.remove(&path);
                    released.push(path);
                }
            }
        }
        // `_metadata` first: a checkpoint interrupted halfway through deletion is then partial,
        // not a complete-looking checkpoint with missing files.
        let metadata_path = checkpoint.location.metadata_path();
        let result = async {
            self.storage.delete(&metadata_path).await?;
            let rest: Vec<Path> = self
                .storage
                .list(&checkpoint.location.dir())
                .await?
                .into_iter()
                .map(|object| object.location)
                .filter(|path| !self.references.contains_key(path))
                .collect();
            released.extend(rest);
            self.storage.delete_all(released).await
        }
        .await;
        match result {
            Ok(()) => tracing::debug!(job = %self.job, checkpoint_id = id, "subsumed checkpoint"),
            Err(error) => tracing::warn!(
                job = %self.job,
                checkpoint_id = id,
                "subsumed checkpoint not fully deleted (sweep_orphans will finish): {error}"
            ),
        }
    }
}
