use std::path::PathBuf;

/// What went wrong, with the location it went wrong at. URLs in errors never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint storage URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("checkpoint storage option {key}: {reason}")]
    InvalidOption { key: String, reason: String },
    #[error("credentials file {}: {reason}", path.display())]
    Credentials { path: PathBuf, reason: String },
    #[error("opening checkpoint storage {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{op} {location}: {source}")]
    Store {
        op: &'static str,
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{op} {}: {source}", path.display())]
    Local {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A downloaded file is not what the checkpoint recorded.
    #[error("{location} of {snapshot} is corrupt: {reason}")]
    CorruptFile {
        snapshot: String,
        location: String,
        reason: String,
    },
    /// A checkpoint or savepoint that is partial, corrupt, or inconsistent with its location.
    #[error("{snapshot}: {reason}")]
    InvalidSnapshot { snapshot: String, reason: String },
    /// The caller asked for something that cannot be done (a bad name, an id out of order).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

impl CheckpointError {
    /// Whether trying the same call again may succeed: only failures of the object store's
    /// service or of the network are; a missing object, a refused permission or a local disk
    /// error stay what they are.
    pub fn is_transient(&self) -> bool {
        use object_store::Error as E;
        match self {
            CheckpointError::Store { source, .. } => !matches!(
                source,
                E::NotFound { .. }
                    | E::InvalidPath { .. }
                    | E::NotSupported { .. }
                    | E::AlreadyExists { .. }
                    | E::Precondition { .. }
                    | E::NotModified { .. }
                    | E::NotImplemented { .. }
                    | E::PermissionDenied { .. }
                    | E::Unauthenticated { .. }
                    | E::UnknownConfigurationKey { .. }
            ),
            _ => false,
        }
    }

    pub(crate) fn is_not_found(&self) -> bool {
        matches!(
            self,
            CheckpointError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}
