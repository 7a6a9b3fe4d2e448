//! Where things live under the storage root (the layout is documented in the crate root).

use std::fmt;

use object_store::path::Path;

use crate::error::{CheckpointError, Result};
use crate::nonce::nonce;

/// The file whose presence makes a checkpoint or savepoint complete.
pub const METADATA_FILE: &str = "_metadata";
const SHARED_DIR: &str = "shared";
const SAVEPOINTS_DIR: &str = "savepoints";
const CHECKPOINT_PREFIX: &str = "chk-";
const SAVEPOINT_PREFIX: &str = "sp-";

/// The directory of one checkpoint or savepoint, relative to the storage root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotLocation {
    job: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    Checkpoint(u64),
    Savepoint { id: u64, nonce: String },
}

impl SnapshotLocation {
    pub fn checkpoint(job: &str, id: u64) -> Result<Self> {
        Ok(SnapshotLocation {
            job: job_segment(job)?,
            kind: Kind::Checkpoint(id),
        })
    }

    /// A fresh savepoint directory: the nonce keeps a second savepoint with the same id (a
    /// retried one, or one of an earlier run) from overwriting the first.
    pub fn new_savepoint(job: &str, id: u64) -> Result<Self> {
        Ok(SnapshotLocation {
            job: job_segment(job)?,
            kind: Kind::Savepoint { id, nonce: nonce() },
        })
    }

    /// `job/chk-<id>` or `job/savepoints/sp-<id>-<nonce>`, with or without a trailing
    /// `/_metadata`, as [`Display`](fmt::Display) writes it.
    pub fn parse(relative: &str) -> Result<Self> {
        let not_a_snapshot = || {
            CheckpointError::Invalid(format!(
                "{relative:?} is not a checkpoint or savepoint location \
                 (<job>/chk-<id> or <job>/savepoints/sp-<id>-<nonce>, optionally with /{METADATA_FILE})"
            ))
        };
        let mut parts: Vec<&str> = relative.trim_matches('/').split('/').collect();
        if parts.last() == Some(&METADATA_FILE) {
            parts.pop();
        }
        match parts.as_slice() {
            [job, dir] => {
                let id = parse_checkpoint_dir(dir).ok_or_else(not_a_snapshot)?;
                SnapshotLocation::checkpoint(job, id)
            }
            [job, SAVEPOINTS_DIR, dir] => {
                let (id, nonce) = parse_savepoint_dir(dir).ok_or_else(not_a_snapshot)?;
                Ok(SnapshotLocation {
                    job: job_segment(job)?,
                    kind: Kind::Savepoint {
                        id,
                        nonce: nonce.to_string(),
                    },
                })
            }
            _ => Err(not_a_snapshot()),
        }
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    pub fn checkpoint_id(&self) -> u64 {
        match self.kind {
            Kind::Checkpoint(id) | Kind::Savepoint { id, .. } => id,
        }
    }

    pub fn is_savepoint(&self) -> bool {
        matches!(self.kind, Kind::Savepoint { .. })
    }

    pub fn dir(&self) -> Path {
        Path::from(self.to_string())
    }

    pub fn metadata_path(&self) -> Path {
        self.dir().join(METADATA_FILE)
    }
}

impl fmt::Display for SnapshotLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Checkpoint(id) => write!(f, "{}/{CHECKPOINT_PREFIX}{id}", self.job),
            Kind::Savepoint { id, nonce } => write!(
                f,
                "{}/{SAVEPOINTS_DIR}/{SAVEPOINT_PREFIX}{id}-{nonce}",
                self.job
            ),
        }
    }
}

pub(crate) fn job_dir(job: &str) -> Path {
    Path::from(job)
}

pub(crate) fn shared_dir(job: &str) -> Path {
    job_dir(job).join(SHARED_DIR)
}

pub(crate) fn savepoints_dir(job: &str) -> Path {
    job_dir(job).join(SAVEPOINTS_DIR)
}

/// The id of a `chk-<id>` directory name.
pub(crate) fn parse_checkpoint_dir(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(CHECKPOINT_PREFIX)?;
    // Only the canonical spelling, so that one id has one directory.
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.parse().ok()
}

