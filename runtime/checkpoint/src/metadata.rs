//! The `_metadata` file: its encoding, and finding, reading and checking completed snapshots.
//!
//! Encoding: `SPATECHK` (8 bytes), the file format version (u32 LE), the length of the payload
//! (u64 LE), the payload (`CheckpointMetadata` as protobuf), and xxh3-64 of everything before it
//! (u64 LE). The length makes a truncated file detectable even where the checksum would happen
//! to match; the checksum catches everything else.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use object_store::path::Path;
use prost::Message;
use spate_proto::v1::{CheckpointMetadata, SnapshotKind};

use crate::error::{CheckpointError, Result};
use crate::layout::{SnapshotLocation, job_dir, job_segment, parse_checkpoint_dir, parse_path};
use crate::redact::redact_url;
use crate::storage::CheckpointStorage;

const MAGIC: &[u8; 8] = b"SPATECHK";
const FILE_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8;
const TRAILER_LEN: usize = 8;

/// The `format_version` this crate writes into [`CheckpointMetadata`] and the newest it reads.
pub const METADATA_FORMAT_VERSION: u32 = 1;

/// A checkpoint or savepoint whose `_metadata` was read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedSnapshot {
    pub location: SnapshotLocation,
    pub metadata: CheckpointMetadata,
}

pub(crate) fn encode(metadata: &CheckpointMetadata) -> Bytes {
    let mut metadata = metadata.clone();
    metadata.format_version = METADATA_FORMAT_VERSION;
    let payload = metadata.encode_to_vec();
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.put_slice(MAGIC);
    out.put_u32_le(FILE_VERSION);
    out.put_u64_le(payload.len() as u64);
    out.put_slice(&payload);
    let checksum = xxhash_rust::xxh3::xxh3_64(&out);
    out.put_u64_le(checksum);
    out.freeze()
}

