//! How typed state turns values into bytes: postcard (serde, varint integers, no schema), which
//! keeps small values small and decodes without allocating for plain data.

use std::cell::Cell;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, StateError};

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], state: &str) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|source| StateError::Codec {
        state: state.to_string(),
        action: "decode",
        source,
    })
}

/// A reusable encoding buffer, so that writes of typed state do not allocate once warm.
/// A `Cell` keeps the typed handles usable through `&self`; it makes them `!Sync`, which state
/// handles (owned by one operator instance on one thread) never need.
#[derive(Default)]
pub(crate) struct Scratch(Cell<Vec<u8>>);

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch")
    }
}

impl Scratch {
    /// Encodes `value` and hands the bytes to `use_bytes`.
    pub fn encode<T: Serialize + ?Sized, R>(
        &self,
        value: &T,
        state: &str,
        use_bytes: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let mut buffer = self.0.take();
        buffer.clear();
        let result = match postcard::to_extend(value, buffer) {
            Ok(encoded) => {
                let result = use_bytes(&encoded);
                buffer = encoded;
                result
            }
            Err(source) => {
                buffer = Vec::new();
                Err(StateError::Codec {
                    state: state.to_string(),
                    action: "encode",
                    source,
                })
            }
        };
        self.0.set(buffer);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_scratch_buffer() {
        let scratch = Scratch::default();
        let value = (7u64, "seven".to_string(), vec![1i32, -1]);
        let decoded: (u64, String, Vec<i32>) = scratch
            .encode(&value, "s", |bytes| decode(bytes, "s"))
            .unwrap();
        assert_eq!(decoded, value);
    }

    #[test]
    fn decode_errors_name_the_state() {
        let err = decode::<u64>(&[0xff], "count").unwrap_err();
        assert!(err.to_string().contains("'count'"), "{err}");
    }
}
