//! The slow disk is a real filesystem: what RocksDB, the file sink and the recovery copies do on
//! it (create, write, fsync, rename, hard link, truncate, list, remove) works and lands in the
//! backing directory, and a slowed disk makes each sync wait at least its delay.

#![cfg(target_os = "linux")]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use spate_testkit::SlowDisk;

/// Mounting needs root and /dev/fuse: CI has both and must mount; elsewhere the test says why
/// it does nothing.
fn mounted(backing: &std::path::Path) -> Option<SlowDisk> {
    match SlowDisk::mount(backing) {
        Ok(disk) => Some(disk),
        Err(e) if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!("{e}"),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

#[test]
fn files_written_through_the_slow_disk_behave_as_on_any_disk() {
    let backing = tempfile::tempdir().unwrap();
    let Some(disk) = mounted(backing.path()) else {
        return;
    };
    let dir = disk.path().join("db");
    fs::create_dir(&dir).unwrap();
    let mut file = File::create(dir.join("000001.log")).unwrap();
    file.write_all(b"first ").unwrap();
    file.write_all(b"second").unwrap();
    file.sync_all().unwrap();
    drop(file);

    let mut appended = OpenOptions::new()
        .append(true)
        .open(dir.join("000001.log"))
        .unwrap();
    appended.write_all(b" third").unwrap();
    appended.sync_data().unwrap();
    drop(appended);
    assert_eq!(
        fs::read_to_string(backing.path().join("db/000001.log")).unwrap(),
        "first second third"
    );

    fs::rename(dir.join("000001.log"), dir.join("000002.sst")).unwrap();
    fs::hard_link(dir.join("000002.sst"), dir.join("linked.sst")).unwrap();
    fs::remove_file(dir.join("000002.sst")).unwrap();
    // The hard link outlives the name it was made from, as RocksDB's checkpoints rely on.
    let mut linked = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("linked.sst"))
        .unwrap();
    linked.set_len(5).unwrap();
    linked.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    linked.read_to_string(&mut text).unwrap();
    assert_eq!(text, "first");
    assert_eq!(fs::metadata(dir.join("linked.sst")).unwrap().len(), 5);

    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["linked.sst"]);
    fs::remove_dir_all(&dir).unwrap();
    assert!(!backing.path().join("db").exists());
}

#[test]
fn a_slowed_disk_makes_each_sync_wait_its_delay_and_heals() {
    let backing = tempfile::tempdir().unwrap();
    let Some(disk) = mounted(backing.path()) else {
        return;
    };
    let delay = Duration::from_millis(200);
    disk.slow_down(delay);
    let mut file = File::create(disk.path().join("slow")).unwrap();
    let started = Instant::now();
    file.write_all(b"x").unwrap();
    file.sync_all().unwrap();
    // A lower bound only: a write and a sync each waited the delay.
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
    disk.heal();
    file.write_all(b"y").unwrap();
    file.sync_all().unwrap();
    assert_eq!(fs::read(backing.path().join("slow")).unwrap(), b"xy");
}
