//! The RocksDB backend: one database per operator instance in `<state dir>/db`, keys laid out as
//! in [`crate::key`], values in the stored form of [`crate::value`]. List appends are merges, so
//! they do not read the list. A snapshot is a native RocksDB checkpoint: memtables are flushed
//! and the live SST files hard-linked into `<state dir>/checkpoints/chk-<id>`, so unchanged SST
//! files keep their names from one checkpoint to the next and only new ones need uploading.

mod options;
mod restore;

use std::path::PathBuf;
use std::sync::Arc;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{DB, FlushOptions, ReadOptions, WriteBatch, WriteOptions};
use spate_api::{KeyGroupRange, KeyedSnapshot, StateBackendKind, StateContext, Timestamp};

use crate::backend::{
    KeyVisitor, KeyedStateBackend, ListView, MapVisitor, Registration, StateDescriptor, StateId,
    StateKind, check_group,
};
use crate::error::{Result, StateError};
use crate::key::{self, Key, MAP_SLOT, group_bytes};
use crate::timers::{TIMERS_FILE, TimerService};
use crate::ttl::{self, Clock};
use crate::value::{self, Cleaned};
use crate::varint;

pub(crate) use restore::for_each_stored_entry;

/// Keyed state in an embedded RocksDB.
pub struct RocksDbBackend {
    db: DB,
    dir: PathBuf,
    db_path: PathBuf,
    key_groups: KeyGroupRange,
    max_parallelism: u32,
    clock: Arc<dyn Clock>,
    states: Vec<Registration>,
    timers: TimerService,
    restored_shared_files: Vec<String>,
    write: WriteOptions,
    /// Reused for the stored key of each access.
    key_buf: Vec<u8>,
    /// Reused for each stored value written.
    value_buf: Vec<u8>,
    /// Holds the last value read, so that reads can lend it out.
    read_buf: Vec<u8>,
}

impl std::fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbBackend")
            .field("db_path", &self.db_path)
            .field("key_groups", &self.key_groups)
            .finish_non_exhaustive()
    }
}

impl RocksDbBackend {
    /// Opens an instance's database in `ctx.dir/db`, restoring the key groups of
    /// `ctx.key_groups` from `ctx.restored` (snapshots of either backend). A working database
    /// left from an earlier run is discarded: without a WAL it is not consistent, and the
    /// checkpoint is the truth.
    pub fn open(ctx: &StateContext, max_parallelism: u32, clock: Arc<dyn Clock>) -> Result<Self> {
        crate::restore::check_context(ctx, max_parallelism)?;
        if ctx.dir.as_os_str().is_empty() {
            return Err(StateError::Invalid(
                "the RocksDB state backend needs a state directory".into(),
            ));
        }
        let db_path = ctx.dir.join("db");
        if db_path.exists() {
            std::fs::remove_dir_all(&db_path).map_err(StateError::io("remove", &db_path))?;
        }
        std::fs::create_dir_all(&ctx.dir).map_err(StateError::io("create", &ctx.dir))?;

        let mut timers = TimerService::new(ctx.key_groups);
        let snapshots = crate::restore::overlapping(ctx);
        for snapshot in &snapshots {
            crate::restore::restore_timers(snapshot, &mut timers, max_parallelism)?;
        }
        let db_options = options::db_options(&clock);
        let write = options::write_options();
        let linked = restore::linkable(&snapshots, ctx.key_groups);
        if let Some(snapshot) = linked {
            restore::link_files(snapshot, &db_path)?;
        }
        let db = DB::open(&db_options, &db_path).map_err(StateError::rocksdb("open", &db_path))?;
        if linked.is_none() {
            for snapshot in &snapshots {
                restore::copy_into(
                    &db,
                    &db_path,
                    &write,
                    snapshot,
                    ctx.key_groups,
                    max_parallelism,
                    &clock,
                )?;
            }
        }
        let restored_shared_files = linked
            .iter()
            .flat_map(|snapshot| &snapshot.files)
            .filter(|file| file.shared)
            .map(|file| file.name.clone())
            .collect();
        Ok(RocksDbBackend {
            db,
            dir: ctx.dir.clone(),
            db_path,
            key_groups: ctx.key_groups,
            max_parallelism,
            clock,
            states: Vec::new(),
            timers,
            restored_shared_files,
            write,
            key_buf: Vec::with_capacity(64),
            value_buf: Vec::with_capacity(64),
            read_buf: Vec::with_capacity(64),
        })
    }

    fn rocksdb_error(&self, action: &'static str) -> impl FnOnce(rocksdb::Error) -> StateError {
        StateError::rocksdb(action, &self.db_path)
    }

