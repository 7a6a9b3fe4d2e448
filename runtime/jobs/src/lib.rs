//! The jobs compiled into the `spate` binary. A job is named by a [`JobSpec`]-like pair (name,
//! arguments); the JobMaster and every worker build the same graph from it, so operators never
//! travel over the network.

mod args;
mod catalog;
mod co_count;
mod running_count;

pub use args::{JobArgs, JobError};
pub use catalog::{CATALOG, build};
