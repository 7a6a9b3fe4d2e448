//! Retries, against a store that fails the first calls on purpose.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use spate_proto::v1::StateFile;

use crate::{CheckpointStorage, RetryPolicy, SnapshotLocation, StorageOptions};

#[derive(Debug, Default)]
struct FlakyStore {
    inner: InMemory,
    failures_left: AtomicUsize,
    calls: AtomicUsize,
}

impl FlakyStore {
    fn fail_next(&self, calls: usize) {
        self.failures_left.store(calls, Ordering::SeqCst);
        self.calls.store(0, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn call(&self) -> object_store::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let left = self.failures_left.load(Ordering::SeqCst);
        if left == 0 {
            return Ok(());
        }
        self.failures_left.store(left - 1, Ordering::SeqCst);
        Err(object_store::Error::Generic {
            store: "flaky",
            source: "injected failure".into(),
        })
    }
}

impl fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlakyStore")
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.call()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.call()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.call()?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        match self.call() {
            Ok(()) => self.inner.delete_stream(locations),
            Err(error) => futures::stream::once(async { Err(error) }).boxed(),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.call() {
            Ok(()) => self.inner.list(prefix),
            Err(error) => futures::stream::once(async { Err(error) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.call()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.call()?;
        self.inner.copy_opts(from, to, options).await
    }
}

fn storage(max_attempts: u32) -> (Arc<FlakyStore>, CheckpointStorage) {
    let store = Arc::new(FlakyStore::default());
    let options = StorageOptions {
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        },
        ..StorageOptions::default()
    };
    let storage = CheckpointStorage::from_store(store.clone(), "memory://flaky/", &options)
        .expect("valid options");
    (store, storage)
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_attempts_run_out() {
    let (store, storage) = storage(3);
    let path = Path::from("job/chk-1/_metadata");

    store.fail_next(2);
    storage
        .put_bytes(&path, Bytes::from_static(b"meta"))
        .await
        .unwrap();
    assert_eq!(store.calls(), 3);

    store.fail_next(3);
    let error = storage.get_bytes(&path).await.unwrap_err();
    assert_eq!(store.calls(), 3);
    let message = error.to_string();
    assert!(
        message.starts_with("get memory://flaky/job/chk-1/_metadata: "),
        "{message}"
    );
    assert!(message.contains("injected failure"), "{message}");

    store.fail_next(1);
    assert_eq!(storage.list(&Path::from("job")).await.unwrap().len(), 1);
    assert_eq!(store.calls(), 2);

    store.fail_next(1);
    storage.delete(&path).await.unwrap();
    assert_eq!(store.calls(), 2);
}

#[tokio::test]
async fn missing_objects_are_not_retried() {
    let (store, storage) = storage(5);
    store.fail_next(0);
    let error = storage
        .get_bytes(&Path::from("job/nothing"))
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert_eq!(store.calls(), 1);
    assert_eq!(
        storage.size(&Path::from("job/nothing")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn file_transfers_restart_after_a_failure() {
    let (store, storage) = storage(3);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("state");
    // Above the part size: a multipart upload, restarted from the first byte.
    let content: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &content).unwrap();
    let remote = Path::from("job/chk-1/op-0/state");

    store.fail_next(1);
    let uploaded = storage.upload_file(&local, &remote).await.unwrap();
    assert_eq!(uploaded.size, content.len() as u64);
    assert_eq!(uploaded.checksum, xxhash_rust::xxh3::xxh3_64(&content));

    store.fail_next(2);
    let file = StateFile {
        name: "state".into(),
        path: remote.to_string(),
        size: uploaded.size,
        checksum: uploaded.checksum,
        shared: false,
    };
    let target = dir.path().join("restored");
    let location = SnapshotLocation::checkpoint("job", 1).unwrap();
    storage
        .download_file(&location, &file, &target)
        .await
        .unwrap();
    assert_eq!(store.calls(), 3);
    assert!(std::fs::read(&target).unwrap() == content);
}
