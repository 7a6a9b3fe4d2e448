//! The heap backend: state in hash maps, one per state and key group, so that a snapshot can
//! walk key groups in order and a lookup hashes the key once. Map state keeps each key's entries
//! in a `BTreeMap`, ordered by user key like RocksDB's. Snapshots are full copies in the heap
//! snapshot format.

pub mod snapshot;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use spate_api::{KeyGroupRange, KeyedSnapshot, StateBackendKind, StateContext, Timestamp};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::backend::{
    KeyVisitor, KeyedStateBackend, ListView, MapVisitor, Registration, StateDescriptor, StateId,
    StateKind, check_group,
};
use crate::error::{Result, StateError};
use crate::key::Key;
use crate::restore;
use crate::timers::{TIMERS_FILE, TimerService};
use crate::ttl::{self, Clock};
use crate::value::{self, Cleaned, Corrupt};
use snapshot::{HeapSnapshotWriter, SnapshotEntry};

/// The file of a heap snapshot that holds the state (its timers are in their own file).
pub(crate) const STATE_FILE: &str = "state.snap";

type Table = HashMap<Box<[u8]>, Slot, Xxh3DefaultBuilder>;

/// Everything one state holds for one key. A `BTreeMap` does not allocate until its first entry,
/// so value and list states pay nothing for the map.
#[derive(Debug, Default)]
struct Slot {
    value: Option<Vec<u8>>,
    map: BTreeMap<Box<[u8]>, Vec<u8>>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.map.is_empty()
    }

    /// Drops what expired by `now`.
    fn clean(&mut self, now: Timestamp) -> Result<(), Corrupt> {
        if let Some(stored) = &mut self.value {
            match value::clean(stored, now, None)? {
                Cleaned::Keep => {}
                Cleaned::Rewrite(cleaned) => *stored = cleaned,
                Cleaned::Drop => self.value = None,
            }
        }
        let mut corrupt = None;
        self.map
            .retain(|_, stored| match value::value_header(stored) {
                Ok(header) => header.is_live(now),
                Err(reason) => {
                    corrupt = Some(reason);
                    true
                }
            });
        corrupt.map_or(Ok(()), Err)
    }
}

/// A state: registered by the operator, or restored and not registered (yet).
#[derive(Debug)]
struct HeapState {
    name: String,
    registration: Option<Registration>,
    /// One table per key group of the instance.
    groups: Vec<Table>,
}

/// Keyed state in memory.
#[derive(Debug)]
pub struct HeapBackend {
    dir: PathBuf,
    key_groups: KeyGroupRange,
    max_parallelism: u32,
    clock: Arc<dyn Clock>,
    states: Vec<HeapState>,
    timers: TimerService,
}

impl HeapBackend {
    /// Opens an instance's heap state, restoring the key groups of `ctx.key_groups` from
    /// `ctx.restored` (snapshots of either backend).
    pub fn open(ctx: &StateContext, max_parallelism: u32, clock: Arc<dyn Clock>) -> Result<Self> {
        restore::check_context(ctx, max_parallelism)?;
        let mut backend = HeapBackend {
            dir: ctx.dir.clone(),
            key_groups: ctx.key_groups,
            max_parallelism,
            clock: clock.clone(),
            states: Vec::new(),
            timers: TimerService::new(ctx.key_groups),
        };
        for snapshot in restore::overlapping(ctx) {
            restore::restore_timers(snapshot, &mut backend.timers, max_parallelism)?;
            restore::for_each_entry(
                snapshot,
                ctx.key_groups,
                max_parallelism,
                &clock,
                &mut |entry| {
                    backend.insert(entry);
                    Ok(())
                },
            )?;
        }
        Ok(backend)
    }

    fn insert(&mut self, entry: SnapshotEntry<'_>) {
        let index = self.state_index(entry.state);
        let offset = (entry.key_group - self.key_groups.start) as usize;
        let Some(table) = self.states[index].groups.get_mut(offset) else {
            return;
        };
        let slot = table.entry(entry.key.into()).or_default();
        match entry.user_key {
            None => slot.value = Some(entry.value.to_vec()),
            Some(user_key) => {
                slot.map.insert(user_key.into(), entry.value.to_vec());
            }
        }
    }