    /// Deletes the stored keys in `[lower, upper)`, one by one: a range tombstone per cleared
    /// map would slow every later read of the range.
    fn delete_range(&self, lower: &[u8], upper: Vec<u8>) -> Result<()> {
        let mut read = ReadOptions::default();
        read.set_iterate_upper_bound(upper);
        let mut iter = self.db.raw_iterator_opt(read);
        iter.seek(lower);
        let mut batch = WriteBatch::default();
        while let Some(stored_key) = iter.key() {
            batch.delete(stored_key);
            iter.next();
        }
        iter.status().map_err(self.rocksdb_error("iterate"))?;
        self.write_batch(batch)
    }

    fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.db
            .write_opt(batch, &self.write)
            .map_err(self.rocksdb_error("write"))
    }
}

fn registration(
    states: &[Registration],
    state: StateId,
    kind: Option<StateKind>,
) -> Result<&Registration> {
    let registration = states
        .get(state.0 as usize)
        .ok_or(StateError::UnknownState(state.0))?;
    match kind {
        Some(kind) => registration.require(kind),
        None => Ok(registration),
    }
}

/// Reads `stored_key` into `into`; `false` if it is absent.
fn read_into(
    db: &DB,
    stored_key: &[u8],
    into: &mut Vec<u8>,
    db_path: &std::path::Path,
) -> Result<bool> {
    match db
        .get_pinned(stored_key)
        .map_err(StateError::rocksdb("read", db_path))?
    {
        Some(stored) => {
            into.clear();
            into.extend_from_slice(&stored);
            Ok(true)
        }
        None => Ok(false),
    }
}

impl RocksDbBackend {
    /// Reads a single value (of a value state, or a map entry) whose stored key is in `key_buf`,
    /// refreshing its expiry if its state asks for that.
    fn read_single(&mut self, registration_index: usize) -> Result<Option<&[u8]>> {
        let registration = &self.states[registration_index];
        if !read_into(&self.db, &self.key_buf, &mut self.read_buf, &self.db_path)? {
            return Ok(None);
        }
        let header = value::value_header(&self.read_buf).map_err(|r| registration.corrupt(r))?;
        if let Some(expires_at) = header.expires_at {
            if self.clock.now() >= expires_at {
                return Ok(None);
            }
            if let Some(to) = ttl::read_refresh(registration.ttl, &*self.clock) {
                value::set_expiry(&mut self.read_buf, to);
                self.db
                    .put_opt(&self.key_buf, &self.read_buf, &self.write)
                    .map_err(StateError::rocksdb("write", &self.db_path))?;
            }
        }
        Ok(Some(&self.read_buf[header.payload_start..]))
    }

    /// Writes a single value to the stored key in `key_buf`.
    fn write_single(&mut self, ttl: Option<ttl::Ttl>, payload: &[u8]) -> Result<()> {
        self.value_buf.clear();
        value::write_value(&mut self.value_buf, ttl::expiry(ttl, &*self.clock), payload);
        self.db
            .put_opt(&self.key_buf, &self.value_buf, &self.write)
            .map_err(StateError::rocksdb("write", &self.db_path))
    }

    fn delete_single(&mut self) -> Result<()> {
        self.db
            .delete_opt(&self.key_buf, &self.write)
            .map_err(StateError::rocksdb("delete", &self.db_path))
    }

    /// Checks the key and the state, and returns the state's registration index.
    fn address(&self, state: StateId, kind: Option<StateKind>, key: Key<'_>) -> Result<usize> {
        check_group(self.key_groups, key)?;
        registration(&self.states, state, kind)?;
        Ok(state.0 as usize)
    }
}

impl KeyedStateBackend for RocksDbBackend {
    fn kind(&self) -> StateBackendKind {
        StateBackendKind::RocksDb
    }

    fn key_groups(&self) -> KeyGroupRange {
        self.key_groups
    }

    fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn register(&mut self, descriptor: &StateDescriptor, kind: StateKind) -> Result<StateId> {
        if let Some(index) = self.states.iter().position(|s| s.name == descriptor.name()) {
            self.states[index].check_same(descriptor, kind)?;
            return Ok(StateId(index as u32));
        }
        self.states.push(Registration::new(descriptor, kind)?);
        Ok(StateId(self.states.len() as u32 - 1))
    }

    fn get(&mut self, state: StateId, key: Key<'_>) -> Result<Option<&[u8]>> {
        let index = self.address(state, Some(StateKind::Value), key)?;
        let part = &self.states[index].state_part;
        key::write_value_key(&mut self.key_buf, key.group(), part, key.bytes());
        self.read_single(index)
    }