fn parse_savepoint_dir(name: &str) -> Option<(u64, &str)> {
    let (id, nonce) = name.strip_prefix(SAVEPOINT_PREFIX)?.split_once('-')?;
    let valid_nonce = !nonce.is_empty() && nonce.chars().all(|c| c.is_ascii_alphanumeric());
    (valid_nonce && id.chars().all(|c| c.is_ascii_digit()))
        .then(|| id.parse().ok().map(|id| (id, nonce)))
        .flatten()
}

/// A job name as a directory name: refused rather than escaped, so that the directory of a job
/// is the job's name as the user wrote it.
pub(crate) fn job_segment(job: &str) -> Result<String> {
    let valid = !job.is_empty()
        && !job.starts_with('.')
        && job
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(job.to_string())
    } else {
        Err(CheckpointError::Invalid(format!(
            "job name {job:?} cannot name a checkpoint directory: use ASCII letters, digits, \
             '-', '_' and '.' (not first)"
        )))
    }
}

/// An operator id made fit for a directory name. Ids are internal, so escaping is fine; the
/// subtask and the uploader's nonce keep the result unique.
pub(crate) fn instance_segment(operator_id: &str, subtask: u32) -> String {
    let operator: String = operator_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{operator}-{subtask}")
}

/// A local file name as one segment of a remote path; names come from backends, so anything
/// that is not a plain file name is refused.
pub(crate) fn file_segment(name: &str) -> Result<&str> {
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && Path::parse(name).is_ok();
    if valid {
        Ok(name)
    } else {
        Err(CheckpointError::Invalid(format!(
            "state file name {name:?} is not a plain file name"
        )))
    }
}

/// A `StateFile.path` as a storage path.
pub(crate) fn parse_path(path: &str) -> Result<Path> {
    Path::parse(path)
        .ok()
        .filter(|p| p.as_ref() == path && !path.is_empty())
        .ok_or_else(|| CheckpointError::Invalid(format!("{path:?} is not a valid storage path")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_print_and_parse_back() {
        let checkpoint = SnapshotLocation::checkpoint("q5", 42).unwrap();
        assert_eq!(checkpoint.to_string(), "q5/chk-42");
        assert_eq!(checkpoint.metadata_path().as_ref(), "q5/chk-42/_metadata");
        assert_eq!(SnapshotLocation::parse("q5/chk-42").unwrap(), checkpoint);
        assert_eq!(
            SnapshotLocation::parse("/q5/chk-42/_metadata/").unwrap(),
            checkpoint
        );

        let savepoint = SnapshotLocation::new_savepoint("q5", 7).unwrap();
        let text = savepoint.to_string();
        assert!(text.starts_with("q5/savepoints/sp-7-"), "{text}");
        let parsed = SnapshotLocation::parse(&text).unwrap();
        assert_eq!(parsed, savepoint);
        assert!(parsed.is_savepoint());
        assert_eq!(parsed.checkpoint_id(), 7);
    }

    #[test]
    fn refuses_what_is_not_a_snapshot() {
        for bad in [
            "q5",
            "q5/chk-",
            "q5/chk-x",
            "q5/chk-007",
            "q5/shared/x",
            "q5/savepoints/sp-1",
            "q5/savepoints/sp--abc",
            "a/b/chk-1",
            "../chk-1",
        ] {
            assert!(SnapshotLocation::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_checked_or_escaped() {
        assert!(job_segment("nexmark-q5_v1.2").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "ä"] {
            assert!(job_segment(bad).is_err(), "{bad:?}");
        }
        assert_eq!(instance_segment("window/agg 1", 3), "window_agg_1-3");
        assert!(file_segment("000012.sst").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "x\n"] {
            assert!(file_segment(bad).is_err(), "{bad:?}");
        }
        assert!(parse_path("q5/shared/a-0-1/000012.sst").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b"] {
            assert!(parse_path(bad).is_err(), "{bad:?}");
        }
    }
}
