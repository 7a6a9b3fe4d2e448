//! Test support shared by Spate's crates, as a dev-dependency only: a real MinIO server (an
//! S3-compatible store) for tests of `s3://` checkpoint storage, from a crate's own tests up to
//! whole jobs of the `spate` binary.

pub mod minio;

pub use minio::{Minio, listing};
