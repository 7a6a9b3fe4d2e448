//! The reference of the catalog's `running-count` job (a running count per key as a changelog,
//! written as rows `op, key, count`), and the changelog applied to a table by key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::generator;

/// The count of generated events per key, by brute force.
pub fn counts_per_key(events: u64, keys: u64, seed: u64) -> BTreeMap<i64, i64> {
    let mut counts = BTreeMap::new();
    for event in generator(events, keys, seed).all_events() {
        *counts.entry(event.key).or_default() += 1;
    }
    counts
}

/// Every change the job must write, sorted: per key of `n` events, `+I` of count 1, then for
/// each later event the retraction of the count before (`-U`, with `retract`) and the new count
/// (`+U`). Counts only grow, so this multiset fixes the order of each key's changes too.
pub fn running_count_changes(counts: &BTreeMap<i64, i64>, retract: bool) -> Vec<Vec<String>> {
    let row =
        |op: &str, key: i64, count: i64| vec![op.to_string(), key.to_string(), count.to_string()];
    let mut rows = Vec::new();
    for (&key, &n) in counts {
        rows.push(row("+I", key, 1));
        for count in 2..=n {
            if retract {
                rows.push(row("-U", key, count - 1));
            }
            rows.push(row("+U", key, count));
        }
    }
    rows.sort();
    rows
}

/// The table a changelog of rows `op, key, count` leaves behind: `+I`/`+U` set the key's
/// count (an upsert, taking the place of the row the last `-U` removed), `-U`/`-D` remove
/// exactly the row they name. A retraction of a row that is not there is a lost or duplicated
/// change and panics.
pub fn materialize(changes: &[Vec<String>]) -> BTreeMap<i64, i64> {
    let mut table = BTreeMap::new();
    for change in changes {
        let [op, key, count] = change.as_slice() else {
            panic!("not a change row: {change:?}");
        };
        let (key, count): (i64, i64) = (key.parse().unwrap(), count.parse().unwrap());
        match op.as_str() {
            "+I" | "+U" => {
                table.insert(key, count);
            }
            "-U" | "-D" => assert_eq!(
                table.remove(&key),
                Some(count),
                "{op} of ({key}, {count}) retracts a row the table does not hold"
            ),
            other => panic!("unknown row kind {other}"),
        }
    }
    table
}

/// The rows committed under `dir` by the exactly-once filesystem sink in the order each subtask
/// wrote them: its part files `part-<run>-<subtask>-<checkpoint>.csv` by checkpoint (the file
/// written at the end of input last), each file's lines in order.
pub fn read_rows_in_commit_order(dir: &Path) -> Vec<Vec<String>> {
    let mut parts: Vec<((u32, u64), PathBuf)> = std::fs::read_dir(dir)
        .expect("output directory")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.strip_prefix("part-")?.strip_suffix(".csv")?;
            let [_run, subtask, checkpoint] = stem.split('-').collect::<Vec<_>>()[..] else {
                panic!("unexpected part file {name}");
            };
            let checkpoint = match checkpoint {
                "end" => u64::MAX,
                id => id.parse().expect("checkpoint id"),
            };
            Some((
                (subtask.parse().expect("subtask"), checkpoint),
                entry.path(),
            ))
        })
        .collect();
    parts.sort();
    parts
        .iter()
        .flat_map(|(_, path)| {
            let text = std::fs::read_to_string(path).expect("part file");
            text.lines()
                .map(|l| l.split(',').map(str::to_string).collect())
                .collect::<Vec<_>>()
        })
        .collect()
}
