//! From a storage URL and options to an object store rooted at the URL's prefix.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

use crate::credentials::{self, CredentialEntry};
use crate::error::{CheckpointError, Result};
use crate::options::StorageOptions;
use crate::redact::redact_url;

/// An opened store and the URL to name it by (without credentials, without a trailing `/`).
pub(crate) struct Opened {
    pub store: Arc<dyn ObjectStore>,
    pub url: String,
}

pub(crate) async fn open(url: &str, options: &StorageOptions) -> Result<Opened> {
    options.validate()?;
    let shown = redact_url(url.trim());
    let invalid = |reason: String| CheckpointError::InvalidUrl {
        url: shown.clone(),
        reason,
    };
    let raw = url.trim();
    let parsed = if raw.starts_with('/') {
        Url::from_file_path(raw).map_err(|()| invalid("not an absolute local path".into()))?
    } else {
        Url::parse(raw).map_err(|e| invalid(format!("{e}")))?
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "credentials do not belong in the URL; use the environment or a credentials file"
                .into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("a query or fragment is not supported".into()));
    }
    match parsed.scheme() {
        "file" => open_local(&parsed, options, invalid).await,
        scheme @ ("s3" | "gs" | "az") => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("no bucket (or container) named".into()))?
                .to_string();
            let prefix_text = parsed.path().trim_matches('/');
            let prefix = Path::parse(prefix_text)
                .ok()
                .filter(|p| p.as_ref() == prefix_text)
                .ok_or_else(|| invalid(format!("invalid prefix {prefix_text:?}")))?;
            let credentials = match &options.credentials_file {
                Some(path) => credentials::read(path).await?,
                None => Vec::new(),
            };
            let store = build_remote(scheme, &bucket, &credentials, options, &shown)?;
            let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
                store
            } else {
                Arc::new(PrefixStore::new(store, prefix))
            };
            Ok(Opened {
                store,
                url: shown.trim_end_matches('/').to_string(),
            })
        }
        other => Err(invalid(format!(
            "unsupported scheme {other:?} (supported: file, s3, gs, az)"
        ))),
    }
}

async fn open_local(
    url: &Url,
    options: &StorageOptions,
    invalid: impl Fn(String) -> CheckpointError,
) -> Result<Opened> {
    for (key, set) in [
        ("endpoint", options.endpoint.is_some()),
        ("region", options.region.is_some()),
        (
            "virtual_hosted_style_request",
            options.virtual_hosted_style_request.is_some(),
        ),
        ("allow_http", options.allow_http.is_some()),
        ("credentials_file", options.credentials_file.is_some()),
    ] {
        if set {
            return Err(CheckpointError::InvalidOption {
                key: key.into(),
                reason: "does not apply to a local directory (file://)".into(),
            });
        }
    }
    if url
        .host_str()
        .is_some_and(|h| !h.is_empty() && h != "localhost")
    {
        return Err(invalid("a file URL names no host: file:///abs/dir".into()));
    }
    let dir = url
        .to_file_path()
        .map_err(|()| invalid("not an absolute local path".into()))?;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|source| CheckpointError::Local {
            op: "creating checkpoint directory",
            path: dir.clone(),
            source,
        })?;
    // Deleting a checkpoint's last file removes its directory too, so that listings of a job
    // show no empty checkpoint directories.
    let store = LocalFileSystem::new_with_prefix(&dir)
        .map_err(|source| CheckpointError::Open {
            url: url.to_string(),
            source,
        })?
        .with_automatic_cleanup(true);
    Ok(Opened {
        store: Arc::new(store),
        url: url.as_str().trim_end_matches('/').to_string(),
    })
}

/// Single HTTP requests are retried a little underneath the crate's own retries of whole
/// operations (see the crate documentation), so keep this short.
fn request_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    }
}

fn build_remote(
    scheme: &str,
    bucket: &str,
    credentials: &[CredentialEntry],
    options: &StorageOptions,
    shown_url: &str,
) -> Result<Arc<dyn ObjectStore>> {
    let built = |source| CheckpointError::Open {
        url: shown_url.to_string(),
        source,
    };
    let allow_http = options.allow_http.map(|b| b.to_string());
    if scheme != "s3" {
        refuse_s3_only(options, scheme)?;
    }
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(request_retry());
            for entry in credentials {
                let key = config_key::<AmazonS3ConfigKey>(entry, scheme)?;
                builder = builder.with_config(key, entry.value.expose());
            }
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(region) = &options.region {
                builder = builder.with_region(region);
            }
            if let Some(virtual_hosted) = options.virtual_hosted_style_request {
                builder = builder.with_virtual_hosted_style_request(virtual_hosted);
            }
            if let Some(allow) = &allow_http {
                let key = AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp);
                builder = builder.with_config(key, allow);
            }
            Arc::new(builder.build().map_err(built)?)
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(request_retry());
            for entry in credentials {
                let key = config_key::<GoogleConfigKey>(entry, scheme)?;
                builder = builder.with_config(key, entry.value.expose());
            }
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_base_url(endpoint);
            }
            if let Some(allow) = &allow_http {
                let key = GoogleConfigKey::Client(ClientConfigKey::AllowHttp);
                builder = builder.with_config(key, allow);
            }
            Arc::new(builder.build().map_err(built)?)
        }
        _ => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_retry(request_retry());
            for entry in credentials {
                let key = config_key::<AzureConfigKey>(entry, scheme)?;
                builder = builder.with_config(key, entry.value.expose());
            }
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let Some(allow) = &allow_http {
                let key = AzureConfigKey::Client(ClientConfigKey::AllowHttp);
                builder = builder.with_config(key, allow);
            }
            Arc::new(builder.build().map_err(built)?)
        }
    };
    Ok(store)
}

