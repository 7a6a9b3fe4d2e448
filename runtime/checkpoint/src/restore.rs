use std::collections::HashSet;
use std::path::Path as LocalPath;

use futures::{StreamExt, TryStreamExt};
use spate_api::{KeyGroupRange, KeyedSnapshot, LocalStateFile, StateBackendKind};
use spate_proto::v1::{KeyedStateHandle, StateFile};

use crate::error::{CheckpointError, Result};
use crate::layout::{SnapshotLocation, file_segment};
use crate::storage::CheckpointStorage;

/// A keyed snapshot in a local directory, and where its bytes came from.
#[derive(Debug, Clone)]
pub struct RestoredKeyed {
    pub snapshot: KeyedSnapshot,
    /// Read from checkpoint storage.
    pub downloaded_bytes: u64,
    /// Linked or copied from a local copy of the same snapshot (task-local recovery).
    pub local_bytes: u64,
}

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
        Ok(self
            .restore_keyed(snapshot, handle, dir, None)
            .await?
            .snapshot)
    }

    /// As [`download_keyed`](Self::download_keyed), but takes each file from `local_copy` (a
    /// directory this process kept of the same snapshot) when a file of that name there has the
    /// expected size and checksum; only the others are downloaded.
    pub async fn restore_keyed(
        &self,
        snapshot: &SnapshotLocation,
        handle: &KeyedStateHandle,
        dir: &LocalPath,
        local_copy: Option<&LocalPath>,
    ) -> Result<RestoredKeyed> {
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
        let sources: Vec<(u64, bool)> = futures::stream::iter(handle.files.clone())
            .map(|file| async move {
                let local = dir.join(&file.name);
                if let Some(copy) = local_copy
                    && take_local_copy(&copy.join(&file.name), &file, &local).await
                {
                    return Ok((file.size, true));
                }
                self.download_file(snapshot, &file, &local).await?;
                Ok((file.size, false))
            })
            .buffer_unordered(self.concurrency())
            .try_collect()
            .await?;
        let bytes = |from_local: bool| {
            sources
                .iter()
                .filter(|(_, local)| *local == from_local)
                .map(|(size, _)| size)
                .sum()
        };
        let snapshot = KeyedSnapshot {
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
        };
        Ok(RestoredKeyed {
            snapshot,
            downloaded_bytes: bytes(false),
            local_bytes: bytes(true),
        })
    }
}

/// Hard-links (or copies) `copy` to `target` when it is `file` (size and xxh3 checksum); any
/// mismatch or error leaves nothing at `target` and says no, so the caller downloads instead.
async fn take_local_copy(copy: &LocalPath, file: &StateFile, target: &LocalPath) -> bool {
    let (copy, target, size, checksum) = (
        copy.to_path_buf(),
        target.to_path_buf(),
        file.size,
        file.checksum,
    );
    tokio::task::spawn_blocking(move || {
        let matches = std::fs::metadata(&copy).is_ok_and(|m| m.is_file() && m.len() == size)
            && file_checksum(&copy).is_ok_and(|c| c == checksum);
        if !matches {
            return false;
        }
        let _ = std::fs::remove_file(&target);
        let taken = std::fs::hard_link(&copy, &target)
            .or_else(|_| std::fs::copy(&copy, &target).map(drop))
            .is_ok();
        if !taken {
            let _ = std::fs::remove_file(&target);
        }
        taken
    })
    .await
    .unwrap_or(false)
}

fn file_checksum(path: &LocalPath) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.digest());
        }
        hasher.update(&buf[..n]);
    }
}
