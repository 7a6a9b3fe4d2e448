//! Savepoints are self-contained: the tasks upload every file of their snapshots again into the
//! savepoint's own directory ([`SnapshotTarget::Savepoint`](crate::SnapshotTarget)) instead of
//! referencing shared files of checkpoints, so that the savepoint outlives any retention of
//! checkpoints and can be moved or deleted as one directory. Re-uploading (rather than copying
//! stored checkpoint files) keeps one code path for every store and needs no completed
//! checkpoint to exist.

use spate_proto::v1::{CheckpointMetadata, SnapshotKind};

use crate::error::{CheckpointError, Result};
use crate::layout::SnapshotLocation;
use crate::metadata::referenced_files;
use crate::storage::CheckpointStorage;

impl CheckpointStorage {
    /// Completes the savepoint at `location` by writing its `_metadata`, after checking that the
    /// metadata is a savepoint's, matches the location, and references only files inside it.
    pub async fn write_savepoint(
        &self,
        location: &SnapshotLocation,
        metadata: &CheckpointMetadata,
    ) -> Result<()> {
        if !location.is_savepoint() {
            return Err(CheckpointError::Invalid(format!(
                "{} is a checkpoint directory, not a savepoint directory",
                self.url_of(&location.dir())
            )));
        }
        if metadata.kind() != SnapshotKind::Savepoint
            || metadata.job_name != location.job()
            || metadata.checkpoint_id != location.checkpoint_id()
        {
            return Err(self.invalid(
                location,
                format!(
                    "metadata of {} {} of job {:?} does not belong here",
                    metadata.kind().as_str_name(),
                    metadata.checkpoint_id,
                    metadata.job_name
                ),
            ));
        }
        let dir = location.dir();
        let files = referenced_files(metadata).map_err(|reason| self.invalid(location, reason))?;
        if let Some(outside) = files.keys().find(|path| !path.prefix_matches(&dir)) {
            return Err(self.invalid(
                location,
                format!("{outside} lies outside the savepoint, which must be self-contained"),
            ));
        }
        self.write_metadata_at(location, metadata).await
    }

    /// Deletes the savepoint at `location` (an aborted one, or one no longer wanted):
    /// `_metadata` first, so that an interrupted deletion leaves a partial savepoint rather
    /// than a complete-looking one with missing files.
    pub async fn discard_savepoint(&self, location: &SnapshotLocation) -> Result<()> {
        if !location.is_savepoint() {
            return Err(CheckpointError::Invalid(format!(
                "{} is a checkpoint directory, not a savepoint directory",
                self.url_of(&location.dir())
            )));
        }
        self.delete(&location.metadata_path()).await?;
        let files = self.list(&location.dir()).await?;
        self.delete_all(files.into_iter().map(|object| object.location).collect())
            .await
    }
}
