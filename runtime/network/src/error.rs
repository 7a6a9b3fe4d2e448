use arrow_schema::ArrowError;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("data connection to {peer}: {source}")]
    Io {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data connection to {peer} closed while channel {channel} was open")]
    ConnectionLost { peer: String, channel: String },
    #[error("arrow ipc: {0}")]
    Arrow(#[from] ArrowError),
    #[error("malformed frame from {peer}: {reason}")]
    Protocol { peer: String, reason: String },
    #[error("producer of {0} failed or was canceled")]
    ProducerGone(String),
    #[error("the producer of {0} did not register its output in time")]
    NotRegistered(String),
    #[error("remote producer reports: {0}")]
    Remote(String),
    #[error("partitioning: {0}")]
    Partitioning(String),
}

pub type Result<T, E = NetworkError> = std::result::Result<T, E>;
