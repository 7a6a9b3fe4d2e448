use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{CheckpointError, Result};
use crate::open::{Opened, open};
use crate::options::StorageOptions;
use crate::redact::redact_url;
use crate::retry::RetryPolicy;

/// Deletions and existence checks in flight at once.
const METADATA_CONCURRENCY: usize = 16;

/// The root of a checkpoint storage. Cheap to clone; every call is retried as its
/// [`RetryPolicy`] says.
#[derive(Clone)]
pub struct CheckpointStorage {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    url: String,
    retry: RetryPolicy,
    part_size: usize,
    concurrency: usize,
}

/// Which object-store call, on which object, for errors and retry logs.
pub(crate) struct Call<'a> {
    pub op: &'static str,
    pub storage: &'a CheckpointStorage,
    pub path: &'a Path,
}

impl fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.storage.url_of(self.path))
    }
}

impl Call<'_> {
    pub(crate) fn error(&self, source: object_store::Error) -> CheckpointError {
        CheckpointError::Store {
            op: self.op,
            location: self.storage.url_of(self.path),
            source,
        }
    }
}

impl CheckpointStorage {
    /// Opens the storage at `url` (see the crate documentation for URLs, options and
    /// credentials). Nothing is sent to a remote store yet; a local directory is created.
    pub async fn open(url: &str, options: &StorageOptions) -> Result<Self> {
        let Opened { store, url } = open(url, options).await?;
        Ok(Self::with(store, url, options))
    }

    /// A storage over a store built elsewhere (an in-memory store in tests, a store wrapped to
    /// inject faults); `url` names it in errors and logs.
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        url: &str,
        options: &StorageOptions,
    ) -> Result<Self> {
        options.validate()?;
        Ok(Self::with(
            store,
            redact_url(url).trim_end_matches('/').to_string(),
            options,
        ))
    }

    fn with(store: Arc<dyn ObjectStore>, url: String, options: &StorageOptions) -> Self {
        CheckpointStorage {
            inner: Arc::new(Inner {
                store,
                url,
                retry: options.retry,
                part_size: options.part_size,
                concurrency: options.upload_concurrency,
            }),
        }
    }

    /// The root URL, without credentials.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The URL of `path`, for messages.
    pub fn url_of(&self, path: &Path) -> String {
        format!("{}/{}", self.inner.url, path)
    }

    pub(crate) fn store(&self) -> &dyn ObjectStore {
        self.inner.store.as_ref()
    }

    pub(crate) fn part_size(&self) -> usize {
        self.inner.part_size
    }

    pub(crate) fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    pub(crate) fn call<'a>(&'a self, op: &'static str, path: &'a Path) -> Call<'a> {
        Call {
            op,
            storage: self,
            path,
        }
    }

    pub(crate) async fn retry<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.inner.retry.run(f).await
    }

    pub async fn put_bytes(&self, path: &Path, bytes: Bytes) -> Result<()> {
        let call = self.call("put", path);
        self.retry(|| async {
            let payload = PutPayload::from_bytes(bytes.clone());
            self.store()
                .put(path, payload)
                .await
                .map(drop)
                .map_err(|e| call.error(e))
        })
        .await
    }

    pub async fn get_bytes(&self, path: &Path) -> Result<Bytes> {
        let call = self.call("get", path);
        self.retry(|| async {
            let result = self.store().get(path).await.map_err(|e| call.error(e))?;
            result.bytes().await.map_err(|e| call.error(e))
        })
        .await
    }

    /// The size of the object at `path`, or `None` if there is none.
    pub async fn size(&self, path: &Path) -> Result<Option<u64>> {
        let call = self.call("head", path);
        let result = self
            .retry(|| async { self.store().head(path).await.map_err(|e| call.error(e)) })
            .await;
        match result {
            Ok(meta) => Ok(Some(meta.size)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Deletes the object at `path`; deleting what is not there is not an error (a retried
    /// delete may find its first attempt succeeded).
    pub async fn delete(&self, path: &Path) -> Result<()> {
        let call = self.call("delete", path);
        let result = self
            .retry(|| async { self.store().delete(path).await.map_err(|e| call.error(e)) })
            .await;
        match result {
            Err(error) if error.is_not_found() => Ok(()),
            result => result,
        }
    }

    /// Deletes every path given, a few at a time; returns the first error after trying all.
    pub(crate) async fn delete_all(&self, paths: Vec<Path>) -> Result<()> {
        let results: Vec<Result<()>> = futures::stream::iter(paths)
            .map(|path| async move { self.delete(&path).await })
            .buffer_unordered(METADATA_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Every object under `prefix` (recursively), ordered by path.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        let call = self.call("list", prefix);
        let mut objects = self
            .retry(|| async {
                self.store()
                    .list(Some(prefix))
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|e| call.error(e))
            })
            .await?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// The names of the "directories" directly under `prefix`.
    pub(crate) async fn list_dirs(&self, prefix: &Path) -> Result<Vec<String>> {
        let call = self.call("list", prefix);
        let listing = self
            .retry(|| async {
                self.store()
                    .list_with_delimiter(Some(prefix))
                    .await
                    .map_err(|e| call.error(e))
            })
            .await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|dir| dir.filename().map(str::to_string))
            .collect())
    }

    /// Sizes of the given paths (`None` where missing), checked a few at a time.
    pub(crate) async fn sizes(&self, paths: Vec<Path>) -> Result<Vec<(Path, Option<u64>)>> {
        futures::stream::iter(paths)
            .map(|path| async move {
                let size = self.size(&path).await?;
                Ok((path, size))
            })
            .buffer_unordered(METADATA_CONCURRENCY)
            .try_collect()
            .await
    }
}

// By hand: the store's own `Debug` may print credentials.
impl fmt::Debug for CheckpointStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointStorage")
            .field("url", &self.inner.url)
            .field("retry", &self.inner.retry)
            .field("part_size", &self.inner.part_size)
            .field("concurrency", &self.inner.concurrency)
            .finish()
    }
}
