//! The heap snapshot format: a full copy of keyed state as a sequence of entries, each with its
//! key group so that a restore keeps only the key groups it owns. The heap backend, the timers of
//! both backends and operators with their own in-memory state (window panes) write it.
//!
//! ```text
//! header   "SPATEHS\0" | version: u32 LE | max parallelism: u32 LE
//! records  STATE(1) name            -- the state of the entries that follow
//!          VALUE(2) group key value -- group: u16 BE; key, value: varint length + bytes
//!          MAP(3)   group key user_key value
//!          END(0)   entry count: u64 LE
//! trailer  xxh3-64 of everything before it: u64 LE
//! ```
//!
//! A reader verifies the checksum over the whole file before it returns the first entry, so a
//! damaged file is refused before any of it is applied.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3Default;

use crate::error::{Result, StateError};
use crate::varint;

const MAGIC: &[u8; 8] = b"SPATEHS\0";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const TRAILER_LEN: u64 = 8;
const END: u8 = 0;
const STATE: u8 = 1;
const VALUE: u8 = 2;
const MAP: u8 = 3;

/// One entry of keyed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotEntry<'a> {
    pub key_group: u32,
    pub state: &'a str,
    pub key: &'a [u8],
    /// The user key of a map entry (or any second-level key, such as a window); `None` for a
    /// key's single value.
    pub user_key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Writes a heap snapshot file. Entries of one state should be written together: the state name
/// is written again each time it changes.
pub struct HeapSnapshotWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hasher: Xxh3Default,
    max_parallelism: u32,
    state: Option<String>,
    entries: u64,
    len: u64,
    record: Vec<u8>,
}

impl std::fmt::Debug for HeapSnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapSnapshotWriter")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl HeapSnapshotWriter {
    pub fn create(path: &Path, max_parallelism: u32) -> Result<Self> {
        let file = File::create(path).map_err(StateError::io("create", path))?;
        let mut writer = HeapSnapshotWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
            hasher: Xxh3Default::new(),
            max_parallelism,
            state: None,
            entries: 0,
            len: 0,
            record: Vec::with_capacity(256),
        };
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&max_parallelism.to_le_bytes());
        writer.emit(&header)?;
        Ok(writer)
    }

    pub fn write(&mut self, entry: &SnapshotEntry<'_>) -> Result<()> {
        let group = u16::try_from(entry.key_group)
            .ok()
            .filter(|_| entry.key_group < self.max_parallelism)
            .ok_or_else(|| {
                StateError::Invalid(format!(
                    "key group {} of state '{}' is not below the max parallelism {} of snapshot {}",
                    entry.key_group,
                    entry.state,
                    self.max_parallelism,
                    self.path.display()
                ))
            })?;
        let mut record = std::mem::take(&mut self.record);
        record.clear();
        if self.state.as_deref() != Some(entry.state) {
            record.push(STATE);
            put_field(&mut record, entry.state.as_bytes());
            self.state = Some(entry.state.to_string());
        }
        record.push(if entry.user_key.is_some() { MAP } else { VALUE });
        record.extend_from_slice(&group.to_be_bytes());
        put_field(&mut record, entry.key);
        if let Some(user_key) = entry.user_key {
            put_field(&mut record, user_key);
        }
        put_field(&mut record, entry.value);
        let written = self.emit(&record);
        self.record = record;
        self.entries += 1;
        written
    }

    /// Ends the file; returns its size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        let mut end = vec![END];
        end.extend_from_slice(&self.entries.to_le_bytes());
        self.emit(&end)?;
        let checksum = self.hasher.digest().to_le_bytes();
        self.out
            .write_all(&checksum)
            .and_then(|()| self.out.flush())
            .map_err(StateError::io("write", &self.path))?;
        Ok(self.len + TRAILER_LEN)
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(StateError::io("write", &self.path))
    }
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    varint::put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a heap snapshot file, checksum first.
#[derive(Debug)]
pub struct HeapSnapshotReader {
    source: Source,
    max_parallelism: u32,
    state: String,
    key: Vec<u8>,
    user_key: Vec<u8>,
    value: Vec<u8>,
    entries: u64,
    ended: bool,
}

