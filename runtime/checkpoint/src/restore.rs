use std::collections::HashSet;
use std::path::Path as LocalPath;

use futures::{StreamExt, TryStreamExt};
use spate_api::{KeyGroupRange, KeyedSnapshot, LocalStateFile, StateBackendKind};
use spate_proto::v1::KeyedStateHandle;

use crate::error::{CheckpointError, Result};
use crate::layout::{SnapshotLocation, file_segment};
use crate::storage::CheckpointStorage;

impl CheckpointStorage {
    /// Downloads the files of `handle`, part of the checkpoint or savepoint `snapshot`, into
    /// the local directory `dir` (created if missing), each checked against its size and
    /// checksum, and describes them as the keyed snapshot a state backend restores from.
    pub async fn download_keyed(
        &self,
        snapshot: &SnapshotLocation,
        handle: &KeyedStateHandle,
        dir: &LocalPath,
    ) -> Result<KeyedSnapshot> {
        let backend = StateBackendKind::parse(&handle.backend).ok_or_else(|| {
            self.invalid(
                snapshot,
                format!("unknown state backend {:?}", handle.backend),
            )
        })?;
        let mut names = HashSet::new();
        for file in &handle.files {
            file_segment(&file.name)?;
            if !names.insert(file.name.as_str()) {
                return Err(self.invalid(
                    snapshot,
                    format!("a keyed state handle names {} twice", file.name),
                ));
            }
        }
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| CheckpointError::Local {
                op: "creating restore directory",
                path: dir.to_path_buf(),
                source,
            })?;
        // Owned items: iterating references makes the future's type higher-ranked, which a
        // spawned task (a worker's gRPC handler) cannot hold.
        futures::stream::iter(handle.files.clone())
            .map(|file| async move {
                let local = dir.join(&file.name);
                self.download_file(snapshot, &file, &local).await
            })
            .buffer_unordered(self.concurrency())
            .try_collect::<Vec<()>>()
            .await?;
        Ok(KeyedSnapshot {
            backend,
            key_groups: KeyGroupRange::new(handle.key_group_start, handle.key_group_end),
            dir: dir.to_path_buf(),
            files: handle
                .files
                .iter()
                .map(|file| LocalStateFile {
                    name: file.name.clone(),
                    size: file.size,
                    shared: file.shared,
                })
                .collect(),
        })
    }
}
