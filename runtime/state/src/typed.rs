//! Typed handles on keyed state: register once (in `open`), then read and write per key.
//!
//! ```no_run
//! # use spate_state::*;
//! # fn demo(backend: &mut dyn KeyedStateBackend) -> Result<()> {
//! let count = backend.value_state::<u64>("count")?;
//! let seen = backend.map_state::<String, i64>(
//!     StateDescriptor::new("seen").with_ttl(Ttl::new(std::time::Duration::from_secs(3600))),
//! )?;
//! let key = backend.key(b"row-format key bytes");
//! let n = count.get(backend, key)?.unwrap_or(0);
//! count.set(backend, key, &(n + 1))?;
//! seen.put(backend, key, &"page".to_string(), &42)?;
//! # Ok(()) }
//! ```
//!
//! Values are encoded with postcard; map user keys too, so map entries iterate in the byte order
//! of their encoded keys (numbers are varints: not numeric order).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Flow, KeyedStateBackend, StateDescriptor, StateId, StateKind};
use crate::codec::{Scratch, decode};
use crate::error::Result;
use crate::key::{Key, OwnedKey};

/// Every key that has live state under `state`.
fn keys_of<B: KeyedStateBackend + ?Sized>(
    backend: &mut B,
    state: StateId,
) -> Result<Vec<OwnedKey>> {
    let mut keys = Vec::new();
    backend.visit_keys(state, &mut |key| {
        keys.push(key.into_owned());
        Ok(Flow::Continue(()))
    })?;
    Ok(keys)
}

/// One value of type `T` per key.
#[derive(Debug)]
pub struct ValueState<T> {
    id: StateId,
    name: String,
    scratch: Scratch,
    _value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ValueState<T> {
    pub fn new<B: KeyedStateBackend + ?Sized>(
        backend: &mut B,
        descriptor: impl Into<StateDescriptor>,
    ) -> Result<Self> {
        let descriptor = descriptor.into();
        Ok(ValueState {
            id: backend.register(&descriptor, StateKind::Value)?,
            name: descriptor.name().to_string(),
            scratch: Scratch::default(),
            _value: PhantomData,
        })
    }

    pub fn id(&self) -> StateId {
        self.id
    }

    pub fn get<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
    ) -> Result<Option<T>> {
        backend
            .get(self.id, key)?
            .map(|bytes| decode(bytes, &self.name))
            .transpose()
    }

    pub fn set<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
        value: &T,
    ) -> Result<()> {
        self.scratch
            .encode(value, &self.name, |bytes| backend.put(self.id, key, bytes))
    }

    pub fn clear<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
    ) -> Result<()> {
        backend.clear(self.id, key)
    }

    /// Every key with a live value.
    pub fn keys<B: KeyedStateBackend + ?Sized>(&self, backend: &mut B) -> Result<Vec<OwnedKey>> {
        keys_of(backend, self.id)
    }
}

/// A list of `T` per key; appends do not read the list.
#[derive(Debug)]
pub struct ListState<T> {
    id: StateId,
    name: String,
    scratch: Scratch,
    _value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ListState<T> {
    pub fn new<B: KeyedStateBackend + ?Sized>(
        backend: &mut B,
        descriptor: impl Into<StateDescriptor>,
    ) -> Result<Self> {
        let descriptor = descriptor.into();
        Ok(ListState {
            id: backend.register(&descriptor, StateKind::List)?,
            name: descriptor.name().to_string(),
            scratch: Scratch::default(),
            _value: PhantomData,
        })
    }

    pub fn id(&self) -> StateId {
        self.id
    }

    /// The live elements in append order (empty if there are none).
    pub fn get<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
    ) -> Result<Vec<T>> {
        match backend.get_list(self.id, key)? {
            Some(list) => list.iter().map(|bytes| decode(bytes, &self.name)).collect(),
            None => Ok(Vec::new()),
        }
    }

    pub fn add<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
        value: &T,
    ) -> Result<()> {
        self.scratch.encode(value, &self.name, |bytes| {
            backend.append(self.id, key, bytes)
        })
    }

    /// Replaces the list; an empty slice clears it.
    pub fn update<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
        values: &[T],
    ) -> Result<()> {
        // All elements go into one buffer, so an update allocates once, not per element.
        let mut encoded = Vec::new();
        let mut ends = Vec::with_capacity(values.len());
        for value in values {
            encoded =
                postcard::to_extend(value, encoded).map_err(|source| crate::StateError::Codec {
                    state: self.name.clone(),
                    action: "encode",
                    source,
                })?;
            ends.push(encoded.len());
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let mut elements = starts
            .zip(ends.iter().copied())
            .map(|(s, e)| &encoded[s..e]);
        backend.put_list(self.id, key, &mut elements)
    }

    pub fn clear<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
    ) -> Result<()> {
        backend.clear(self.id, key)
    }

    /// Every key with a live list.
    pub fn keys<B: KeyedStateBackend + ?Sized>(&self, backend: &mut B) -> Result<Vec<OwnedKey>> {
        keys_of(backend, self.id)
    }
}

