//! What restarts after a failure, and how long to wait first.

mod failure;
mod strategy;

use std::collections::BTreeSet;

use spate_graph::{JobGraph, SubtaskRef, pipelined_regions};

pub use failure::{Failure, FailureCause, WorkerLoss};
pub use strategy::{FailoverScope, RestartBackoff, RestartStrategy};

/// The subtasks to restart for `failure`: the pipelined regions it touches, or the whole job.
pub struct FailoverPlanner {
    scope: FailoverScope,
    regions: Vec<Vec<SubtaskRef>>,
}

impl FailoverPlanner {
    pub fn new(graph: &JobGraph, scope: FailoverScope) -> Self {
        FailoverPlanner {
            scope,
            regions: pipelined_regions(graph),
        }
    }

    pub fn all(&self) -> BTreeSet<SubtaskRef> {
        self.regions.iter().flatten().copied().collect()
    }

    pub fn to_restart(&self, failure: &Failure) -> BTreeSet<SubtaskRef> {
        match self.scope {
            FailoverScope::Full => self.all(),
            FailoverScope::Region => self
                .regions
                .iter()
                .filter(|region| region.iter().any(|t| failure.tasks.contains(t)))
                .flatten()
                .copied()
                .collect(),
        }
    }
}
