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

/// The changes of a count per key written in debezium-json, as rows `op, key, count`, sorted:
/// an insert or an update's new count is a "c", an update's retracted count a "d".
pub fn debezium_count_changes(counts: &BTreeMap<i64, i64>) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = running_count_changes(counts, true)
        .into_iter()
        .map(|mut row| {
            row[0] = if row[0] == "-U" { "d" } else { "c" }.to_string();
            row
        })
        .collect();
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
            // Debezium's "c" adds a row and its "d" takes one back.
            "+I" | "+U" | "c" => {
                table.insert(key, count);
            }
            "-U" | "-D" | "d" => assert_eq!(
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
            let stem = name.strip_prefix("part-")?;
            let stem = stem
                .strip_suffix(".csv")
                .or_else(|| stem.strip_suffix(".json"))?;
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
        .flat_map(|(_, path)| super::read_part_file(path))
        .collect()
}
