//! Checkpoint storage end to end, on a local directory and on a real MinIO (S3 with a custom
//! endpoint, path-style requests). Every scenario runs on both.

mod support;

use std::path::Path as LocalPath;
use std::time::Duration;

use bytes::Bytes;
use spate_checkpoint::object_store::path::Path;
use spate_checkpoint::{
    CheckpointError, CheckpointStorage, CompletedCheckpointStore, METADATA_FORMAT_VERSION,
    RetryPolicy, SnapshotLocation, SnapshotTarget, StorageOptions, TaskSnapshotUploader,
};
use spate_proto::v1::{CheckpointMetadata, SnapshotKind, StateFile};
use spate_testkit::{Minio, listing};
use support::fixtures::{dir_of, metadata, set, snapshot, sst_content};

const MIB: usize = 1024 * 1024;

fn options() -> StorageOptions {
    StorageOptions {
        part_size: 5 * MIB,
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        },
        ..StorageOptions::default()
    }
}

async fn local_storage(dir: &LocalPath) -> CheckpointStorage {
    let url = format!("file://{}", dir.join("checkpoints").display());
    CheckpointStorage::open(&url, &options()).await.unwrap()
}

/// Deterministic bytes that do not compress or repeat in part-sized blocks.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn transfers_files(storage: &CheckpointStorage, local: &LocalPath) {
    let location = SnapshotLocation::checkpoint("xfer", 1).unwrap();
    // One file in a single request, one streamed in three parts.
    for (name, content) in [("small", b"hello".to_vec()), ("big", noise(12 * MIB + 123))] {
        let file = local.join(name);
        std::fs::write(&file, &content).unwrap();
        let remote = location.dir().join("op-0").join(name);
        let uploaded = storage.upload_file(&file, &remote).await.unwrap();
        assert_eq!(uploaded.path, remote);
        assert_eq!(uploaded.size, content.len() as u64);
        assert_eq!(uploaded.checksum, xxhash_rust::xxh3::xxh3_64(&content));
        assert_eq!(
            storage.size(&remote).await.unwrap(),
            Some(content.len() as u64)
        );

        let state_file = StateFile {
            name: name.into(),
            path: remote.to_string(),
            size: uploaded.size,
            checksum: uploaded.checksum,
            shared: false,
        };
        let target = local.join(format!("{name}.restored"));
        storage
            .download_file(&location, &state_file, &target)
            .await
            .unwrap();
        assert!(std::fs::read(&target).unwrap() == content, "{name} differs");
    }

    let path = Path::from("xfer/notes");
    storage
        .put_bytes(&path, Bytes::from_static(b"abc"))
        .await
        .unwrap();
    assert_eq!(storage.get_bytes(&path).await.unwrap().as_ref(), b"abc");
    assert_eq!(
        listing(storage, "xfer").await,
        set([
            "xfer/chk-1/op-0/big".into(),
            "xfer/chk-1/op-0/small".into(),
            "xfer/notes".into()
        ])
    );
    storage.delete(&path).await.unwrap();
    storage.delete(&path).await.unwrap();
    assert_eq!(storage.size(&path).await.unwrap(), None);
    let error = storage.get_bytes(&path).await.unwrap_err();
    assert!(error.to_string().contains("xfer/notes"), "{error}");
}

