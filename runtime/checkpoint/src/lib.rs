//! Checkpoint storage: where the files of checkpoints and savepoints live, how they get there and
//! back, and how long they stay.
//!
//! # Storage URLs
//!
//! [`CheckpointStorage::open`] takes the root of the checkpoint storage as a URL:
//!
//! | URL                          | store                                                     |
//! |------------------------------|-----------------------------------------------------------|
//! | `file:///abs/dir`, `/abs/dir` | a local (or mounted) directory, created if missing       |
//! | `s3://bucket/prefix`         | AWS S3 and S3-compatible stores (MinIO, Alibaba OSS, ...) |
//! | `gs://bucket/prefix`         | Google Cloud Storage                                      |
//! | `az://container/prefix`      | Azure Blob Storage (account from the environment)         |
//!
//! Options ([`StorageOptions`], also built from string pairs with
//! [`StorageOptions::from_map`]): `endpoint`, `region`, `virtual_hosted_style_request`,
//! `allow_http`, `credentials_file`, `retry_max_attempts`, `retry_initial_backoff_ms`,
//! `retry_max_backoff_ms`, `part_size`, `upload_concurrency`. For MinIO use
//! `endpoint=http://host:9000`, `allow_http=true` (path-style requests are the default); for
//! Alibaba OSS use `endpoint=https://oss-<region>.aliyuncs.com`,
//! `virtual_hosted_style_request=true`.
//!
//! # Credentials
//!
//! Never in the URL (refused) and never in options. They come from the environment, as
//! object_store's `from_env` builders read it (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, web identity, instance metadata; `GOOGLE_SERVICE_ACCOUNT`, ...;
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, ...), or from a credentials file
//! named by the `credentials_file` option, which overrides the environment. Its format:
//!
//! ```text
//! # one `key = value` per line; blank lines and lines starting with # are ignored;
//! # a value may be wrapped in double quotes
//! aws_access_key_id = AKIA...
//! aws_secret_access_key = ...
//! aws_session_token = ...
//! ```
//!
//! Keys are object_store's configuration keys of the URL's scheme (`aws_*` for s3,
//! `google_*` for gs, `azure_*` for az). Errors name the file, line and key, never a value;
//! `Debug` of the storage and of its options shows no secret.
//!
//! # Layout
//!
//! Paths are relative to the root URL (a [`StateFile`](spate_proto::v1::StateFile)'s `path` is
//! one of them):
//!
//! ```text
//! <job>/chk-<id>/<operator>-<subtask>/<file>   files private to one checkpoint
//! <job>/chk-<id>/_metadata                     written last: its presence completes the checkpoint
//! <job>/shared/<operator>-<subtask>-<nonce>/<file>
//!                                              immutable files (SSTs) that later checkpoints of
//!                                              the same operator instance reference instead of
//!                                              uploading again; the random nonce per uploader
//!                                              keeps two tasks (or two attempts) apart
//! <job>/savepoints/sp-<id>-<nonce>/<operator>-<subtask>/<file>
//! <job>/savepoints/sp-<id>-<nonce>/_metadata   self-contained: every file of a savepoint is
//!                                              uploaded again into its own directory
//! ```
//!
//! A checkpoint directory without a valid `_metadata` is partial: [`CheckpointStorage::latest_completed`]
//! skips it and [`CheckpointStorage::read_metadata`] refuses it.
//!
//! # Retries
//!
//! Every call to the object store is retried with exponential backoff and jitter
//! ([`RetryPolicy`]); each retry is logged at `warn` with the operation, the location and the
//! error. A retry repeats the whole operation: a whole file upload or download, a whole listing.
//! Underneath, object_store retries single HTTP requests twice, so that one failed part does not
//! restart a multipart upload of a large file.

mod credentials;
mod error;
#[cfg(test)]
mod flaky_tests;
mod layout;
mod metadata;
mod nonce;
mod open;
mod options;
mod redact;
mod registry;
mod restore;
mod retry;
mod savepoint;
mod storage;
mod transfer;
mod uploader;

pub use error::{CheckpointError, Result};
pub use layout::{METADATA_FILE, SnapshotLocation};
pub use metadata::{CompletedSnapshot, METADATA_FORMAT_VERSION};
pub use options::{STORAGE_OPTION_KEYS, StorageOptions};
pub use registry::{CompletedCheckpointStore, DEFAULT_RETAINED_CHECKPOINTS};
pub use restore::RestoredKeyed;
pub use retry::RetryPolicy;
pub use storage::CheckpointStorage;
pub use transfer::UploadedFile;
pub use uploader::{SnapshotTarget, TaskSnapshotUploader, UploadedSnapshot};

/// The object_store version this crate is built on, for [`CheckpointStorage::from_store`] and
/// for the paths and listings in its API.
pub use object_store;