impl HeapSnapshotReader {
    /// Opens `path` and verifies its header and checksum; errors name the file.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(StateError::io("open", path))?;
        let len = file
            .metadata()
            .map_err(StateError::io("inspect", path))?
            .len();
        if len < HEADER_LEN + 9 + TRAILER_LEN {
            return Err(StateError::corrupt(
                path,
                format!("{len} bytes is too short for a heap snapshot"),
            ));
        }
        verify_checksum(&mut file, path, len - TRAILER_LEN)?;
        file.seek(SeekFrom::Start(0))
            .map_err(StateError::io("read", path))?;
        let mut source = Source {
            input: BufReader::with_capacity(1 << 16, file),
            remaining: len - TRAILER_LEN,
            path: path.to_path_buf(),
        };
        let mut header = [0u8; HEADER_LEN as usize];
        source.read_exact(&mut header)?;
        if &header[..8] != MAGIC {
            return Err(StateError::corrupt(path, "not a heap snapshot (bad magic)"));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(StateError::corrupt(
                path,
                format!("format version {version}; this build reads version {VERSION}"),
            ));
        }
        Ok(HeapSnapshotReader {
            source,
            max_parallelism: u32::from_le_bytes([header[12], header[13], header[14], header[15]]),
            state: String::new(),
            key: Vec::new(),
            user_key: Vec::new(),
            value: Vec::new(),
            entries: 0,
            ended: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.source.path
    }

    /// The max parallelism (number of key groups) of the job that wrote the file.
    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    /// Refuses a snapshot written with another number of key groups: its key groups would mean
    /// other keys.
    pub fn expect_max_parallelism(&self, max_parallelism: u32) -> Result<()> {
        if self.max_parallelism == max_parallelism {
            Ok(())
        } else {
            Err(StateError::corrupt(
                self.path(),
                format!(
                    "written with max parallelism {}, restored with {max_parallelism}; the max \
                     parallelism of a stateful job cannot change",
                    self.max_parallelism
                ),
            ))
        }
    }

    /// The next entry, or `None` after the last.
    pub fn next_entry(&mut self) -> Result<Option<SnapshotEntry<'_>>> {
        while !self.ended {
            match self.source.read_u8()? {
                STATE => {
                    self.source.read_field(&mut self.key)?;
                    self.state = String::from_utf8(std::mem::take(&mut self.key))
                        .map_err(|_| self.source.corrupt("a state name that is not UTF-8"))?;
                }
                tag @ (VALUE | MAP) => {
                    if self.state.is_empty() {
                        return Err(self.source.corrupt("an entry before any state name"));
                    }
                    let mut group = [0u8; 2];
                    self.source.read_exact(&mut group)?;
                    let key_group = u32::from(u16::from_be_bytes(group));
                    if key_group >= self.max_parallelism {
                        return Err(self.source.corrupt(format!(
                            "key group {key_group} is not below the max parallelism {}",
                            self.max_parallelism
                        )));
                    }
                    self.source.read_field(&mut self.key)?;
                    if tag == MAP {
                        self.source.read_field(&mut self.user_key)?;
                    }
                    self.source.read_field(&mut self.value)?;
                    self.entries += 1;
                    return Ok(Some(SnapshotEntry {
                        key_group,
                        state: &self.state,
                        key: &self.key,
                        user_key: (tag == MAP).then_some(self.user_key.as_slice()),
                        value: &self.value,
                    }));
                }
                END => {
                    let mut count = [0u8; 8];
                    self.source.read_exact(&mut count)?;
                    let count = u64::from_le_bytes(count);
                    if count != self.entries || self.source.remaining != 0 {
                        return Err(self.source.corrupt(format!(
                            "the end record counts {count} entries, {} were read, {} bytes follow",
                            self.entries, self.source.remaining
                        )));
                    }
                    self.ended = true;
                }
                other => {
                    return Err(self.source.corrupt(format!("unknown record type {other}")));
                }
            }
        }
        Ok(None)
    }
}