async fn detects_corrupt_downloads(storage: &CheckpointStorage, local: &LocalPath) {
    let location = SnapshotLocation::checkpoint("corrupt", 4).unwrap();
    let file = local.join("state");
    std::fs::write(&file, b"some state").unwrap();
    let remote = location.dir().join("op-0").join("state");
    let uploaded = storage.upload_file(&file, &remote).await.unwrap();
    let good = StateFile {
        name: "state".into(),
        path: remote.to_string(),
        size: uploaded.size,
        checksum: uploaded.checksum,
        shared: false,
    };
    let target = local.join("restored");
    for (bad, what) in [
        (
            StateFile {
                checksum: good.checksum ^ 1,
                ..good.clone()
            },
            "xxh3",
        ),
        (
            StateFile {
                size: good.size + 1,
                ..good.clone()
            },
            "bytes",
        ),
    ] {
        let error = storage
            .download_file(&location, &bad, &target)
            .await
            .unwrap_err();
        assert!(
            matches!(error, CheckpointError::CorruptFile { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains(&storage.url_of(&remote)), "{message}");
        assert!(message.contains("corrupt/chk-4 is corrupt"), "{message}");
        assert!(message.contains(what), "{message}");
        assert!(!target.exists());
        assert!(!local.join("restored.partial").exists());
    }
    storage
        .download_file(&location, &good, &target)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"some state");
}

async fn skips_partial_checkpoints(storage: &CheckpointStorage, local: &LocalPath) {
    let job = "partial";
    let mut uploader = TaskSnapshotUploader::new(storage.clone(), job, "window", 0).unwrap();
    for id in 1..=5 {
        let uploaded = uploader
            .upload(
                &SnapshotTarget::Checkpoint(id),
                &snapshot(local, id, &["1.sst"]),
            )
            .await
            .unwrap();
        // Checkpoint 3 never completes: its files are there, its _metadata is not.
        if id != 3 {
            let meta = metadata(job, id, SnapshotKind::Checkpoint, &[uploaded.handle]);
            storage.write_metadata(&meta).await.unwrap();
        }
    }
    let location = |id| SnapshotLocation::checkpoint(job, id).unwrap();
    // Checkpoint 4's _metadata is cut short; checkpoint 5 lost a file.
    let truncated = storage
        .get_bytes(&location(4).metadata_path())
        .await
        .unwrap();
    storage
        .put_bytes(
            &location(4).metadata_path(),
            truncated.slice(..truncated.len() - 3),
        )
        .await
        .unwrap();
    storage
        .delete(&location(5).dir().join("window-0").join("MANIFEST"))
        .await
        .unwrap();

    let latest = storage.latest_completed(job).await.unwrap().unwrap();
    assert_eq!(latest.location, location(2));
    assert_eq!(latest.metadata.checkpoint_id, 2);

    for (id, expected) in [(3, "no _metadata"), (4, "truncated"), (5, "is missing")] {
        let error = storage
            .read_metadata(&location(id), true)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&storage.url_of(&location(id).dir())),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
    }
    // Without file checks, checkpoint 5's metadata itself is fine.
    storage.read_metadata(&location(5), false).await.unwrap();
    assert_eq!(
        storage.latest_completed("nothing-here").await.unwrap(),
        None
    );

    for spelling in [
        format!("{}/partial/chk-2/_metadata", storage.url()),
        format!("{}/partial/chk-2/", storage.url()),
        "partial/chk-2".to_string(),
    ] {
        assert_eq!(
            storage.resolve(&spelling).unwrap(),
            location(2),
            "{spelling}"
        );
    }
    for outside in ["s3://elsewhere/partial/chk-2", "partial/shared/x"] {
        assert!(storage.resolve(outside).is_err(), "{outside}");
    }
}

