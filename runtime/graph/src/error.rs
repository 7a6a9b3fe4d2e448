#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("edge {edge}: the producer's output does not match the consumer's input: {detail}")]
    SchemaMismatch { edge: String, detail: String },
    #[error(
        "operator '{consumer}' takes inserts only, but '{producer}' feeds it a changelog ({mode}): \
         rows that update or delete earlier ones"
    )]
    UpdatesIntoAppendOnly {
        consumer: String,
        producer: String,
        mode: String,
    },
    #[error("edge {edge}: {detail}")]
    InvalidEdge { edge: String, detail: String },
    #[error("operator '{node}': {detail}")]
    InvalidNode { node: String, detail: String },
    #[error("the job has no source")]
    NoSource,
    #[error("the job has no sink: operator '{0}' has no consumer")]
    DanglingOutput(String),
}
