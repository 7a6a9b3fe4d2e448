//! Shared by the integration tests: a real MinIO, and local snapshot fixtures.

pub mod fixtures;
pub mod minio;