/// An incremental checkpoint sequence whose checkpoints share SSTs, retaining two: after every
/// step the store holds exactly what the retained checkpoints need.
async fn retains_incremental_checkpoints(storage: &CheckpointStorage, local: &LocalPath) {
    let job = "incremental";
    let mut store = CompletedCheckpointStore::new(storage.clone(), job, 2).unwrap();
    let mut uploader = TaskSnapshotUploader::new(storage.clone(), job, "window", 0).unwrap();
    let checkpoint = async |uploader: &mut TaskSnapshotUploader, id: u64, ssts: &[&str]| {
        let snapshot = snapshot(local, id, ssts);
        uploader
            .upload(&SnapshotTarget::Checkpoint(id), &snapshot)
            .await
            .unwrap()
    };
    let chk = |id: u64| format!("{job}/chk-{id}");
    let files_of = |id: u64| {
        [
            format!("{}/_metadata", chk(id)),
            format!("{}/window-0/MANIFEST", chk(id)),
        ]
    };

    let first = checkpoint(&mut uploader, 1, &["1.sst", "2.sst"]).await;
    assert_eq!(first.uploaded_files, ["1.sst", "2.sst", "MANIFEST"]);
    let shared = dir_of(&first.handle, "1.sst");
    assert!(
        shared.starts_with(&format!("{job}/shared/window-0-")),
        "{shared}"
    );
    let sst = |name: &str| format!("{shared}/{name}");
    store
        .add(metadata(job, 1, SnapshotKind::Checkpoint, &[first.handle]))
        .await
        .unwrap();
    uploader.notify_complete(1);
    let mut expected = set(files_of(1));
    expected.extend([sst("1.sst"), sst("2.sst")]);
    assert_eq!(listing(storage, job).await, expected);

    let second = checkpoint(&mut uploader, 2, &["1.sst", "2.sst", "3.sst"]).await;
    assert_eq!(second.uploaded_files, ["3.sst", "MANIFEST"]);
    assert_eq!(
        second.uploaded_bytes,
        (sst_content("3.sst").len()
            + "manifest of checkpoint 2: [\"1.sst\", \"2.sst\", \"3.sst\"]".len()) as u64
    );
    store
        .add(metadata(job, 2, SnapshotKind::Checkpoint, &[second.handle]))
        .await
        .unwrap();
    uploader.notify_complete(2);
    expected.extend(files_of(2));
    expected.insert(sst("3.sst"));
    assert_eq!(listing(storage, job).await, expected);

    // 1.sst was compacted away; checkpoint 1 is subsumed, 1.sst stays for checkpoint 2.
    let third = checkpoint(&mut uploader, 3, &["2.sst", "3.sst", "4.sst"]).await;
    assert_eq!(third.uploaded_files, ["4.sst", "MANIFEST"]);
    store
        .add(metadata(job, 3, SnapshotKind::Checkpoint, &[third.handle]))
        .await
        .unwrap();
    uploader.notify_complete(3);
    let mut expected = set(files_of(2));
    expected.extend(files_of(3));
    expected.extend(["1.sst", "2.sst", "3.sst", "4.sst"].map(sst));
    assert_eq!(listing(storage, job).await, expected);

    // Checkpoint 2 subsumed: 1.sst has no reference left; 2.sst and 3.sst are checkpoint 3's.
    let fourth = checkpoint(&mut uploader, 4, &["4.sst", "5.sst"]).await;
    assert_eq!(fourth.uploaded_files, ["5.sst", "MANIFEST"]);
    store
        .add(metadata(job, 4, SnapshotKind::Checkpoint, &[fourth.handle]))
        .await
        .unwrap();
    uploader.notify_complete(4);
    let mut expected = set(files_of(3));
    expected.extend([
        format!("{}/_metadata", chk(4)),
        format!("{}/window-0/MANIFEST", chk(4)),
    ]);
    expected.extend(["2.sst", "3.sst", "4.sst", "5.sst"].map(sst));
    assert_eq!(listing(storage, job).await, expected);
    let retained: Vec<u64> = store
        .retained()
        .map(|c| c.location.checkpoint_id())
        .collect();
    assert_eq!(retained, [3, 4]);

    // An aborted checkpoint leaves nothing behind, and does not become a base.
    let aborted = checkpoint(&mut uploader, 5, &["4.sst", "5.sst", "6.sst"]).await;
    assert_eq!(aborted.uploaded_files, ["6.sst", "MANIFEST"]);
    let mut states = metadata(job, 5, SnapshotKind::Checkpoint, &[aborted.handle]).states;
    // Even a handle naming a file of a retained checkpoint cannot make discarding delete it.
    if let Some(keyed) = states[0].keyed.as_mut() {
        keyed.files.push(StateFile {
            name: "MANIFEST-4".into(),
            path: format!("{}/window-0/MANIFEST", chk(4)),
            size: 1,
            checksum: 1,
            shared: false,
        });
    }
    store.discard_aborted(5, &states).await.unwrap();
    uploader.notify_aborted(5);
    assert_eq!(listing(storage, job).await, expected);

    // A JobMaster restart: the store comes back from the metadata files, and the restored task
    // (a new uploader, seeded from checkpoint 4) uploads only its new SST.
    let mut store = CompletedCheckpointStore::recover(storage.clone(), job, 2)
        .await
        .unwrap();
    let retained: Vec<u64> = store
        .retained()
        .map(|c| c.location.checkpoint_id())
        .collect();
    assert_eq!(retained, [3, 4]);
    let latest = store.latest().unwrap().clone();
    let restored_handle = latest.metadata.states[0].keyed.clone().unwrap();
    let restored = storage
        .download_keyed(&latest.location, &restored_handle, &local.join("restored"))
        .await
        .unwrap();
    assert_eq!(restored.files.len(), 3);
    for name in ["4.sst", "5.sst"] {
        assert_eq!(
            std::fs::read(restored.dir.join(name)).unwrap(),
            sst_content(name)
        );
    }
    let mut uploader = TaskSnapshotUploader::new(storage.clone(), job, "window", 0).unwrap();
    uploader.seed(&[restored_handle]);
    let sixth = checkpoint(&mut uploader, 6, &["4.sst", "5.sst", "7.sst"]).await;
    assert_eq!(sixth.uploaded_files, ["7.sst", "MANIFEST"]);
    let shared_after_restore = dir_of(&sixth.handle, "7.sst");
    assert_ne!(shared_after_restore, shared);
    store
        .add(metadata(job, 6, SnapshotKind::Checkpoint, &[sixth.handle]))
        .await
        .unwrap();
    uploader.notify_complete(6);
    let mut expected = set(files_of(4));
    expected.extend(files_of(6));
    expected.extend(["4.sst", "5.sst"].map(sst));
    expected.insert(format!("{shared_after_restore}/7.sst"));
    assert_eq!(listing(storage, job).await, expected);

    // A savepoint is self-contained and outside retention and sweeping.
    let savepoint = SnapshotLocation::new_savepoint(job, 7).unwrap();
    let saved = uploader
        .upload(
            &SnapshotTarget::Savepoint(savepoint.clone()),
            &snapshot(local, 7, &["4.sst", "7.sst"]),
        )
        .await
        .unwrap();
    assert_eq!(saved.uploaded_files, ["4.sst", "7.sst", "MANIFEST"]);
    assert!(saved.handle.files.iter().all(|f| !f.shared));
    let savepoint_meta = metadata(job, 7, SnapshotKind::Savepoint, &[saved.handle]);
    storage
        .write_savepoint(&savepoint, &savepoint_meta)
        .await
        .unwrap();
    let resolved = storage
        .resolve(&storage.url_of(&savepoint.metadata_path()))
        .unwrap();
    assert_eq!(resolved, savepoint);
    assert_eq!(
        storage.read_metadata(&resolved, true).await.unwrap(),
        stamped(savepoint_meta.clone())
    );
    let not_contained = metadata(
        job,
        7,
        SnapshotKind::Savepoint,
        &[store.latest().unwrap().metadata.states[0]
            .keyed
            .clone()
            .unwrap()],
    );
    let error = storage
        .write_savepoint(&savepoint, &not_contained)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("self-contained"), "{error}");

    // Orphans (a stray shared file, a partial checkpoint) are swept; the rest stays.
    let savepoint_files = listing(storage, &savepoint.to_string()).await;
    assert_eq!(savepoint_files.len(), 4);
    storage
        .put_bytes(&Path::from(sst("99.sst")), Bytes::from_static(b"stray"))
        .await
        .unwrap();
    checkpoint(&mut uploader, 8, &["4.sst"]).await;
    assert_eq!(store.sweep_orphans().await.unwrap(), 2);
    expected.extend(savepoint_files);
    assert_eq!(listing(storage, job).await, expected);

    storage.discard_savepoint(&savepoint).await.unwrap();
    assert!(listing(storage, &savepoint.to_string()).await.is_empty());
}

