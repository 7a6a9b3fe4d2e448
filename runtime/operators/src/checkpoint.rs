//! What the stateful operators share about checkpoints: the final snapshot's id and the event
//! time they restore. Snapshot directories are spate-state's (`fresh_checkpoint_dir`,
//! `release_older_than`).

use spate_api::{MIN_WATERMARK, OperatorError, RestoredState, Result, StateEntry, Timestamp};

/// The id of the snapshot a task takes after its input ended. Only its non-keyed entries are
/// kept, so operators write no keyed files for it.
pub(crate) const FINAL_CHECKPOINT: u64 = u64::MAX;

const WATERMARK: &str = "watermark";

/// The non-keyed entry that carries an operator's watermark through a checkpoint.
pub(crate) fn watermark_entry(watermark: Timestamp) -> StateEntry {
    (WATERMARK.to_string(), watermark.to_le_bytes().to_vec())
}

/// The watermark to resume from: the least of the restored subtasks' watermarks.
///
/// At an aligned barrier every subtask of an operator has seen the same watermarks from every
/// input channel, so the entries agree. Where they do not (an input that had ended or idled on
/// one subtask only), the least is the only choice that loses nothing: a window or timer that
/// any old subtask still held open is open at the least watermark, while a higher one would drop
/// records that subtask would still have accepted. Without entries (no watermark had arrived),
/// event time starts from the beginning.
pub(crate) fn restored_watermark(restored: Option<&RestoredState>) -> Result<Timestamp> {
    let mut least: Option<Timestamp> = None;
    for (name, value) in restored.iter().flat_map(|r| &r.entries) {
        if name != WATERMARK {
            continue;
        }
        let bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| {
            OperatorError::invalid(format!(
                "restored watermark has {} bytes, expected 8",
                value.len()
            ))
        })?;
        let watermark = Timestamp::from_le_bytes(bytes);
        least = Some(least.map_or(watermark, |l| l.min(watermark)));
    }
    Ok(least.unwrap_or(MIN_WATERMARK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_restored_watermark_wins() {
        let restored = RestoredState {
            checkpoint_id: 7,
            entries: vec![
                watermark_entry(40),
                ("other".into(), vec![1]),
                watermark_entry(-3),
            ],
            keyed: Vec::new(),
        };
        assert_eq!(restored_watermark(Some(&restored)).unwrap(), -3);
        assert_eq!(restored_watermark(None).unwrap(), MIN_WATERMARK);
        let bad = RestoredState {
            entries: vec![(WATERMARK.into(), vec![0; 3])],
            ..restored
        };
        assert!(restored_watermark(Some(&bad)).is_err());
    }
}
