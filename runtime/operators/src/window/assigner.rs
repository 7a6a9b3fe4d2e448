use spate_api::{OperatorError, RestoredState, Result, StateEntry, Timestamp};

/// How records are assigned to event-time windows. Windows are `[start, end)` and aligned to the
/// epoch, as Flink's `TumblingEventTimeWindows`, `SlidingEventTimeWindows` and
/// `EventTimeSessionWindows` without offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAssigner {
    Tumbling { size_ms: i64 },
    Hopping { size_ms: i64, slide_ms: i64 },
    Session { gap_ms: i64 },
}

impl WindowAssigner {
    pub(crate) fn validate(&self) -> Result<()> {
        let positive = |what: &str, value: i64| {
            if value > 0 {
                Ok(())
            } else {
                Err(OperatorError::invalid(format!(
                    "window {what} must be positive, got {value} ms"
                )))
            }
        };
        match *self {
            WindowAssigner::Tumbling { size_ms } => positive("size", size_ms),
            WindowAssigner::Hopping { size_ms, slide_ms } => {
                positive("size", size_ms)?;
                positive("slide", slide_ms)
            }
            WindowAssigner::Session { gap_ms } => positive("session gap", gap_ms),
        }
    }
}

/// Tumbling and hopping windows: every `[start, start + size)` with `start` a multiple of
/// `slide`. A tumbling window is the hopping window whose slide is its size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aligned {
    size: i64,
    slide: i64,
}

impl Aligned {
    pub(crate) fn new(size: i64, slide: i64) -> Self {
        Aligned { size, slide }
    }

    /// Calls `f(start, end)` for each window containing `ts`, latest first. Bounds saturate
    /// rather than overflow for times within a window of the ends of the i64 range.
    #[inline]
    pub(crate) fn for_each(&self, ts: Timestamp, mut f: impl FnMut(Timestamp, Timestamp)) {
        let mut start = ts.saturating_sub(ts.rem_euclid(self.slide));
        let first_excluded = ts.saturating_sub(self.size);
        while start > first_excluded {
            f(start, start.saturating_add(self.size));
            match start.checked_sub(self.slide) {
                Some(earlier) => start = earlier,
                None => break,
            }
        }
    }
}

/// Whether a window is past the watermark: it has fired (or would have) and takes no records.
#[inline]
pub(crate) fn is_late(end: Timestamp, watermark: Timestamp) -> bool {
    end - 1 <= watermark
}

/// The non-keyed entry naming the windows a checkpoint holds, so that a job whose windows
/// changed cannot restore them as other windows.
const ASSIGNER: &str = "window-assigner";

pub(crate) fn assigner_entry(assigner: WindowAssigner) -> StateEntry {
    (ASSIGNER.to_string(), describe(assigner).into_bytes())
}

fn describe(assigner: WindowAssigner) -> String {
    match assigner {
        WindowAssigner::Tumbling { size_ms } => format!("tumbling windows of {size_ms} ms"),
        WindowAssigner::Hopping { size_ms, slide_ms } => {
            format!("hopping windows of {size_ms} ms sliding by {slide_ms} ms")
        }
        WindowAssigner::Session { gap_ms } => format!("session windows with a {gap_ms} ms gap"),
    }
}

/// Refuses a restore whose windows were made by another assigner: their bounds would be read as
/// this assigner's windows.
pub(crate) fn check_restored_assigner(
    restored: Option<&RestoredState>,
    assigner: WindowAssigner,
) -> Result<()> {
    let expected = describe(assigner);
    for (name, value) in restored.iter().flat_map(|r| &r.entries) {
        if name == ASSIGNER && value.as_slice() != expected.as_bytes() {
            return Err(OperatorError::invalid(format!(
                "cannot restore windows: the checkpoint holds {}, this operator has {expected}",
                String::from_utf8_lossy(value)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(aligned: Aligned, ts: i64) -> Vec<(i64, i64)> {
        let mut all = Vec::new();
        aligned.for_each(ts, |s, e| all.push((s, e)));
        all
    }

    #[test]
    fn a_restore_with_other_windows_is_refused_naming_both() {
        let ten = WindowAssigner::Tumbling { size_ms: 10 };
        let restored = RestoredState {
            checkpoint_id: 3,
            entries: vec![assigner_entry(ten)],
            keyed: Vec::new(),
        };
        assert!(check_restored_assigner(Some(&restored), ten).is_ok());
        assert!(check_restored_assigner(None, ten).is_ok());
        let hopping = WindowAssigner::Hopping {
            size_ms: 10,
            slide_ms: 5,
        };
        let message = check_restored_assigner(Some(&restored), hopping)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("tumbling windows of 10 ms")
                && message.contains("hopping windows of 10 ms sliding by 5 ms"),
            "{message}"
        );
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch_for_negative_times_too() {
        let tumbling = Aligned::new(10, 10);
        assert_eq!(windows(tumbling, 0), vec![(0, 10)]);
        assert_eq!(windows(tumbling, 9), vec![(0, 10)]);
        assert_eq!(windows(tumbling, 10), vec![(10, 20)]);
        assert_eq!(windows(tumbling, -1), vec![(-10, 0)]);
        assert_eq!(windows(tumbling, -10), vec![(-10, 0)]);
    }

    #[test]
    fn hopping_windows_are_all_slide_aligned_windows_containing_the_time() {
        assert_eq!(windows(Aligned::new(10, 5), 12), vec![(10, 20), (5, 15)]);
        assert_eq!(
            windows(Aligned::new(10, 3), 12),
            vec![(12, 22), (9, 19), (6, 16), (3, 13)]
        );
        // A slide longer than the size leaves gaps no window covers.
        assert_eq!(windows(Aligned::new(2, 5), 6), vec![(5, 7)]);
        assert_eq!(windows(Aligned::new(2, 5), 7), vec![]);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        assert_eq!(
            windows(Aligned::new(10, 10), i64::MAX),
            vec![(i64::MAX - 7, i64::MAX)]
        );
        assert!(windows(Aligned::new(10, 5), i64::MIN).len() <= 1);
    }

    #[test]
    fn sizes_must_be_positive() {
        let err = WindowAssigner::Hopping {
            size_ms: 10,
            slide_ms: 0,
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("slide"), "{err}");
        assert!(WindowAssigner::Session { gap_ms: -1 }.validate().is_err());
        assert!(WindowAssigner::Tumbling { size_ms: 1 }.validate().is_ok());
    }
}
