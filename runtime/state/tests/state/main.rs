//! Integration tests of the state backends, in one binary so that RocksDB is linked once.

mod common;
mod incremental;
mod rescale;
mod semantics;
mod snapshots;
mod ttl;
