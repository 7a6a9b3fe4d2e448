use std::path::{Path, PathBuf};

use spate_api::{KeyGroupRange, OperatorError};

use crate::backend::StateKind;

/// An error of a state backend. Each names what it was about (a file, a directory, a state) so
/// that a failed restore or checkpoint can be traced without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rocksdb cannot {action} {}: {source}", path.display())]
    RocksDb {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("corrupt state snapshot {}: {reason}", path.display())]
    CorruptSnapshot { path: PathBuf, reason: String },
    #[error("corrupt stored value of state '{state}': {reason}")]
    CorruptValue { state: String, reason: &'static str },
    #[error("state '{state}': cannot {action} a value: {source}")]
    Codec {
        state: String,
        action: &'static str,
        #[source]
        source: postcard::Error,
    },
    #[error(
        "key group {key_group} does not belong to this instance (key groups {}..{})",
        range.start,
        range.end
    )]
    ForeignKeyGroup {
        key_group: u32,
        range: KeyGroupRange,
    },
    #[error("state '{state}' is a {registered} state, not a {requested} state")]
    WrongKind {
        state: String,
        registered: StateKind,
        requested: StateKind,
    },
    #[error("state '{state}' is already registered with a different time-to-live")]
    TtlMismatch { state: String },
    #[error("no state with id {0} is registered in this backend")]
    UnknownState(u32),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

impl StateError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn rocksdb(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(rocksdb::Error) -> Self {
        let path = path.to_path_buf();
        move |source| StateError::RocksDb {
            action,
            path,
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        StateError::CorruptSnapshot {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Operators report state failures as their own errors; the message keeps the whole context.
impl From<StateError> for OperatorError {
    fn from(error: StateError) -> Self {
        OperatorError::Invalid(error.to_string())
    }
}