fn verify_checksum(file: &mut File, path: &Path, body_len: u64) -> Result<()> {
    let mut hasher = Xxh3Default::new();
    let mut body = (&mut *file).take(body_len);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = body
            .read(&mut chunk)
            .map_err(StateError::io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.read_exact(&mut trailer)
        .map_err(StateError::io("read", path))?;
    let (expected, actual) = (u64::from_le_bytes(trailer), hasher.digest());
    if expected != actual {
        return Err(StateError::corrupt(
            path,
            format!("checksum mismatch (stored {expected:016x}, computed {actual:016x})"),
        ));
    }
    Ok(())
}

/// The records of a file, bounded by where its trailer starts.
#[derive(Debug)]
struct Source {
    input: BufReader<File>,
    remaining: u64,
    path: PathBuf,
}

impl Source {
    fn corrupt(&self, reason: impl Into<String>) -> StateError {
        StateError::corrupt(&self.path, reason)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        if (buf.len() as u64) > self.remaining {
            return Err(self.corrupt("a record runs past the end of the file"));
        }
        self.input
            .read_exact(buf)
            .map_err(StateError::io("read", &self.path))?;
        self.remaining -= buf.len() as u64;
        Ok(())
    }

    fn read_u8(&mut self) -> Result<u8> {
        let mut byte = [0u8];
        self.read_exact(&mut byte)?;
        Ok(byte[0])
    }

    fn read_varint(&mut self) -> Result<u64> {
        let mut bytes = Vec::with_capacity(10);
        loop {
            let byte = self.read_u8()?;
            bytes.push(byte);
            if byte & 0x80 == 0 || bytes.len() == 10 {
                break;
            }
        }
        varint::get(&bytes)
            .map(|(value, _)| value)
            .ok_or_else(|| self.corrupt("a malformed length"))
    }

    fn read_field(&mut self, into: &mut Vec<u8>) -> Result<()> {
        let len = self.read_varint()?;
        if len > self.remaining {
            return Err(self.corrupt(format!("a field of {len} bytes runs past the end")));
        }
        into.clear();
        into.resize(len as usize, 0);
        self.read_exact(into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key group, state, key, user key, value.
    type Entry = (u32, &'static str, Vec<u8>, Option<Vec<u8>>, Vec<u8>);

    fn entries() -> Vec<Entry> {
        vec![
            (0, "a", b"k1".to_vec(), None, b"v1".to_vec()),
            (3, "a", b"".to_vec(), Some(b"u".to_vec()), vec![0; 300]),
            (3, "b", b"k2".to_vec(), Some(b"".to_vec()), b"".to_vec()),
        ]
    }

    fn write(path: &Path) -> u64 {
        let mut writer = HeapSnapshotWriter::create(path, 4).unwrap();
        for (group, state, key, user_key, value) in &entries() {
            writer
                .write(&SnapshotEntry {
                    key_group: *group,
                    state,
                    key,
                    user_key: user_key.as_deref(),
                    value,
                })
                .unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn entries_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let size = write(&path);
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        let mut reader = HeapSnapshotReader::open(&path).unwrap();
        assert_eq!(reader.max_parallelism(), 4);
        let mut read = Vec::new();
        while let Some(e) = reader.next_entry().unwrap() {
            read.push((
                e.key_group,
                e.state.to_string(),
                e.key.to_vec(),
                e.user_key.map(<[u8]>::to_vec),
                e.value.to_vec(),
            ));
        }
        let expected: Vec<_> = entries()
            .into_iter()
            .map(|(g, s, k, u, v)| (g, s.to_string(), k, u, v))
            .collect();
        assert_eq!(read, expected);
        assert!(reader.next_entry().unwrap().is_none());
    }

    fn read_all(path: &Path) -> Result<()> {
        let mut reader = HeapSnapshotReader::open(path)?;
        while reader.next_entry()?.is_some() {}
        Ok(())
    }

    #[test]
    fn every_flipped_byte_is_refused_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        write(&path);
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let err = read_all(&path).unwrap_err();
            assert!(err.to_string().contains("s.snap"), "byte {i}: {err}");
        }
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(HeapSnapshotReader::open(&path).is_err());
    }

    #[test]
    fn key_groups_beyond_the_max_parallelism_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = HeapSnapshotWriter::create(&dir.path().join("s"), 4).unwrap();
        let entry = SnapshotEntry {
            key_group: 4,
            state: "a",
            key: b"",
            user_key: None,
            value: b"",
        };
        assert!(writer.write(&entry).is_err());
    }
}
