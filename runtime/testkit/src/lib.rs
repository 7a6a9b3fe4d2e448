//! Test support shared by Spate's crates, as a dev-dependency only: a real MinIO server (an
//! S3-compatible store) for tests of `s3://` checkpoint storage, from a crate's own tests up to
//! whole jobs of the `spate` binary, and a proxy that puts network faults between a client and
//! that server.

pub mod faulty_proxy;
pub mod minio;

pub use faulty_proxy::FaultyProxy;
pub use minio::{Minio, listing};
