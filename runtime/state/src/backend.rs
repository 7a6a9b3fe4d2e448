//! The byte-level interface both backends implement, and the registry of states they share.

use std::fmt;
use std::ops::ControlFlow;

use spate_api::{KeyGroupRange, KeyedSnapshot, StateBackendKind, Timestamp};

use crate::error::{Result, StateError};
use crate::key::{Key, state_part};
use crate::timers::TimerService;
use crate::ttl::Ttl;

/// What a visitor wants after seeing an item: go on, or stop.
pub type Flow = ControlFlow<()>;

/// Sees the live entries of one key's map state: (user key, value), in user-key byte order.
pub type MapVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<Flow> + 'a;

/// Sees each key that has live state under one state name, once.
pub type KeyVisitor<'a> = dyn FnMut(Key<'_>) -> Result<Flow> + 'a;

/// A state registered with a backend. Ids are local to one backend instance (stored data is
/// addressed by state name, so ids never need to be stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateId(pub(crate) u32);

/// The shape of a state, fixed at registration so that a name cannot be used as two shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// One value per key.
    Value,
    /// An appendable list of values per key.
    List,
    /// A map from user keys to values per key.
    Map,
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
        })
    }
}

/// Names a state and configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDescriptor {
    name: String,
    ttl: Option<Ttl>,
}

impl StateDescriptor {
    /// `name` identifies the state in snapshots: keep it stable across job versions. At most 255
    /// bytes.
    pub fn new(name: impl Into<String>) -> Self {
        StateDescriptor {
            name: name.into(),
            ttl: None,
        }
    }

    pub fn with_ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = Some(ttl);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ttl(&self) -> Option<Ttl> {
        self.ttl
    }
}

impl From<&str> for StateDescriptor {
    fn from(name: &str) -> Self {
        StateDescriptor::new(name)
    }
}

impl From<String> for StateDescriptor {
    fn from(name: String) -> Self {
        StateDescriptor::new(name)
    }
}

/// The live elements of a list state, in append order. Only elements that were live when the
/// list was read are in it.
#[derive(Debug, Clone, Copy)]
pub struct ListView<'a> {
    stored: &'a [u8],
}

impl<'a> ListView<'a> {
    /// `stored` must be a list in the stored form that has just been validated and cleaned.
    pub(crate) fn new(stored: &'a [u8]) -> Self {
        ListView { stored }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        // The list was validated when it was read, so the framing is known to be intact.
        crate::value::elements(self.stored)
            .into_iter()
            .flatten()
            .map_while(|element| element.ok().map(|(_, payload)| payload))
    }
}

/// Keyed state of one operator instance, over bytes: state is addressed by a registered state,
/// a [`Key`] (whose key group must be in [`key_groups`](Self::key_groups)) and, for maps, a
/// user key. The typed handles ([`ValueState`](crate::ValueState) and friends) are the usual way
/// in; this interface is for operators that encode values themselves.
///
/// Reads and writes take `&mut self`: an instance is used by one task thread, and reads may
/// refresh time-to-live or reuse the backend's buffers.
pub trait KeyedStateBackend: Send {
    fn kind(&self) -> StateBackendKind;

    fn key_groups(&self) -> KeyGroupRange;

    fn max_parallelism(&self) -> u32;

    /// Processing time as the backend's clock tells it (the time TTL is measured in).
    fn now(&self) -> Timestamp;