/// `metadata` as read back: with the format version the writer stamps.
fn stamped(mut metadata: CheckpointMetadata) -> CheckpointMetadata {
    metadata.format_version = METADATA_FORMAT_VERSION;
    metadata
}

/// Runs a scenario in a spawned task, as the worker and the JobMaster call the API: this fails
/// to compile if one of its futures is not `Send`.
async fn spawned(scenario: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(scenario).await.unwrap();
}

#[tokio::test]
async fn local_directory_transfers_files() {
    let dir = tempfile::tempdir().unwrap();
    spawned(async move { transfers_files(&local_storage(dir.path()).await, dir.path()).await })
        .await;
}

#[tokio::test]
async fn local_directory_detects_corrupt_downloads() {
    let dir = tempfile::tempdir().unwrap();
    spawned(async move {
        detects_corrupt_downloads(&local_storage(dir.path()).await, dir.path()).await
    })
    .await;
}

#[tokio::test]
async fn local_directory_skips_partial_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    spawned(async move {
        skips_partial_checkpoints(&local_storage(dir.path()).await, dir.path()).await
    })
    .await;
}

#[tokio::test]
async fn local_directory_retains_incremental_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    spawned(async move {
        retains_incremental_checkpoints(&local_storage(dir.path()).await, dir.path()).await
    })
    .await;
}

#[tokio::test]
async fn local_directory_from_a_plain_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("plain");
    let storage = CheckpointStorage::open(root.to_str().unwrap(), &options())
        .await
        .unwrap();
    assert_eq!(storage.url(), format!("file://{}", root.display()));
    storage
        .put_bytes(&Path::from("job/x"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert!(root.join("job/x").is_file());
    let absolute = format!("{}/job/chk-3/_metadata", root.display());
    assert_eq!(
        storage.resolve(&absolute).unwrap(),
        SnapshotLocation::checkpoint("job", 3).unwrap()
    );
}

/// Every scenario against one MinIO server (starting it takes a few seconds).
#[tokio::test]
async fn minio_s3_storage() {
    let Some(minio) = Minio::start() else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    let storage = minio.storage("checkpoints", options()).await;
    assert_eq!(storage.url(), "s3://spate/checkpoints");
    let step = |name: &str| local.path().join(name);
    for name in ["transfer", "corrupt", "partial", "incremental"] {
        std::fs::create_dir_all(step(name)).unwrap();
    }
    transfers_files(&storage, &step("transfer")).await;
    detects_corrupt_downloads(&storage, &step("corrupt")).await;
    skips_partial_checkpoints(&storage, &step("partial")).await;
    retains_incremental_checkpoints(&storage, &step("incremental")).await;
}