    fn state_index(&mut self, name: &str) -> usize {
        if let Some(index) = self.states.iter().position(|s| s.name == name) {
            return index;
        }
        let groups = (0..self.key_groups.len())
            .map(|_| Table::default())
            .collect();
        self.states.push(HeapState {
            name: name.to_string(),
            registration: None,
            groups,
        });
        self.states.len() - 1
    }

    fn write_snapshot(&self, path: &std::path::Path) -> Result<()> {
        let mut writer = HeapSnapshotWriter::create(path, self.max_parallelism)?;
        let now = self.clock.now();
        for state in &self.states {
            let corrupt = |reason| StateError::CorruptValue {
                state: state.name.clone(),
                reason,
            };
            for (key_group, table) in (self.key_groups.start..).zip(&state.groups) {
                for (key, slot) in table {
                    let entries = slot
                        .value
                        .iter()
                        .map(|stored| (None, stored))
                        .chain(slot.map.iter().map(|(u, stored)| (Some(&**u), stored)));
                    for (user_key, stored) in entries {
                        let cleaned = value::clean(stored, now, None).map_err(corrupt)?;
                        let value = match &cleaned {
                            Cleaned::Keep => stored.as_slice(),
                            Cleaned::Rewrite(cleaned) => cleaned.as_slice(),
                            Cleaned::Drop => continue,
                        };
                        writer.write(&SnapshotEntry {
                            key_group,
                            state: &state.name,
                            key,
                            user_key,
                            value,
                        })?;
                    }
                }
            }
        }
        writer.finish().map(drop)
    }
}

/// The registration and the key's table of a state (free of `self` so that the clock stays
/// borrowable beside it).
fn locate<'a>(
    states: &'a mut [HeapState],
    range: KeyGroupRange,
    state: StateId,
    kind: Option<StateKind>,
    key: Key<'_>,
) -> Result<(&'a Registration, &'a mut Table)> {
    check_group(range, key)?;
    let (registration, groups) = registered(states, state, kind)?;
    let table = groups
        .get_mut((key.group() - range.start) as usize)
        .ok_or(StateError::UnknownState(state.0))?;
    Ok((registration, table))
}

fn registered(
    states: &mut [HeapState],
    state: StateId,
    kind: Option<StateKind>,
) -> Result<(&Registration, &mut Vec<Table>)> {
    let heap_state = states
        .get_mut(state.0 as usize)
        .ok_or(StateError::UnknownState(state.0))?;
    let registration = heap_state
        .registration
        .as_ref()
        .ok_or(StateError::UnknownState(state.0))?;
    if let Some(kind) = kind {
        registration.require(kind)?;
    }
    Ok((registration, &mut heap_state.groups))
}

/// The payload of a stored single value if it is live, moving its expiry if reads refresh it.
fn read_value<'a>(
    stored: &'a mut [u8],
    registration: &Registration,
    clock: &dyn Clock,
) -> Result<Option<&'a [u8]>> {
    let header = value::value_header(stored).map_err(|r| registration.corrupt(r))?;
    if let Some(expires_at) = header.expires_at {
        if clock.now() >= expires_at {
            return Ok(None);
        }
        if let Some(to) = ttl::read_refresh(registration.ttl, clock) {
            value::set_expiry(stored, to);
        }
    }
    Ok(Some(&stored[header.payload_start..]))
}

/// Overwrites `stored` in place, so that updating an existing key does not allocate.
fn overwrite(stored: &mut Vec<u8>, expires_at: Option<Timestamp>, payload: &[u8]) {
    stored.clear();
    value::write_value(stored, expires_at, payload);
}

fn new_value(expires_at: Option<Timestamp>, payload: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(payload.len() + 9);
    value::write_value(&mut stored, expires_at, payload);
    stored
}

