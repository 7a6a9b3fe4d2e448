//! Keyed state as a keyed process function sees it: typed value, list and map states of
//! spate-state, looked up by name and scoped to the key being processed.

use std::any::Any;

use serde::Serialize;
use serde::de::DeserializeOwned;
use spate_api::{OperatorError, Result};
use spate_state::{Key, KeyedStateBackend, ListState, MapState, StateDescriptor, ValueState};

use super::hash::FastMap;

/// Names a keyed state: a plain name, or a [`StateDescriptor`] to give it a time-to-live. The
/// name identifies the state in checkpoints, so keep it stable across versions of a job.
pub trait StateName {
    fn name(&self) -> &str;
    fn descriptor(&self) -> StateDescriptor;
}

impl StateName for &str {
    fn name(&self) -> &str {
        self
    }

    fn descriptor(&self) -> StateDescriptor {
        StateDescriptor::new(*self)
    }
}

impl StateName for &StateDescriptor {
    fn name(&self) -> &str {
        StateDescriptor::name(self)
    }

    fn descriptor(&self) -> StateDescriptor {
        (*self).clone()
    }
}

/// The typed handles of one operator instance's states, registered with its backend on first
/// use. Functions name their states where they use them instead of registering them up front,
/// which keeps them plain values (no handles to fill in after construction); the lookup by name
/// is one hash of a short string per access.
#[derive(Default)]
pub(crate) struct StateHandles {
    by_name: FastMap<Box<str>, Box<dyn Any + Send>>,
}

impl std::fmt::Debug for StateHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl StateHandles {
    /// The handle of `state`, registered by `register` the first time. A name used as two
    /// kinds or types of state is an error: the stored bytes can only mean one of them.
    pub(crate) fn get<H: Any + Send>(
        &mut self,
        backend: &mut dyn KeyedStateBackend,
        state: &impl StateName,
        register: impl FnOnce(&mut dyn KeyedStateBackend, StateDescriptor) -> spate_state::Result<H>,
    ) -> Result<&H> {
        let name = state.name();
        if !self.by_name.contains_key(name) {
            let handle = register(backend, state.descriptor())?;
            self.by_name.insert(name.into(), Box::new(handle));
        }
        self.by_name
            .get(name)
            .and_then(|handle| handle.downcast_ref::<H>())
            .ok_or_else(|| {
                OperatorError::invalid(format!(
                    "keyed state '{name}' is used as a {} here but as another kind or type \
                     before",
                    std::any::type_name::<H>()
                ))
            })
    }
}

/// A value state of the current key.
pub struct KeyedValue<'c, T> {
    pub(crate) state: &'c ValueState<T>,
    pub(crate) backend: &'c mut dyn KeyedStateBackend,
    pub(crate) key: Key<'c>,
}

impl<T: Serialize + DeserializeOwned> KeyedValue<'_, T> {
    pub fn get(&mut self) -> Result<Option<T>> {
        Ok(self.state.get(self.backend, self.key)?)
    }

    pub fn set(&mut self, value: &T) -> Result<()> {
        Ok(self.state.set(self.backend, self.key, value)?)
    }

    pub fn clear(&mut self) -> Result<()> {
        Ok(self.state.clear(self.backend, self.key)?)
    }
}

/// A list state of the current key.
pub struct KeyedList<'c, T> {
    pub(crate) state: &'c ListState<T>,
    pub(crate) backend: &'c mut dyn KeyedStateBackend,
    pub(crate) key: Key<'c>,
}

impl<T: Serialize + DeserializeOwned> KeyedList<'_, T> {
    /// The elements in the order they were added (empty if there are none).
    pub fn get(&mut self) -> Result<Vec<T>> {
        Ok(self.state.get(self.backend, self.key)?)
    }

    /// Appends without reading the list.
    pub fn add(&mut self, value: &T) -> Result<()> {
        Ok(self.state.add(self.backend, self.key, value)?)
    }

    /// Replaces the elements; none clears the list.
    pub fn update(&mut self, values: &[T]) -> Result<()> {
        Ok(self.state.update(self.backend, self.key, values)?)
    }

    pub fn clear(&mut self) -> Result<()> {
        Ok(self.state.clear(self.backend, self.key)?)
    }
}

/// A map state of the current key.
pub struct KeyedMap<'c, K, V> {
    pub(crate) state: &'c MapState<K, V>,
    pub(crate) backend: &'c mut dyn KeyedStateBackend,
    pub(crate) key: Key<'c>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> KeyedMap<'_, K, V> {
    pub fn get(&mut self, user_key: &K) -> Result<Option<V>> {
        Ok(self.state.get(self.backend, self.key, user_key)?)
    }

    pub fn contains(&mut self, user_key: &K) -> Result<bool> {
        Ok(self.state.contains(self.backend, self.key, user_key)?)
    }

    pub fn put(&mut self, user_key: &K, value: &V) -> Result<()> {
        Ok(self.state.put(self.backend, self.key, user_key, value)?)
    }

    pub fn remove(&mut self, user_key: &K) -> Result<()> {
        Ok(self.state.remove(self.backend, self.key, user_key)?)
    }

    /// The entries in the byte order of their encoded user keys (not numeric order for
    /// numbers).
    pub fn entries(&mut self) -> Result<Vec<(K, V)>> {
        Ok(self.state.entries(self.backend, self.key)?)
    }

    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.state.is_empty(self.backend, self.key)?)
    }

    pub fn clear(&mut self) -> Result<()> {
        Ok(self.state.clear(self.backend, self.key)?)
    }
}
