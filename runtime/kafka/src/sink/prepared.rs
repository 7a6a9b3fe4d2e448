//! The sink's transactional ids and the pre-committed transactions its checkpoints keep.

use spate_api::{OperatorError, Result, StateEntry};

/// Checkpoint entries of pre-committed transactions are named `txn:<transactional id>`.
const ENTRY: &str = "txn:";

/// Subtask `subtask`'s transactional id number `slot`: `<prefix>-<subtask>-<slot>`. A subtask
/// reuses its slots once their transactions are committed, so the ids it ever uses are few
/// (one open, plus one per checkpoint not yet complete), and the brokers keep little state
/// for them.
pub fn transactional_id(prefix: &str, subtask: u32, slot: u32) -> String {
    format!("{prefix}-{subtask}-{slot}")
}

/// The subtask and slot of `id` if it is one of `prefix`'s transactional ids.
pub fn parse_transactional_id(prefix: &str, id: &str) -> Option<(u32, u32)> {
    let rest = id.strip_prefix(prefix)?.strip_prefix('-')?;
    let (subtask, slot) = rest.split_once('-')?;
    Some((subtask.parse().ok()?, slot.parse().ok()?))
}

/// A transaction whose rows are all written and acknowledged, waiting for its checkpoint to
/// complete: what a restore needs to commit it without the producer that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub transactional_id: String,
    /// The subtask that wrote it, at the parallelism of the time.
    pub subtask: u32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Written under transaction version 2 (KIP-890), which ends a transaction differently.
    pub transaction_v2: bool,
}

const ENCODED: usize = 4 + 8 + 2 + 1;

impl Prepared {
    pub fn entry(&self) -> StateEntry {
        let mut value = Vec::with_capacity(ENCODED);
        value.extend_from_slice(&self.subtask.to_le_bytes());
        value.extend_from_slice(&self.producer_id.to_le_bytes());
        value.extend_from_slice(&self.producer_epoch.to_le_bytes());
        value.push(u8::from(self.transaction_v2));
        (format!("{ENTRY}{}", self.transactional_id), value)
    }

    /// The transaction a checkpoint entry describes; `None` for entries of other kinds.
    pub fn from_entry((name, value): &StateEntry) -> Option<Result<Prepared>> {
        let transactional_id = name.strip_prefix(ENTRY)?.to_string();
        let decoded = <[u8; ENCODED]>::try_from(value.as_slice())
            .map_err(|_| {
                OperatorError::invalid(format!(
                    "checkpointed Kafka transaction '{transactional_id}' has {} bytes, not \
                     {ENCODED}",
                    value.len()
                ))
            })
            .map(|v| Prepared {
                subtask: u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
                producer_id: i64::from_le_bytes([v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]]),
                producer_epoch: i16::from_le_bytes([v[12], v[13]]),
                transaction_v2: v[14] != 0,
                transactional_id: transactional_id.clone(),
            });
        Some(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_subtask_and_slot() {
        let id = transactional_id("orders-out", 3, 1);
        assert_eq!(id, "orders-out-3-1");
        assert_eq!(parse_transactional_id("orders-out", &id), Some((3, 1)));
        // Another job's prefix that starts the same is not ours.
        assert_eq!(parse_transactional_id("orders", &id), None);
        assert_eq!(parse_transactional_id("orders-out", "orders-out-x-1"), None);
    }

    #[test]
    fn a_prepared_transaction_survives_its_checkpoint_entry() {
        let prepared = Prepared {
            transactional_id: "p-1-0".into(),
            subtask: 1,
            producer_id: 4_000_000_123,
            producer_epoch: 7,
            transaction_v2: true,
        };
        let entry = prepared.entry();
        assert_eq!(entry.0, "txn:p-1-0");
        assert_eq!(Prepared::from_entry(&entry).unwrap().unwrap(), prepared);
        assert!(Prepared::from_entry(&("pending:x".into(), vec![])).is_none());
        let short = ("txn:p-1-0".to_string(), vec![1, 2]);
        assert!(Prepared::from_entry(&short).unwrap().is_err());
    }
}
