//! The read position most sources checkpoint: how many rows of their splits they emitted.

use crate::context::OperatorContext;
use crate::error::{OperatorError, Result};
use crate::state::StateEntry;

const POSITION: &str = "rows";

/// The entries a reader at `rows` returns from `snapshot_positions`.
pub fn position_entries(rows: u64) -> Vec<StateEntry> {
    vec![(POSITION.to_string(), rows.to_le_bytes().to_vec())]
}

/// Where a reader created with `ctx` starts: its restored position, or 0.
pub fn restored_position(ctx: &OperatorContext) -> Result<u64> {
    let Some(restored) = &ctx.state.restored else {
        return Ok(0);
    };
    match restored.entries.iter().find(|(name, _)| name == POSITION) {
        None => Ok(0),
        Some((_, value)) => {
            let bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| {
                OperatorError::invalid(format!(
                    "{}: restored read position has {} bytes, expected 8",
                    ctx.operator_name,
                    value.len()
                ))
            })?;
            Ok(u64::from_le_bytes(bytes))
        }
    }
}
