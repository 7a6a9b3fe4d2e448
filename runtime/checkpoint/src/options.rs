use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{CheckpointError, Result};
use crate::redact::redact_url;
use crate::retry::RetryPolicy;

/// The smallest part S3 accepts in a multipart upload (all but the last part).
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;

/// The option keys [`StorageOptions::from_map`] accepts.
pub const STORAGE_OPTION_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "virtual_hosted_style_request",
    "allow_http",
    "credentials_file",
    "retry_max_attempts",
    "retry_initial_backoff_ms",
    "retry_max_backoff_ms",
    "part_size",
    "upload_concurrency",
];

/// How to reach the checkpoint storage. Holds no secrets: credentials come from the environment
/// or from the file `credentials_file` names.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// Custom service endpoint (MinIO, OSS, a GCS or Azure emulator).
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// S3: `https://bucket.endpoint/key` instead of `https://endpoint/bucket/key` (the default).
    pub virtual_hosted_style_request: Option<bool>,
    /// Allow plain `http://` endpoints (a local MinIO).
    pub allow_http: Option<bool>,
    /// A file of `key = value` credentials (format in the crate documentation).
    pub credentials_file: Option<PathBuf>,
    pub retry: RetryPolicy,
    /// Files larger than this are uploaded in parts of this size.
    pub part_size: usize,
    /// Files uploaded or downloaded at once by one snapshot transfer. Memory in flight is about
    /// `upload_concurrency * 3 * part_size` at most.
    pub upload_concurrency: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            endpoint: None,
            region: None,
            virtual_hosted_style_request: None,
            allow_http: None,
            credentials_file: None,
            retry: RetryPolicy::default(),
            part_size: 8 * 1024 * 1024,
            upload_concurrency: 4,
        }
    }
}

impl StorageOptions {
    /// Options as the CLI and the StreamJob manifest pass them: strings by key. Unknown keys
    /// and unparsable values are refused by name.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self> {
        let mut options = StorageOptions::default();
        for (key, value) in map {
            match key.as_str() {
                "endpoint" => options.endpoint = Some(value.clone()),
                "region" => options.region = Some(value.clone()),
                "virtual_hosted_style_request" => {
                    options.virtual_hosted_style_request = Some(parse_bool(key, value)?)
                }
                "allow_http" => options.allow_http = Some(parse_bool(key, value)?),
                "credentials_file" => options.credentials_file = Some(PathBuf::from(value)),
                "retry_max_attempts" => options.retry.max_attempts = parse_number(key, value)?,
                "retry_initial_backoff_ms" => {
                    options.retry.initial_backoff = Duration::from_millis(parse_number(key, value)?)
                }
                "retry_max_backoff_ms" => {
                    options.retry.max_backoff = Duration::from_millis(parse_number(key, value)?)
                }
                "part_size" => options.part_size = parse_number(key, value)?,
                "upload_concurrency" => options.upload_concurrency = parse_number(key, value)?,
                _ => {
                    return Err(CheckpointError::InvalidOption {
                        key: key.clone(),
                        reason: format!(
                            "unknown option (known: {})",
                            STORAGE_OPTION_KEYS.join(", ")
                        ),
                    });
                }
            }
        }
        options.validate()?;
        Ok(options)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |key: &str, reason: String| {
            Err(CheckpointError::InvalidOption {
                key: key.to_string(),
                reason,
            })
        };
        if self.retry.max_attempts == 0 {
            return invalid("retry_max_attempts", "must be at least 1".into());
        }
        if self.retry.max_backoff < self.retry.initial_backoff {
            return invalid(
                "retry_max_backoff_ms",
                format!(
                    "{:?} is below retry_initial_backoff_ms ({:?})",
                    self.retry.max_backoff, self.retry.initial_backoff
                ),
            );
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return invalid(
                "part_size",
                format!(
                    "{} bytes is outside {MIN_PART_SIZE}..={MAX_PART_SIZE} (the limits of S3 multipart uploads)",
                    self.part_size
                ),
            );
        }
        if self.upload_concurrency == 0 {
            return invalid("upload_concurrency", "must be at least 1".into());
        }
        Ok(())
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(CheckpointError::InvalidOption {
            key: key.to_string(),
            reason: format!("{value:?} is not a boolean (true or false)"),
        }),
    }
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| CheckpointError::InvalidOption {
            key: key.to_string(),
            reason: format!("{value:?} is not a non-negative integer"),
        })
}

// By hand so that an endpoint written with user info (`https://user:pass@host`) stays hidden.
impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageOptions")
            .field("endpoint", &self.endpoint.as_deref().map(redact_url))
            .field("region", &self.region)
            .field(
                "virtual_hosted_style_request",
                &self.virtual_hosted_style_request,
            )
            .field("allow_http", &self.allow_http)
            .field("credentials_file", &self.credentials_file)
            .field("retry", &self.retry)
            .field("part_size", &self.part_size)
            .field("upload_concurrency", &self.upload_concurrency)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_string_options() {
        let options = StorageOptions::from_map(&map(&[
            ("endpoint", "http://127.0.0.1:9000"),
            ("region", "eu-west-1"),
            ("virtual_hosted_style_request", "false"),
            ("allow_http", "true"),
            ("credentials_file", "/etc/spate/creds"),
            ("retry_max_attempts", "3"),
            ("retry_initial_backoff_ms", "10"),
            ("retry_max_backoff_ms", "50"),
            ("part_size", "6291456"),
            ("upload_concurrency", "2"),
        ]))
        .unwrap();
        assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(options.allow_http, Some(true));
        assert_eq!(options.virtual_hosted_style_request, Some(false));
        assert_eq!(options.retry.max_attempts, 3);
        assert_eq!(options.retry.max_backoff, Duration::from_millis(50));
        assert_eq!(options.part_size, 6 * 1024 * 1024);
        assert_eq!(options.upload_concurrency, 2);
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values_by_name() {
        let error = StorageOptions::from_map(&map(&[("access_key", "x")])).unwrap_err();
        assert!(error.to_string().contains("access_key"), "{error}");
        assert!(error.to_string().contains("unknown option"), "{error}");

        let error = StorageOptions::from_map(&map(&[("allow_http", "maybe")])).unwrap_err();
        assert!(error.to_string().contains("allow_http"), "{error}");

        let error = StorageOptions::from_map(&map(&[("part_size", "1024")])).unwrap_err();
        assert!(error.to_string().contains("part_size"), "{error}");

        let error = StorageOptions::from_map(&map(&[("retry_max_attempts", "0")])).unwrap_err();
        assert!(error.to_string().contains("retry_max_attempts"), "{error}");
    }

    #[test]
    fn debug_hides_user_info_of_the_endpoint() {
        let options = StorageOptions {
            endpoint: Some("https://admin:hunter2@minio.local:9000".into()),
            ..StorageOptions::default()
        };
        let debug = format!("{options:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("minio.local:9000"), "{debug}");
    }
}
