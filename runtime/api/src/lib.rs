//! The seams of the Spate runtime: what flows between operators, and the traits an operator,
//! a source and a sink implement. Everything else (graph, network, task, SQL) builds on these.

mod changelog;
mod context;
mod element;
mod error;
mod key;
mod operator;
mod position;
mod source;
mod state;
mod time;

pub use changelog::{
    ChangelogMode, ROW_KIND_COLUMN, RowKind, changelog_batch, changelog_schema, data_schema,
    row_kind_field, row_kind_index, split_row_kinds, upsert_schema,
};
pub use context::{CancelFlag, OperatorContext};
pub use element::{BarrierKind, CheckpointBarrier, StreamElement};
pub use error::{OperatorError, Result};
pub use key::{
    KeyEncoder, column_names, default_max_parallelism, hash_key, key_group, subtask_for_key_group,
};
pub use operator::{Operator, OperatorFactory, OperatorMetrics, Output};
pub use position::{position_entries, restored_position};
pub use source::{SourceFactory, SourcePoll, SourceReader, Split, WatermarkStrategy};
pub use state::{
    KeyGroupRange, KeyedSnapshot, LocalStateFile, OperatorSnapshot, RestoredState,
    StateBackendKind, StateContext, StateEntry,
};
pub use time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp, event_time_column, now_millis};
