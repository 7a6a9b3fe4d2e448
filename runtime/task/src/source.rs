//! The input of a source task: one reader per group of splits, read round-robin. Each group
//! keeps its own watermark (the task's is their minimum, as Flink's per-split watermarks), so
//! groups restored at different read positions after a rescale do not make each other late.

use arrow_array::RecordBatch;
use spate_api::{OperatorError, SourcePoll, SourceReader, StateEntry, Timestamp};

use crate::watermarks::WatermarkGenerator;

/// Separates the split ids of a group in its name.
const SPLIT_SEPARATOR: char = '\u{1e}';
/// Separates a group's name from the name of one of its reader's entries.
const ENTRY_SEPARATOR: char = '\u{1f}';

pub struct SplitGroup {
    /// The split ids this reader was created with, joined; restored readers get theirs back.
    name: String,
    reader: Box<dyn SourceReader>,
    watermarks: Option<WatermarkGenerator>,
    watermark: Option<Timestamp>,
    ended: bool,
}

impl SplitGroup {
    pub fn new(
        split_ids: &[String],
        reader: Box<dyn SourceReader>,
        watermarks: Option<WatermarkGenerator>,
    ) -> Self {
        SplitGroup {
            name: group_name(split_ids),
            reader,
            watermarks,
            watermark: None,
            ended: false,
        }
    }
}

pub fn group_name(split_ids: &[String]) -> String {
    split_ids.join(&SPLIT_SEPARATOR.to_string())
}

/// The groups named in restored entries, each with its reader's own entries, in name order.
pub fn restored_groups(entries: &[StateEntry]) -> Vec<(Vec<String>, Vec<StateEntry>)> {
    let mut groups: std::collections::BTreeMap<&str, Vec<StateEntry>> = Default::default();
    for (name, value) in entries {
        if let Some((group, entry)) = name.rsplit_once(ENTRY_SEPARATOR) {
            groups
                .entry(group)
                .or_default()
                .push((entry.to_string(), value.clone()));
        }
    }
    groups
        .into_iter()
        .map(|(group, entries)| {
            // A group of no splits (a reader that had none to start with) is named "".
            let splits = group
                .split(SPLIT_SEPARATOR)
                .filter(|split| !split.is_empty())
                .map(str::to_string)
                .collect();
            (splits, entries)
        })
        .collect()
}

pub enum SourceEvent {
    /// A batch, and the task's watermark if this batch advanced it.
    Batch(RecordBatch, Option<Timestamp>),
    Watermark(Timestamp),
    Idle,
    End,
}

pub struct SourceInput {
    /// Operator id of the source, under which its positions are checkpointed.
    pub operator_id: String,
    groups: Vec<SplitGroup>,
    next: usize,
    watermark: Option<Timestamp>,
    idle_timeout_ms: Option<Timestamp>,
}

impl SourceInput {
    pub fn new(operator_id: String, groups: Vec<SplitGroup>) -> Self {
        let idle_timeout_ms = groups
            .iter()
            .filter_map(|g| g.watermarks.as_ref()?.idle_timeout_ms())
            .min();
        SourceInput {
            operator_id,
            groups,
            next: 0,
            watermark: None,
            idle_timeout_ms,
        }
    }

    pub fn idle_timeout_ms(&self) -> Option<Timestamp> {
        self.idle_timeout_ms
    }

    pub fn poll(&mut self) -> Result<SourceEvent, OperatorError> {
        let n = self.groups.len();
        for offset in 0..n {
            let index = (self.next + offset) % n;
            let group = &mut self.groups[index];
            if group.ended {
                continue;
            }
            match group.reader.poll_next()? {
                SourcePoll::Batch(batch) => {
                    if let Some(generator) = &mut group.watermarks {
                        group.watermark = generator.on_batch(&batch)?;
                    }
                    self.next = (index + 1) % n;
                    return Ok(SourceEvent::Batch(batch, self.advance_watermark()));
                }
                SourcePoll::Idle => {}
                SourcePoll::End => {
                    group.ended = true;
                    // An ended group no longer holds the others back.
                    if let Some(wm) = self.advance_watermark() {
                        return Ok(SourceEvent::Watermark(wm));
                    }
                }
            }
        }
        if self.groups.iter().all(|g| g.ended) {
            Ok(SourceEvent::End)
        } else {
            Ok(SourceEvent::Idle)
        }
    }

    /// The minimum over the groups still reading, if every one of them has a watermark and it
    /// moved forward.
    fn advance_watermark(&mut self) -> Option<Timestamp> {
        let mut min: Option<Timestamp> = None;
        for group in self.groups.iter().filter(|g| !g.ended) {
            group.watermarks.as_ref()?;
            let wm = group.watermark?;
            min = Some(min.map_or(wm, |m| m.min(wm)));
        }
        let min = min?;
        if self.watermark.is_some_and(|w| w >= min) {
            return None;
        }
        self.watermark = Some(min);
        Some(min)
    }

    /// Every group's reader positions, named by group.
    pub fn snapshot(&mut self) -> Result<Vec<StateEntry>, OperatorError> {
        let mut entries = Vec::new();
        for group in &mut self.groups {
            for (name, value) in group.reader.snapshot_positions()? {
                entries.push((format!("{}{ENTRY_SEPARATOR}{name}", group.name), value));
            }
        }
        Ok(entries)
    }
}