/// A map from `K` to `V` per key.
#[derive(Debug)]
pub struct MapState<K, V> {
    id: StateId,
    name: String,
    user_key: Scratch,
    value: Scratch,
    _entry: PhantomData<fn() -> (K, V)>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> MapState<K, V> {
    pub fn new<B: KeyedStateBackend + ?Sized>(
        backend: &mut B,
        descriptor: impl Into<StateDescriptor>,
    ) -> Result<Self> {
        let descriptor = descriptor.into();
        Ok(MapState {
            id: backend.register(&descriptor, StateKind::Map)?,
            name: descriptor.name().to_string(),
            user_key: Scratch::default(),
            value: Scratch::default(),
            _entry: PhantomData,
        })
    }

    pub fn id(&self) -> StateId {
        self.id
    }

    pub fn get<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
        user_key: &K,
    ) -> Result<Option<V>> {
        self.user_key.encode(user_key, &self.name, |user_key| {
            backend
                .map_get(self.id, key, user_key)?
                .map(|bytes| decode(bytes, &self.name))
                .transpose()
        })
    }

    pub fn contains<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
        user_key: &K,
    ) -> Result<bool> {
        self.user_key.encode(user_key, &self.name, |user_key| {
            Ok(backend.map_get(self.id, key, user_key)?.is_some())
        })
    }

    pub fn put<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
        user_key: &K,
        value: &V,
    ) -> Result<()> {
        self.user_key.encode(user_key, &self.name, |user_key| {
            self.value.encode(value, &self.name, |value| {
                backend.map_put(self.id, key, user_key, value)
            })
        })
    }

    pub fn remove<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
        user_key: &K,
    ) -> Result<()> {
        self.user_key.encode(user_key, &self.name, |user_key| {
            backend.map_remove(self.id, key, user_key)
        })
    }

    /// Visits the live entries of `key` until `visit` breaks.
    pub fn for_each<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
        mut visit: impl FnMut(K, V) -> Result<Flow>,
    ) -> Result<()> {
        backend.map_visit(self.id, key, &mut |user_key, value| {
            visit(decode(user_key, &self.name)?, decode(value, &self.name)?)
        })
    }

    /// The live entries of `key`, in the byte order of their encoded user keys.
    pub fn entries<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
    ) -> Result<Vec<(K, V)>> {
        let mut entries = Vec::new();
        self.for_each(backend, key, |k, v| {
            entries.push((k, v));
            Ok(Flow::Continue(()))
        })?;
        Ok(entries)
    }

    pub fn is_empty<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
    ) -> Result<bool> {
        let mut empty = true;
        backend.map_visit(self.id, key, &mut |_, _| {
            empty = false;
            Ok(Flow::Break(()))
        })?;
        Ok(empty)
    }

    /// Removes all entries of `key`.
    pub fn clear<B: KeyedStateBackend + ?Sized>(
        &self,
        backend: &mut B,
        key: Key<'_>,
    ) -> Result<()> {
        backend.clear(self.id, key)
    }

    /// Every key with at least one live entry.
    pub fn keys<B: KeyedStateBackend + ?Sized>(&self, backend: &mut B) -> Result<Vec<OwnedKey>> {
        keys_of(backend, self.id)
    }
}

/// Shorthands on a boxed backend, as returned by [`open_backend`](crate::open_backend).
impl dyn KeyedStateBackend + '_ {
    pub fn value_state<T: Serialize + DeserializeOwned>(
        &mut self,
        descriptor: impl Into<StateDescriptor>,
    ) -> Result<ValueState<T>> {
        ValueState::new(self, descriptor)
    }

    pub fn list_state<T: Serialize + DeserializeOwned>(
        &mut self,
        descriptor: impl Into<StateDescriptor>,
    ) -> Result<ListState<T>> {
        ListState::new(self, descriptor)
    }

    pub fn map_state<K, V>(
        &mut self,
        descriptor: impl Into<StateDescriptor>,
    ) -> Result<MapState<K, V>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        MapState::new(self, descriptor)
    }
}
