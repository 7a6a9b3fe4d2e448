use std::sync::Arc;

use crate::state::{KeyGroupRange, StateContext};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when the task is being canceled; long-running operator code checks it.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Where an operator instance runs: which parallel subtask of which vertex.
#[derive(Debug, Clone)]
pub struct OperatorContext {
    pub operator_name: String,
    pub subtask: u32,
    pub parallelism: u32,
    /// Number of key groups; keyed state is partitioned by them so it can move on rescale.
    pub max_parallelism: u32,
    pub cancel: CancelFlag,
    pub state: StateContext,
}

impl OperatorContext {
    /// A context for a single, unkeyed instance (tests and tools).
    pub fn single(name: &str) -> Self {
        OperatorContext {
            operator_name: name.to_string(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: crate::default_max_parallelism(1),
            cancel: CancelFlag::default(),
            state: StateContext {
                key_groups: KeyGroupRange::of_subtask(0, 1, crate::default_max_parallelism(1)),
                ..StateContext::default()
            },
        }
    }
}
