//! Keys of keyed state, and the byte layout that addresses one piece of state in a sorted store:
//!
//! ```text
//! [key group: u16 BE][name length: u8][state name][key length: varint][key][slot][user key]
//! ```
//!
//! The key group comes first so that the key groups of an instance, and any sub-range moved on
//! rescale, are one contiguous range of the store. The state name comes next so that all keys of
//! a state within a key group are one range too (to fire timers or windows). `slot` tells the
//! single value of a value or list state (`VALUE_SLOT`, no user key) from an entry of a map
//! state (`MAP_SLOT`, followed by the user key); because it follows the length-prefixed key, the
//! entries of one key's map are a contiguous range ordered by user key.

use spate_api::{hash_key, key_group};

use crate::error::{Result, StateError};
use crate::varint;

/// The largest max parallelism: key groups are stored as two bytes (Flink has the same bound).
pub const MAX_KEY_GROUPS: u32 = 32768;

/// A key of keyed state (the Arrow row-format bytes of the key columns) with its key group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    group: u32,
    bytes: &'a [u8],
}

impl<'a> Key<'a> {
    /// Computes the key group the way the hash partitioner does.
    pub fn new(bytes: &'a [u8], max_parallelism: u32) -> Self {
        Key {
            group: key_group(hash_key(bytes), max_parallelism),
            bytes,
        }
    }

    /// For callers that already know the key group (computed once per record for routing).
    pub fn with_group(group: u32, bytes: &'a [u8]) -> Self {
        Key { group, bytes }
    }

    pub fn group(&self) -> u32 {
        self.group
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn into_owned(self) -> OwnedKey {
        OwnedKey {
            group: self.group,
            bytes: self.bytes.to_vec(),
        }
    }
}

/// A key that outlives the iteration that found it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnedKey {
    pub group: u32,
    pub bytes: Vec<u8>,
}

impl OwnedKey {
    pub fn as_key(&self) -> Key<'_> {
        Key::with_group(self.group, &self.bytes)
    }
}

pub(crate) const VALUE_SLOT: u8 = 0;
pub(crate) const MAP_SLOT: u8 = 1;

/// The `[name length][name]` part of a state's keys, validated once when the state is
/// registered or restored.
pub(crate) fn state_part(name: &str) -> Result<Vec<u8>> {
    let len = u8::try_from(name.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or_else(|| {
            StateError::Invalid(format!(
                "state name '{name}' must be between 1 and 255 bytes long"
            ))
        })?;
    let mut part = Vec::with_capacity(name.len() + 1);
    part.push(len);
    part.extend_from_slice(name.as_bytes());
    Ok(part)
}

pub(crate) fn group_bytes(group: u32) -> [u8; 2] {
    // Callers check groups against the instance's range, which is below MAX_KEY_GROUPS.
    (group as u16).to_be_bytes()
}

/// `[group][state]`: all keys of a state within one key group.
pub(crate) fn write_state_prefix(out: &mut Vec<u8>, group: u32, state_part: &[u8]) {
    out.clear();
    out.extend_from_slice(&group_bytes(group));
    out.extend_from_slice(state_part);
}

/// `[group][state][key]`: all state of one key under one state name.
pub(crate) fn write_key_prefix(out: &mut Vec<u8>, group: u32, state_part: &[u8], key: &[u8]) {
    write_state_prefix(out, group, state_part);
    varint::put(out, key.len() as u64);
    out.extend_from_slice(key);
}

pub(crate) fn write_value_key(out: &mut Vec<u8>, group: u32, state_part: &[u8], key: &[u8]) {
    write_key_prefix(out, group, state_part, key);
    out.push(VALUE_SLOT);
}

pub(crate) fn write_map_key(
    out: &mut Vec<u8>,
    group: u32,
    state_part: &[u8],
    key: &[u8],
    user_key: &[u8],
) {
    write_key_prefix(out, group, state_part, key);
    out.push(MAP_SLOT);
    out.extend_from_slice(user_key);
}

/// A stored key taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StoredKey<'a> {
    pub group: u32,
    pub state: &'a [u8],
    pub key: &'a [u8],
    /// `None` for the value slot, the user key for a map entry.
    pub user_key: Option<&'a [u8]>,
}

pub(crate) fn decode(bytes: &[u8]) -> Option<StoredKey<'_>> {
    let (group, rest) = bytes.split_first_chunk::<2>()?;
    let (&name_len, rest) = rest.split_first()?;
    let (state, rest) = rest.split_at_checked(usize::from(name_len))?;
    let (key, rest) = varint::split_field(rest)?;
    let (&slot, user_key) = rest.split_first()?;
    let user_key = match slot {
        VALUE_SLOT if user_key.is_empty() => None,
        MAP_SLOT => Some(user_key),
        _ => return None,
    };
    Some(StoredKey {
        group: u32::from(u16::from_be_bytes(*group)),
        state,
        key,
        user_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_decode_to_their_parts() {
        let part = state_part("count").unwrap();
        let mut out = Vec::new();
        write_value_key(&mut out, 300, &part, b"k\x00y");
        assert_eq!(
            decode(&out),
            Some(StoredKey {
                group: 300,
                state: b"count",
                key: b"k\x00y",
                user_key: None
            })
        );
        write_map_key(&mut out, 7, &part, b"k", b"");
        assert_eq!(decode(&out).unwrap().user_key, Some(&b""[..]));
        assert_eq!(decode(&out[..out.len() - 1]), None);
    }

    #[test]
    fn key_prefixes_do_not_capture_longer_keys() {
        let part = state_part("s").unwrap();
        let (mut short, mut long) = (Vec::new(), Vec::new());
        write_key_prefix(&mut short, 1, &part, b"ab");
        write_map_key(&mut long, 1, &part, b"abc", b"");
        assert!(!long.starts_with(&short));
    }

    #[test]
    fn state_names_are_bounded() {
        assert!(state_part("").is_err());
        assert!(state_part(&"x".repeat(256)).is_err());
        assert!(state_part(&"x".repeat(255)).is_ok());
    }
}
