use arrow_schema::ArrowError;

/// An error raised while building or running an operator. It names the operator where it can,
/// because the task that reports it may run a chain of several.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{operator}: {source}")]
    In {
        operator: String,
        #[source]
        source: Box<OperatorError>,
    },
}

impl OperatorError {
    pub fn invalid(message: impl Into<String>) -> Self {
        OperatorError::Invalid(message.into())
    }

    /// Wraps the error with the name of the operator it happened in.
    pub fn in_operator(self, operator: &str) -> Self {
        OperatorError::In {
            operator: operator.to_string(),
            source: Box::new(self),
        }
    }
}

pub type Result<T, E = OperatorError> = std::result::Result<T, E>;