/// The metadata in `bytes`, or why they are not a metadata file.
pub(crate) fn decode(bytes: &[u8]) -> Result<CheckpointMetadata, String> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(format!("_metadata is truncated ({} bytes)", bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err("_metadata is not a Spate checkpoint metadata file".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version != FILE_VERSION {
        return Err(format!(
            "_metadata has file format version {version}; this build reads {FILE_VERSION}"
        ));
    }
    let payload_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
    let expected_len = (HEADER_LEN + TRAILER_LEN) as u64 + payload_len;
    if bytes.len() as u64 != expected_len {
        return Err(format!(
            "_metadata is truncated or padded: {} bytes, its header says {expected_len}",
            bytes.len()
        ));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let stored = u64::from_le_bytes(trailer.try_into().unwrap_or_default());
    let computed = xxhash_rust::xxh3::xxh3_64(body);
    if stored != computed {
        return Err(format!(
            "_metadata checksum mismatch (stored {stored:016x}, computed {computed:016x})"
        ));
    }
    let metadata = CheckpointMetadata::decode(&body[HEADER_LEN..])
        .map_err(|e| format!("_metadata does not decode: {e}"))?;
    if metadata.format_version > METADATA_FORMAT_VERSION {
        return Err(format!(
            "metadata format version {} is newer than this build reads ({METADATA_FORMAT_VERSION})",
            metadata.format_version
        ));
    }
    Ok(metadata)
}

/// Every file `metadata` references, with its recorded size. A file referenced twice must have
/// one size.
pub(crate) fn referenced_files(
    metadata: &CheckpointMetadata,
) -> Result<BTreeMap<Path, u64>, String> {
    let mut files = BTreeMap::new();
    for state in &metadata.states {
        for file in state.keyed.iter().flat_map(|keyed| &keyed.files) {
            let path = parse_path(&file.path).map_err(|e| e.to_string())?;
            if let Some(size) = files.insert(path, file.size)
                && size != file.size
            {
                return Err(format!(
                    "{} is referenced with sizes {size} and {}",
                    file.path, file.size
                ));
            }
        }
    }
    Ok(files)
}

impl CheckpointStorage {
    /// Writes the `_metadata` of a checkpoint (kind `CHECKPOINT` or `FINAL`) to
    /// `<job>/chk-<id>/_metadata`, which completes it. Call it after every task has uploaded its
    /// files; [`CompletedCheckpointStore::add`](crate::CompletedCheckpointStore::add) does.
    /// `format_version` is set to [`METADATA_FORMAT_VERSION`].
    pub async fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<SnapshotLocation> {
        let location = SnapshotLocation::checkpoint(&metadata.job_name, metadata.checkpoint_id)?;
        match metadata.kind() {
            SnapshotKind::Checkpoint | SnapshotKind::Final => {}
            kind => {
                return Err(CheckpointError::Invalid(format!(
                    "write_metadata writes checkpoints, not {} (use write_savepoint for savepoints)",
                    kind.as_str_name()
                )));
            }
        }
        self.write_metadata_at(&location, metadata).await?;
        Ok(location)
    }

    pub(crate) async fn write_metadata_at(
        &self,
        location: &SnapshotLocation,
        metadata: &CheckpointMetadata,
    ) -> Result<()> {
        referenced_files(metadata).map_err(|reason| self.invalid(location, reason))?;
        self.put_bytes(&location.metadata_path(), encode(metadata))
            .await
    }

    /// Reads and checks the `_metadata` of `location`: format, checksum, and that it belongs to
    /// that location; with `verify_files`, also that every file it references exists with the
    /// recorded size. A partial or corrupt snapshot is an [`CheckpointError::InvalidSnapshot`]
    /// naming it.
    pub async fn read_metadata(
        &self,
        location: &SnapshotLocation,
        verify_files: bool,
    ) -> Result<CheckpointMetadata> {
        let bytes = match self.get_bytes(&location.metadata_path()).await {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => {
                return Err(self.invalid(location, "incomplete: it has no _metadata".into()));
            }
            Err(error) => return Err(error),
        };
        let metadata = decode(&bytes).map_err(|reason| self.invalid(location, reason))?;
        let expected_kind = if location.is_savepoint() {
            [SnapshotKind::Savepoint].as_slice()
        } else {
            [SnapshotKind::Checkpoint, SnapshotKind::Final].as_slice()
        };
        if metadata.job_name != location.job()
            || metadata.checkpoint_id != location.checkpoint_id()
            || !expected_kind.contains(&metadata.kind())
        {
            return Err(self.invalid(
                location,
                format!(
                    "_metadata describes {} {} of job {:?}, not this directory",
                    metadata.kind().as_str_name(),
                    metadata.checkpoint_id,
                    metadata.job_name
                ),
            ));
        }
        let files = referenced_files(&metadata).map_err(|reason| self.invalid(location, reason))?;
        if verify_files {
            let expected: Vec<Path> = files.keys().cloned().collect();
            for (path, found) in self.sizes(expected).await? {
                let recorded = files[&path];
                match found {
                    Some(size) if size == recorded => {}
                    Some(size) => {
                        return Err(self.invalid(
                            location,
                            format!("{path} has {size} bytes, the metadata says {recorded}"),
                        ));
                    }
                    None => {
                        return Err(self.invalid(location, format!("{path} is missing")));
                    }
                }
            }
        }
        Ok(metadata)
    }

    /// The completed checkpoint of `job` with the highest id whose metadata and files check out.
    /// Partial and corrupt checkpoints are skipped with a warning; failures to reach the store
    /// are errors (restoring an older checkpoint than there is would be wrong).
    pub async fn latest_completed(&self, job: &str) -> Result<Option<CompletedSnapshot>> {
        let mut ids = self.checkpoint_ids(job).await?;
        ids.reverse();
        for id in ids {
            let location = SnapshotLocation::checkpoint(job, id)?;
            match self.read_metadata(&location, true).await {
                Ok(metadata) => return Ok(Some(CompletedSnapshot { location, metadata })),
                Err(error @ CheckpointError::InvalidSnapshot { .. }) => {
                    tracing::warn!("skipping checkpoint: {error}");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// Ids of the `chk-<id>` directories of `job`, ascending, complete or not.
    pub(crate) async fn checkpoint_ids(&self, job: &str) -> Result<Vec<u64>> {
        let dir = job_dir(&job_segment(job)?);
        let mut ids: Vec<u64> = self
            .list_dirs(&dir)
            .await?
            .iter()
            .filter_map(|name| parse_checkpoint_dir(name))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The snapshot a user named (`spate run --from`): its directory or its `_metadata`, as a
    /// URL under this storage's root, as an absolute path when the root is a local directory,
    /// or relative to the root. Only parses; [`read_metadata`](Self::read_metadata) checks.
    pub fn resolve(&self, location: &str) -> Result<SnapshotLocation> {
        let text = location.trim();
        let root = self.url();
        let relative = if let Some(rest) = text.strip_prefix(root) {
            rest.strip_prefix('/')
                .ok_or_else(|| self.outside_root(text))?
        } else if text.starts_with('/') {
            // An absolute local path: the root's URL spelled as a path.
            let root_path = root
                .strip_prefix("file://")
                .ok_or_else(|| self.outside_root(text))?;
            text.strip_prefix(root_path)
                .and_then(|rest| rest.strip_prefix('/'))
                .ok_or_else(|| self.outside_root(text))?
        } else if text.contains("://") {
            return Err(self.outside_root(text));
        } else {
            text
        };
        SnapshotLocation::parse(relative)
    }

    fn outside_root(&self, location: &str) -> CheckpointError {
        CheckpointError::Invalid(format!(
            "{} is not under the checkpoint storage {}; open a storage at its root to read it",
            redact_url(location),
            self.url()
        ))
    }

    pub(crate) fn invalid(&self, location: &SnapshotLocation, reason: String) -> CheckpointError {
        CheckpointError::InvalidSnapshot {
            snapshot: self.url_of(&location.dir()),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_proto::v1::{KeyedStateHandle, OperatorSubtaskState, StateFile};

    fn sample() -> CheckpointMetadata {
        let mut metadata = CheckpointMetadata {
            job_name: "q5".into(),
            checkpoint_id: 3,
            max_parallelism: 128,
            states: vec![OperatorSubtaskState {
                operator_id: "window".into(),
                subtask: 0,
                keyed: Some(KeyedStateHandle {
                    backend: "rocksdb".into(),
                    key_group_start: 0,
                    key_group_end: 64,
                    files: vec![StateFile {
                        name: "000012.sst".into(),
                        path: "q5/shared/window-0-ab/000012.sst".into(),
                        size: 10,
                        checksum: 7,
                        shared: true,
                    }],
                }),
                entries: vec![],
            }],
            ..CheckpointMetadata::default()
        };
        metadata.set_kind(SnapshotKind::Checkpoint);
        metadata
    }

    #[test]
    fn roundtrips_and_stamps_the_format_version() {
        let decoded = decode(&encode(&sample())).unwrap();
        assert_eq!(decoded.format_version, METADATA_FORMAT_VERSION);
        assert_eq!(
            CheckpointMetadata {
                format_version: 0,
                ..decoded
            },
            sample()
        );
    }

    #[test]
    fn detects_truncation_corruption_and_foreign_files() {
        let bytes = encode(&sample());
        for cut in [0, 5, HEADER_LEN, bytes.len() - 1] {
            let error = decode(&bytes[..cut]).unwrap_err();
            assert!(error.contains("truncated"), "{cut}: {error}");
        }
        let mut flipped = bytes.to_vec();
        flipped[HEADER_LEN + 2] ^= 0x40;
        assert!(decode(&flipped).unwrap_err().contains("checksum"));
        assert!(
            decode(b"PK\x03\x04 definitely not a checkpoint")
                .unwrap_err()
                .contains("not a Spate")
        );
        let mut newer = sample();
        newer.format_version = METADATA_FORMAT_VERSION + 1;
        let mut bytes = BytesMut::new();
        let payload = newer.encode_to_vec();
        bytes.put_slice(MAGIC);
        bytes.put_u32_le(FILE_VERSION);
        bytes.put_u64_le(payload.len() as u64);
        bytes.put_slice(&payload);
        let checksum = xxhash_rust::xxh3::xxh3_64(&bytes);
        bytes.put_u64_le(checksum);
        assert!(decode(&bytes).unwrap_err().contains("newer"));
    }

    #[test]
    fn one_file_has_one_size() {
        let mut metadata = sample();
        let mut twin = metadata.states[0].clone();
        twin.subtask = 1;
        if let Some(keyed) = twin.keyed.as_mut() {
            keyed.files[0].size = 11;
        }
        metadata.states.push(twin);
        assert!(
            referenced_files(&metadata)
                .unwrap_err()
                .contains("sizes 10 and 11")
        );
    }
}
