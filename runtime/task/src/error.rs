use spate_api::OperatorError;
use spate_network::NetworkError;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("input {input} channel {channel}: {source}")]
    Input {
        input: usize,
        channel: usize,
        #[source]
        source: NetworkError,
    },
    #[error("output: {0}")]
    Output(#[from] NetworkError),
    #[error("output: the consumer of subpartition {0} is gone")]
    ConsumerGone(usize),
    #[error("the worker's checkpoint uploader is gone")]
    CheckpointUploaderGone,
}
