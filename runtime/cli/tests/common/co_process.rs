//! The reference of the catalog's `co-process` job (two generated streams unioned, connected
//! with a third keyed alike, counted per key and window).

use std::collections::BTreeMap;

use spate_operators::generator::GeneratorConfig;

use super::generator;

/// The output of the catalog's `co-process` job, by brute force over its three generated
/// streams: per key and window start, the rows of A and B, the rows of C and the sum of C's
/// values, as strings, sorted.
pub fn co_process_reference(
    events: u64,
    keys: u64,
    seed: u64,
    window_ms: i64,
    second_offset_ms: i64,
) -> Vec<Vec<String>> {
    let base = generator(events, keys, seed);
    let streams = [
        (false, base.clone()),
        (
            false,
            GeneratorConfig {
                seed: seed + 1,
                ..base.clone()
            },
        ),
        (
            true,
            GeneratorConfig {
                seed: seed + 2,
                start_ms: base.start_ms + second_offset_ms,
                ..base
            },
        ),
    ];
    let mut windows: BTreeMap<(i64, i64), (i64, i64, i64)> = BTreeMap::new();
    for (second, config) in &streams {
        for event in config.all_events() {
            let start = event.ts.div_euclid(window_ms) * window_ms;
            let counts = windows.entry((event.key, start)).or_default();
            if *second {
                counts.1 += 1;
                counts.2 += event.value;
            } else {
                counts.0 += 1;
            }
        }
    }
    let mut rows: Vec<Vec<String>> = windows
        .into_iter()
        .map(|((key, start), (first, second, sum))| {
            [key, start, first, second, sum]
                .map(|v| v.to_string())
                .to_vec()
        })
        .collect();
    rows.sort();
    rows
}