impl KeyedStateBackend for HeapBackend {
    fn kind(&self) -> StateBackendKind {
        StateBackendKind::Heap
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
        let registration = Registration::new(descriptor, kind)?;
        let index = self.state_index(descriptor.name());
        let state = &mut self.states[index];
        match &state.registration {
            Some(existing) => existing.check_same(descriptor, kind)?,
            None => state.registration = Some(registration),
        }
        Ok(StateId(index as u32))
    }

    fn get(&mut self, state: StateId, key: Key<'_>) -> Result<Option<&[u8]>> {
        let (registration, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::Value),
            key,
        )?;
        match table.get_mut(key.bytes()).and_then(|s| s.value.as_mut()) {
            Some(stored) => read_value(stored, registration, &*self.clock),
            None => Ok(None),
        }
    }

    fn put(&mut self, state: StateId, key: Key<'_>, value: &[u8]) -> Result<()> {
        let (registration, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::Value),
            key,
        )?;
        let expires_at = ttl::expiry(registration.ttl, &*self.clock);
        match table.get_mut(key.bytes()) {
            Some(Slot {
                value: Some(stored),
                ..
            }) => overwrite(stored, expires_at, value),
            Some(slot) => slot.value = Some(new_value(expires_at, value)),
            None => {
                let slot = Slot {
                    value: Some(new_value(expires_at, value)),
                    map: BTreeMap::new(),
                };
                table.insert(key.bytes().into(), slot);
            }
        }
        Ok(())
    }

    fn get_list(&mut self, state: StateId, key: Key<'_>) -> Result<Option<ListView<'_>>> {
        let (registration, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::List),
            key,
        )?;
        let refresh = ttl::read_refresh(registration.ttl, &*self.clock);
        // Clean first, then look the list up again to lend it out: the borrow checker cannot
        // lend from one branch and remove the key in another.
        if let Some(slot) = table.get_mut(key.bytes()) {
            if let Some(stored) = &mut slot.value {
                let cleaned = value::clean(stored, self.clock.now(), refresh)
                    .map_err(|r| registration.corrupt(r))?;
                match cleaned {
                    Cleaned::Keep => {}
                    Cleaned::Rewrite(cleaned) => *stored = cleaned,
                    Cleaned::Drop => slot.value = None,
                }
            }
            if slot.is_empty() {
                table.remove(key.bytes());
            }
        }
        Ok(table
            .get(key.bytes())
            .and_then(|slot| slot.value.as_deref())
            .map(ListView::new))
    }

    fn append(&mut self, state: StateId, key: Key<'_>, element: &[u8]) -> Result<()> {
        let (registration, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::List),
            key,
        )?;
        let expires_at = ttl::expiry(registration.ttl, &*self.clock);
        let stored = match table.get_mut(key.bytes()) {
            Some(slot) => slot.value.get_or_insert_with(Vec::new),
            None => table
                .entry(key.bytes().into())
                .or_default()
                .value
                .insert(Vec::new()),
        };
        if stored.is_empty() {
            value::start_list(stored);
        } else if !value::is_list(stored) {
            return Err(registration.corrupt("a single value where a list was expected"));
        }
        value::push_element(stored, expires_at, element);
        Ok(())
    }

    fn put_list(
        &mut self,
        state: StateId,
        key: Key<'_>,
        elements: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()> {
        let (registration, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::List),
            key,
        )?;
        let expires_at = ttl::expiry(registration.ttl, &*self.clock);
        let mut list = Vec::new();
        value::start_list(&mut list);
        let mut any = false;
        for element in elements {
            value::push_element(&mut list, expires_at, element);
            any = true;
        }
        if any {
            table.entry(key.bytes().into()).or_default().value = Some(list);
        } else {
            table.remove(key.bytes());
        }
        Ok(())
    }

    fn map_get(&mut self, state: StateId, key: Key<'_>, user_key: &[u8]) -> Result<Option<&[u8]>> {
        let (registration, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::Map),
            key,
        )?;
        match table
            .get_mut(key.bytes())
            .and_then(|slot| slot.map.get_mut(user_key))
        {
            Some(stored) => read_value(stored, registration, &*self.clock),
            None => Ok(None),
        }
    }

    fn map_put(
        &mut self,
        state: StateId,
        key: Key<'_>,
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let (registration, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::Map),
            key,
        )?;
        let expires_at = ttl::expiry(registration.ttl, &*self.clock);
        let slot = match table.get_mut(key.bytes()) {
            Some(slot) => slot,
            None => table.entry(key.bytes().into()).or_default(),
        };
        match slot.map.get_mut(user_key) {
            Some(stored) => overwrite(stored, expires_at, value),
            None => {
                slot.map
                    .insert(user_key.into(), new_value(expires_at, value));
            }
        }
        Ok(())
    }

    fn map_remove(&mut self, state: StateId, key: Key<'_>, user_key: &[u8]) -> Result<()> {
        let (_, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::Map),
            key,
        )?;
        if let Some(slot) = table.get_mut(key.bytes()) {
            slot.map.remove(user_key);
            if slot.is_empty() {
                table.remove(key.bytes());
            }
        }
        Ok(())
    }

    fn map_visit(
        &mut self,
        state: StateId,
        key: Key<'_>,
        visit: &mut MapVisitor<'_>,
    ) -> Result<()> {
        let (registration, table) = locate(
            &mut self.states,
            self.key_groups,
            state,
            Some(StateKind::Map),
            key,
        )?;
        let Some(slot) = table.get_mut(key.bytes()) else {
            return Ok(());
        };
        let refresh = ttl::read_refresh(registration.ttl, &*self.clock);
        let mut now = None;
        let mut expired = Vec::new();
        for (user_key, stored) in &mut slot.map {
            let header = value::value_header(stored).map_err(|r| registration.corrupt(r))?;
            if let Some(expires_at) = header.expires_at {
                if *now.get_or_insert_with(|| self.clock.now()) >= expires_at {
                    expired.push(user_key.clone());
                    continue;
                }
                if let Some(to) = refresh {
                    value::set_expiry(stored, to);
                }
            }
            if visit(user_key, &stored[header.payload_start..])?.is_break() {
                break;
            }
        }
        for user_key in expired {
            slot.map.remove(&user_key);
        }
        if slot.is_empty() {
            table.remove(key.bytes());
        }
        Ok(())
    }

    fn clear(&mut self, state: StateId, key: Key<'_>) -> Result<()> {
        let (_, table) = locate(&mut self.states, self.key_groups, state, None, key)?;
        table.remove(key.bytes());
        Ok(())
    }

    fn visit_keys(&mut self, state: StateId, visit: &mut KeyVisitor<'_>) -> Result<()> {
        let (registration, groups) = registered(&mut self.states, state, None)?;
        let now = self.clock.now();
        for (key_group, table) in (self.key_groups.start..).zip(groups.iter_mut()) {
            let mut corrupt = None;
            table.retain(|_, slot| match slot.clean(now) {
                Ok(()) => !slot.is_empty(),
                Err(reason) => {
                    corrupt = Some(reason);
                    true
                }
            });
            if let Some(reason) = corrupt {
                return Err(registration.corrupt(reason));
            }
            for key in table.keys() {
                if visit(Key::with_group(key_group, key))?.is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn timers(&mut self) -> &mut TimerService {
        &mut self.timers
    }

    fn snapshot(&mut self, checkpoint_id: u64) -> Result<KeyedSnapshot> {
        let dir = crate::local::fresh_checkpoint_dir(&self.dir, checkpoint_id)?;
        std::fs::create_dir(&dir).map_err(StateError::io("create", &dir))?;
        self.write_snapshot(&dir.join(STATE_FILE))?;
        self.timers
            .write_snapshot(&dir.join(TIMERS_FILE), self.max_parallelism)?;
        Ok(KeyedSnapshot {
            backend: StateBackendKind::Heap,
            key_groups: self.key_groups,
            files: crate::local::list_files(&dir)?,
            dir,
        })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        crate::local::release_older_than(&self.dir, checkpoint_id)
    }
}
