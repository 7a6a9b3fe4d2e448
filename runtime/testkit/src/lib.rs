//! Test support shared by Spate's crates, as a dev-dependency only: a real MinIO server (an
//! S3-compatible store) for tests of `s3://` checkpoint storage, from a crate's own tests up to
//! whole jobs of the `spate` binary; a proxy that puts network faults between a client and that
//! server; a small disk a test can fill, and a disk it can slow down.

pub mod disk;
pub mod faulty_proxy;
pub mod kafka;
pub mod minio;
mod mounts;
#[cfg(target_os = "linux")]
pub mod slow_disk;

pub use disk::SmallDisk;
pub use faulty_proxy::FaultyProxy;
pub use minio::{Minio, listing};
#[cfg(target_os = "linux")]
pub use slow_disk::SlowDisk;
