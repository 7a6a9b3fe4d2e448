//! Moving one file between local disk and the store, hashing (xxh3-64) as it streams by.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path as LocalPath, PathBuf};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStoreExt, PutPayload, WriteMultipart};
use spate_proto::v1::StateFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xxhash_rust::xxh3::Xxh3Default;

use crate::error::{CheckpointError, Result};
use crate::layout::{SnapshotLocation, parse_path};
use crate::storage::{Call, CheckpointStorage};

/// Reads from local files in pieces of this size.
const READ_BUFFER: usize = 1024 * 1024;
/// Parts of one multipart upload in flight at once, besides the one being filled.
const PARTS_IN_FLIGHT: usize = 2;

/// Where a local file went, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    pub path: Path,
    pub size: u64,
    /// xxh3-64 of the content.
    pub checksum: u64,
}

fn local_error(
    op: &'static str,
    path: &LocalPath,
) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let path = path.to_path_buf();
    move |source| CheckpointError::Local { op, path, source }
}

impl CheckpointStorage {
    /// Uploads `local` to `remote`: in one request if it fits in a part, otherwise as a
    /// multipart upload streamed from disk, so memory stays near three parts whatever the size.
    pub async fn upload_file(&self, local: &LocalPath, remote: &Path) -> Result<UploadedFile> {
        let call = self.call("upload to", remote);
        self.retry(|| self.upload_once(&call, local, remote)).await
    }

    async fn upload_once(
        &self,
        call: &Call<'_>,
        local: &LocalPath,
        remote: &Path,
    ) -> Result<UploadedFile> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(local_error("opening", local))?;
        let length = file
            .metadata()
            .await
            .map_err(local_error("reading metadata of", local))?
            .len();
        if length <= self.part_size() as u64 {
            let mut content = Vec::with_capacity(length as usize);
            file.read_to_end(&mut content)
                .await
                .map_err(local_error("reading", local))?;
            let uploaded = UploadedFile {
                path: remote.clone(),
                size: content.len() as u64,
                checksum: xxhash_rust::xxh3::xxh3_64(&content),
            };
            self.store()
                .put(remote, PutPayload::from(content))
                .await
                .map_err(|e| call.error(e))?;
            return Ok(uploaded);
        }

        let upload = self
            .store()
            .put_multipart(remote)
            .await
            .map_err(|e| call.error(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size());
        let mut hasher = Xxh3Default::new();
        let mut size = 0u64;
        let streamed: Result<()> = async {
            let mut buffer = vec![0u8; READ_BUFFER];
            loop {
                let read = file
                    .read(&mut buffer)
                    .await
                    .map_err(local_error("reading", local))?;
                if read == 0 {
                    return Ok(());
                }
                hasher.update(&buffer[..read]);
                size += read as u64;
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| call.error(e))?;
                writer.write(&buffer[..read]);
            }
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.finish().await.map_err(|e| call.error(e))?;
                Ok(UploadedFile {
                    path: remote.clone(),
                    size,
                    checksum: hasher.digest(),
                })
            }
            Err(error) => {
                // Uploaded parts cost storage until aborted; the upload failed either way.
                if let Err(abort) = writer.abort().await {
                    tracing::debug!("aborting the multipart upload of {call}: {abort}");
                }
                Err(error)
            }
        }
    }

    /// Downloads `file` of the checkpoint or savepoint `snapshot` to `local`, checking its size
    /// and checksum. The content goes to `<local>.partial` first and is renamed when it checks
    /// out, so `local` never holds a partial or corrupt file.
    pub async fn download_file(
        &self,
        snapshot: &SnapshotLocation,
        file: &StateFile,
        local: &LocalPath,
    ) -> Result<()> {
        let remote = parse_path(&file.path)?;
        let call = self.call("download of", &remote);
        let partial = partial_path(local)?;
        let downloaded = self
            .retry(|| self.download_once(&call, &remote, &partial))
            .await;
        let mismatch = match downloaded {
            Ok((size, _)) if size != file.size => {
                Some(format!("{size} bytes, expected {}", file.size))
            }
            Ok((_, checksum)) if checksum != file.checksum => Some(format!(
                "xxh3 {checksum:016x}, expected {:016x}",
                file.checksum
            )),
            Ok(_) => None,
            Err(error) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(error);
            }
        };
        if let Some(reason) = mismatch {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(CheckpointError::CorruptFile {
                snapshot: self.url_of(&snapshot.dir()),
                location: self.url_of(&remote),
                reason,
            });
        }
        tokio::fs::rename(&partial, local)
            .await
            .map_err(local_error("renaming the download to", local))
    }

    /// Returns the size and checksum of what was written to `partial`.
    async fn download_once(
        &self,
        call: &Call<'_>,
        remote: &Path,
        partial: &LocalPath,
    ) -> Result<(u64, u64)> {
        let result = self.store().get(remote).await.map_err(|e| call.error(e))?;
        match result.payload {
            // A local store hands over its open file: copy it on a blocking thread in large
            // reads rather than as a stream of small chunks.
            GetResultPayload::File(source, _) => {
                let target = partial.to_path_buf();
                let range = result.range;
                tokio::task::spawn_blocking(move || copy_range(source, range, &target))
                    .await
                    .map_err(|join| CheckpointError::Local {
                        op: "writing",
                        path: partial.to_path_buf(),
                        source: std::io::Error::other(join),
                    })?
            }
            GetResultPayload::Stream(mut stream) => {
                let mut out = tokio::fs::File::create(partial)
                    .await
                    .map_err(local_error("creating", partial))?;
                let mut hasher = Xxh3Default::new();
                let mut size = 0u64;
                while let Some(chunk) = stream.try_next().await.map_err(|e| call.error(e))? {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    out.write_all(&chunk)
                        .await
                        .map_err(local_error("writing", partial))?;
                }
                out.flush().await.map_err(local_error("writing", partial))?;
                Ok((size, hasher.digest()))
            }
        }
    }
}

fn copy_range(
    mut source: std::fs::File,
    range: std::ops::Range<u64>,
    partial: &LocalPath,
) -> Result<(u64, u64)> {
    let read_error = |source| CheckpointError::Local {
        op: "reading the stored copy for",
        path: partial.to_path_buf(),
        source,
    };
    source
        .seek(SeekFrom::Start(range.start))
        .map_err(read_error)?;
    let mut source = source.take(range.end - range.start);
    let mut out = std::fs::File::create(partial).map_err(local_error("creating", partial))?;
    let mut hasher = Xxh3Default::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let read = source.read(&mut buffer).map_err(read_error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
        out.write_all(&buffer[..read])
            .map_err(local_error("writing", partial))?;
    }
    Ok((size, hasher.digest()))
}

fn partial_path(local: &LocalPath) -> Result<PathBuf> {
    let name = local.file_name().ok_or_else(|| {
        CheckpointError::Invalid(format!(
            "download target {} is not a file path",
            local.display()
        ))
    })?;
    let mut partial = name.to_os_string();
    partial.push(".partial");
    Ok(local.with_file_name(partial))
}

/// Size and xxh3-64 of a local file.
pub(crate) async fn hash_local_file(path: &LocalPath) -> Result<(u64, u64)> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(local_error("opening", path))?;
    let mut hasher = Xxh3Default::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let read = file
            .read(&mut buffer)
            .await
            .map_err(local_error("reading", path))?;
        if read == 0 {
            return Ok((size, hasher.digest()));
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
}