    fn put(&mut self, state: StateId, key: Key<'_>, value: &[u8]) -> Result<()> {
        let index = self.address(state, Some(StateKind::Value), key)?;
        let registration = &self.states[index];
        key::write_value_key(
            &mut self.key_buf,
            key.group(),
            &registration.state_part,
            key.bytes(),
        );
        let ttl = registration.ttl;
        self.write_single(ttl, value)
    }

    fn get_list(&mut self, state: StateId, key: Key<'_>) -> Result<Option<ListView<'_>>> {
        let index = self.address(state, Some(StateKind::List), key)?;
        let registration = &self.states[index];
        key::write_value_key(
            &mut self.key_buf,
            key.group(),
            &registration.state_part,
            key.bytes(),
        );
        if !read_into(&self.db, &self.key_buf, &mut self.read_buf, &self.db_path)? {
            return Ok(None);
        }
        let refresh = ttl::read_refresh(registration.ttl, &*self.clock);
        let cleaned = value::clean(&self.read_buf, self.clock.now(), refresh)
            .map_err(|r| registration.corrupt(r))?;
        match cleaned {
            Cleaned::Keep => {}
            Cleaned::Rewrite(list) => {
                // Also collapses the merge operands into one value.
                self.db
                    .put_opt(&self.key_buf, &list, &self.write)
                    .map_err(StateError::rocksdb("write", &self.db_path))?;
                self.read_buf = list;
            }
            Cleaned::Drop => {
                self.delete_single()?;
                return Ok(None);
            }
        }
        Ok(Some(ListView::new(&self.read_buf)))
    }

    fn append(&mut self, state: StateId, key: Key<'_>, element: &[u8]) -> Result<()> {
        let index = self.address(state, Some(StateKind::List), key)?;
        let registration = &self.states[index];
        key::write_value_key(
            &mut self.key_buf,
            key.group(),
            &registration.state_part,
            key.bytes(),
        );
        self.value_buf.clear();
        value::start_list(&mut self.value_buf);
        let expires_at = ttl::expiry(registration.ttl, &*self.clock);
        value::push_element(&mut self.value_buf, expires_at, element);
        self.db
            .merge_opt(&self.key_buf, &self.value_buf, &self.write)
            .map_err(StateError::rocksdb("merge", &self.db_path))
    }

    fn put_list(
        &mut self,
        state: StateId,
        key: Key<'_>,
        elements: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()> {
        let index = self.address(state, Some(StateKind::List), key)?;
        let registration = &self.states[index];
        key::write_value_key(
            &mut self.key_buf,
            key.group(),
            &registration.state_part,
            key.bytes(),
        );
        let expires_at = ttl::expiry(registration.ttl, &*self.clock);
        self.value_buf.clear();
        value::start_list(&mut self.value_buf);
        let mut any = false;
        for element in elements {
            value::push_element(&mut self.value_buf, expires_at, element);
            any = true;
        }
        if !any {
            return self.delete_single();
        }
        self.db
            .put_opt(&self.key_buf, &self.value_buf, &self.write)
            .map_err(StateError::rocksdb("write", &self.db_path))
    }

    fn map_get(&mut self, state: StateId, key: Key<'_>, user_key: &[u8]) -> Result<Option<&[u8]>> {
        let index = self.address(state, Some(StateKind::Map), key)?;
        let part = &self.states[index].state_part;
        key::write_map_key(&mut self.key_buf, key.group(), part, key.bytes(), user_key);
        self.read_single(index)
    }

    fn map_put(
        &mut self,
        state: StateId,
        key: Key<'_>,
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let index = self.address(state, Some(StateKind::Map), key)?;
        let registration = &self.states[index];
        let part = &registration.state_part;
        key::write_map_key(&mut self.key_buf, key.group(), part, key.bytes(), user_key);
        let ttl = registration.ttl;
        self.write_single(ttl, value)
    }

    fn map_remove(&mut self, state: StateId, key: Key<'_>, user_key: &[u8]) -> Result<()> {
        let index = self.address(state, Some(StateKind::Map), key)?;
        let part = &self.states[index].state_part;
        key::write_map_key(&mut self.key_buf, key.group(), part, key.bytes(), user_key);
        self.delete_single()
    }

    fn map_visit(
        &mut self,
        state: StateId,
        key: Key<'_>,
        visit: &mut MapVisitor<'_>,
    ) -> Result<()> {
        let index = self.address(state, Some(StateKind::Map), key)?;
        let registration = &self.states[index];
        key::write_key_prefix(
            &mut self.key_buf,
            key.group(),
            &registration.state_part,
            key.bytes(),
        );
        self.key_buf.push(MAP_SLOT);
        let prefix_len = self.key_buf.len();
        let mut upper = self.key_buf.clone();
        upper[prefix_len - 1] = MAP_SLOT + 1;
        let mut read = ReadOptions::default();
        read.set_iterate_upper_bound(upper);

        let refresh = ttl::read_refresh(registration.ttl, &*self.clock);
        let mut now = None;
        let mut batch = WriteBatch::default();
        let mut iter = self.db.raw_iterator_opt(read);
        iter.seek(&self.key_buf);
        while let Some((stored_key, stored)) = iter.item() {
            let header = value::value_header(stored).map_err(|r| registration.corrupt(r))?;
            if let Some(expires_at) = header.expires_at {
                if *now.get_or_insert_with(|| self.clock.now()) >= expires_at {
                    batch.delete(stored_key);
                    iter.next();
                    continue;
                }
                if let Some(to) = refresh {
                    let mut refreshed = stored.to_vec();
                    value::set_expiry(&mut refreshed, to);
                    batch.put(stored_key, refreshed);
                }
            }
            let flow = visit(&stored_key[prefix_len..], &stored[header.payload_start..])?;
            if flow.is_break() {
                break;
            }
            iter.next();
        }
        iter.status().map_err(self.rocksdb_error("iterate"))?;
        drop(iter);
        self.write_batch(batch)
    }

    fn clear(&mut self, state: StateId, key: Key<'_>) -> Result<()> {
        let index = self.address(state, None, key)?;
        let registration = &self.states[index];
        if registration.kind != StateKind::Map {
            let part = &registration.state_part;
            key::write_value_key(&mut self.key_buf, key.group(), part, key.bytes());
            return self.delete_single();
        }
        key::write_key_prefix(
            &mut self.key_buf,
            key.group(),
            &registration.state_part,
            key.bytes(),
        );
        self.key_buf.push(MAP_SLOT);
        let mut upper = self.key_buf.clone();
        if let Some(last) = upper.last_mut() {
            *last = MAP_SLOT + 1;
        }
        self.delete_range(&self.key_buf, upper)
    }

    fn visit_keys(&mut self, state: StateId, visit: &mut KeyVisitor<'_>) -> Result<()> {
        let registration = registration(&self.states, state, None)?;
        let now = self.clock.now();
        let mut read = ReadOptions::default();
        read.set_iterate_upper_bound(group_bytes(self.key_groups.end).to_vec());
        let mut iter = self.db.raw_iterator_opt(read);
        let mut batch = WriteBatch::default();
        let mut prefix = Vec::new();
        let mut visited = Vec::new();
        'groups: for group in self.key_groups.start..self.key_groups.end {
            key::write_state_prefix(&mut prefix, group, &registration.state_part);
            iter.seek(&prefix);
            let mut any_visited = false;
            while let Some((stored_key, stored)) = iter.item() {
                let Some(rest) = stored_key.strip_prefix(prefix.as_slice()) else {
                    break;
                };
                let (key_bytes, _) = varint::split_field(rest)
                    .ok_or_else(|| registration.corrupt("a stored key that does not decode"))?;
                let live = match value::clean(stored, now, None) {
                    Ok(Cleaned::Drop) => false,
                    Ok(_) => true,
                    Err(reason) => return Err(registration.corrupt(reason)),
                };
                if !live {
                    batch.delete(stored_key);
                } else if !any_visited || visited != key_bytes {
                    any_visited = true;
                    visited.clear();
                    visited.extend_from_slice(key_bytes);
                    if visit(Key::with_group(group, key_bytes))?.is_break() {
                        break 'groups;
                    }
                }
                iter.next();
            }
        }
        iter.status().map_err(self.rocksdb_error("iterate"))?;
        drop(iter);
        self.write_batch(batch)
    }

    fn timers(&mut self) -> &mut TimerService {
        &mut self.timers
    }

    fn snapshot(&mut self, checkpoint_id: u64) -> Result<KeyedSnapshot> {
        let dir = crate::local::fresh_checkpoint_dir(&self.dir, checkpoint_id)?;
        let mut flush = FlushOptions::default();
        flush.set_wait(true);
        self.db
            .flush_opt(&flush)
            .map_err(self.rocksdb_error("flush"))?;
        Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(&dir))
            .map_err(StateError::rocksdb("create checkpoint", &dir))?;
        self.timers
            .write_snapshot(&dir.join(TIMERS_FILE), self.max_parallelism)?;
        Ok(KeyedSnapshot {
            backend: StateBackendKind::RocksDb,
            key_groups: self.key_groups,
            files: crate::local::list_files(&dir)?,
            dir,
        })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        crate::local::release_older_than(&self.dir, checkpoint_id)
    }

    fn restored_shared_files(&self) -> &[String] {
        &self.restored_shared_files
    }
}