fn config_key<K: FromStr>(entry: &CredentialEntry, scheme: &str) -> Result<K> {
    entry
        .key
        .parse()
        .map_err(|_| CheckpointError::InvalidOption {
            key: entry.key.clone(),
            reason: format!(
                "credentials file line {}: not a configuration key of {scheme}:// storage",
                entry.line
            ),
        })
}

fn refuse_s3_only(options: &StorageOptions, scheme: &str) -> Result<()> {
    for (key, set) in [
        ("region", options.region.is_some()),
        (
            "virtual_hosted_style_request",
            options.virtual_hosted_style_request.is_some(),
        ),
    ] {
        if set {
            return Err(CheckpointError::InvalidOption {
                key: key.into(),
                reason: format!("applies to s3:// only, not {scheme}://"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{CheckpointStorage, StorageOptions};

    async fn open_error(url: &str, options: &StorageOptions) -> String {
        CheckpointStorage::open(url, options)
            .await
            .unwrap_err()
            .to_string()
    }

    #[tokio::test]
    async fn refuses_bad_urls_by_name_without_secrets() {
        let options = StorageOptions::default();
        for (url, expected) in [
            ("ftp://host/x", "unsupported scheme \"ftp\""),
            ("relative/dir", "relative URL without a base"),
            ("s3:///prefix", "no bucket"),
            ("s3://AKIA:topsecret@bucket/x", "credentials do not belong"),
            ("az://container/p?sig=topsecret", "query"),
            ("file://server/share", "names no host"),
            ("s3://bucket/a//b", "invalid prefix"),
        ] {
            let error = open_error(url, &options).await;
            assert!(error.contains(expected), "{url}: {error}");
            assert!(!error.contains("topsecret"), "{url}: {error}");
            assert!(
                error.starts_with("checkpoint storage URL "),
                "{url}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn options_that_do_not_apply_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let local = format!("file://{}", dir.path().display());
        let endpoint = StorageOptions {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..StorageOptions::default()
        };
        let error = open_error(&local, &endpoint).await;
        assert!(error.contains("option endpoint"), "{error}");

        let region = StorageOptions {
            region: Some("eu-west-1".into()),
            ..StorageOptions::default()
        };
        let error = open_error("gs://bucket/prefix", &region).await;
        assert!(
            error.contains("option region: applies to s3:// only"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn builds_remote_stores_without_contacting_them() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &credentials,
            "aws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = topsecret\n",
        )
        .unwrap();
        let s3 = StorageOptions {
            endpoint: Some("https://oss-cn-hangzhou.aliyuncs.com".into()),
            region: Some("oss-cn-hangzhou".into()),
            virtual_hosted_style_request: Some(true),
            credentials_file: Some(credentials.clone()),
            ..StorageOptions::default()
        };
        let storage = CheckpointStorage::open("s3://bucket/spate/checkpoints/", &s3)
            .await
            .unwrap();
        assert_eq!(storage.url(), "s3://bucket/spate/checkpoints");
        let debug = format!("{storage:?} {s3:?}");
        assert!(
            !debug.contains("topsecret") && !debug.contains("AKIAEXAMPLE"),
            "{debug}"
        );

        let storage = CheckpointStorage::open("gs://bucket", &StorageOptions::default())
            .await
            .unwrap();
        assert_eq!(storage.url(), "gs://bucket");

        std::fs::write(&credentials, "azure_storage_account_name = spate\n").unwrap();
        let az = StorageOptions {
            credentials_file: Some(credentials),
            ..StorageOptions::default()
        };
        CheckpointStorage::open("az://container/prefix", &az)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn credentials_file_keys_are_checked_and_values_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &credentials,
            "aws_access_key_id = AKIAEXAMPLE\nnot_a_key = topsecret\n",
        )
        .unwrap();
        let options = StorageOptions {
            credentials_file: Some(credentials.clone()),
            ..StorageOptions::default()
        };
        let error = open_error("s3://bucket/x", &options).await;
        assert!(
            error.contains("not_a_key") && error.contains("line 2"),
            "{error}"
        );
        assert!(!error.contains("topsecret"), "{error}");

        let missing = StorageOptions {
            credentials_file: Some(dir.path().join("absent")),
            ..StorageOptions::default()
        };
        let error = open_error("s3://bucket/x", &missing).await;
        assert!(
            error.contains("absent") && error.contains("cannot read"),
            "{error}"
        );
    }
}