    /// A key with its key group computed for this backend's max parallelism.
    fn key<'k>(&self, bytes: &'k [u8]) -> Key<'k> {
        Key::new(bytes, self.max_parallelism())
    }

    /// Registers a state (again: registering the same name with the same shape and TTL returns
    /// the same id, so an operator may do it in `open` on every restore).
    fn register(&mut self, descriptor: &StateDescriptor, kind: StateKind) -> Result<StateId>;

    /// The value of a value state for `key`.
    fn get(&mut self, state: StateId, key: Key<'_>) -> Result<Option<&[u8]>>;

    fn put(&mut self, state: StateId, key: Key<'_>, value: &[u8]) -> Result<()>;

    /// The live elements of a list state for `key`.
    fn get_list(&mut self, state: StateId, key: Key<'_>) -> Result<Option<ListView<'_>>>;

    /// Appends to a list state without reading it (a merge on RocksDB).
    fn append(&mut self, state: StateId, key: Key<'_>, element: &[u8]) -> Result<()>;

    /// Replaces a list state's elements; no elements clears it.
    fn put_list(
        &mut self,
        state: StateId,
        key: Key<'_>,
        elements: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()>;

    fn map_get(&mut self, state: StateId, key: Key<'_>, user_key: &[u8]) -> Result<Option<&[u8]>>;

    fn map_put(
        &mut self,
        state: StateId,
        key: Key<'_>,
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()>;

    fn map_remove(&mut self, state: StateId, key: Key<'_>, user_key: &[u8]) -> Result<()>;

    /// Visits the live entries of `key`'s map in user-key byte order, until the visitor breaks.
    fn map_visit(&mut self, state: StateId, key: Key<'_>, visit: &mut MapVisitor<'_>)
    -> Result<()>;

    /// Removes everything `state` holds for `key` (the value, the list or all map entries).
    fn clear(&mut self, state: StateId, key: Key<'_>) -> Result<()>;

    /// Visits every key with live state under `state`, until the visitor breaks. Expired data met
    /// on the way is removed. Order: by key group; within a key group, by key bytes on RocksDB
    /// and unspecified on the heap. The visitor cannot touch the backend: collect the keys first
    /// to change their state.
    fn visit_keys(&mut self, state: StateId, visit: &mut KeyVisitor<'_>) -> Result<()>;

    /// This instance's event-time and processing-time timers; they are part of its snapshots.
    fn timers(&mut self) -> &mut TimerService;

    /// The synchronous part of checkpoint `checkpoint_id`: writes the instance's state to a fresh
    /// local directory and lists its files. The directory stays until a later checkpoint
    /// completes, so it can be uploaded while processing goes on.
    fn snapshot(&mut self, checkpoint_id: u64) -> Result<KeyedSnapshot>;

    /// Checkpoint `checkpoint_id` is durable: local snapshot directories of older checkpoints are
    /// deleted; this one's stays for local recovery.
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()>;

    /// The shared files of the restored snapshot that this instance's database still numbers as
    /// its own, so that a later snapshot listing one of these names means the same file (it can
    /// reference the copy uploaded for the restored checkpoint). Empty unless the instance was
    /// restored by linking exactly one RocksDB snapshot of its own key groups: any other
    /// database starts its file numbering afresh.
    fn restored_shared_files(&self) -> &[String] {
        &[]
    }
}

/// A state as registered: what typed handles promised about it.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub name: String,
    pub kind: StateKind,
    pub ttl: Option<Ttl>,
    /// The `[length][name]` part of its stored keys.
    pub state_part: Vec<u8>,
}

impl Registration {
    pub fn new(descriptor: &StateDescriptor, kind: StateKind) -> Result<Self> {
        Ok(Registration {
            name: descriptor.name().to_string(),
            kind,
            ttl: descriptor.ttl(),
            state_part: state_part(descriptor.name())?,
        })
    }

    /// Checks a second registration of the same name against this one.
    pub fn check_same(&self, descriptor: &StateDescriptor, kind: StateKind) -> Result<()> {
        if self.kind != kind {
            return Err(StateError::WrongKind {
                state: self.name.clone(),
                registered: self.kind,
                requested: kind,
            });
        }
        if self.ttl != descriptor.ttl() {
            return Err(StateError::TtlMismatch {
                state: self.name.clone(),
            });
        }
        Ok(())
    }

    pub fn require(&self, kind: StateKind) -> Result<&Self> {
        if self.kind == kind {
            Ok(self)
        } else {
            Err(StateError::WrongKind {
                state: self.name.clone(),
                registered: self.kind,
                requested: kind,
            })
        }
    }

    pub fn corrupt(&self, reason: &'static str) -> StateError {
        StateError::CorruptValue {
            state: self.name.clone(),
            reason,
        }
    }
}

/// Refuses keys of key groups this instance does not own (their state would be lost on the next
/// restore, which keeps only owned key groups).
pub(crate) fn check_group(range: KeyGroupRange, key: Key<'_>) -> Result<()> {
    if range.contains(key.group()) {
        Ok(())
    } else {
        Err(StateError::ForeignKeyGroup {
            key_group: key.group(),
            range,
        })
    }
}
