//! Spate's built-in operators, sources and sinks.

pub mod basic;
pub mod changelog_normalize;
mod checkpoint;
pub mod generator;
pub mod group_aggregate;
pub mod join;
pub mod keyed;
pub mod sink;
#[cfg(test)]
mod test_cluster;
pub mod top_n;
pub mod upsert_changes;
pub mod window;
