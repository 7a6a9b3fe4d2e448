//! Shared by the integration tests: local snapshot fixtures (the MinIO server is
//! `spate_testkit::Minio`).

pub mod fixtures;
