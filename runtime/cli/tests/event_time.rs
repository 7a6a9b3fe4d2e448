//! Event time on real processes: disorder within the watermark bound changes nothing; events
//! beyond it are dropped and counted.

mod common;

use common::*;
use spate_operators::generator::GeneratorConfig;

const EVENTS: u64 = 200_000;
const KEYS: u64 = 500;
const SEED: u64 = 11;

async fn windows_of(dir: &std::path::Path, extra: &[(&str, String)]) -> (Windows, u64) {
    let output = dir.join("out");
    let mut spec = spec("window-count", &dir.join("cluster"), 2, 2)
        .arg("parallelism", 4)
        .arg("events", EVENTS)
        .arg("keys", KEYS)
        .arg("seed", SEED)
        .arg("output", output.display());
    for (k, v) in extra {
        spec = spec.arg(k, v);
    }
    let outcome = run_to_end(spec).await;
    let late = outcome
        .status
        .tasks
        .iter()
        .map(|t| t.metrics.as_ref().map_or(0, |m| m.late_records_dropped))
        .sum();
    (parse_windows(&read_rows(&output)), late)
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_input_within_the_bound_gives_the_sorted_result() {
    let sorted_dir = tempfile::tempdir().unwrap();
    let shuffled_dir = tempfile::tempdir().unwrap();
    // 4 source subtasks, blocks of 50 reversed: events move by at most 50 × 4 ms = 200 ms,
    // well inside the 2 s bound.
    let (sorted, sorted_late) = windows_of(sorted_dir.path(), &[]).await;
    let (shuffled, shuffled_late) =
        windows_of(shuffled_dir.path(), &[("disorder", "50".into())]).await;
    assert_eq!((sorted_late, shuffled_late), (0, 0));
    assert_same_windows(&shuffled, &sorted);
    let events: Vec<_> = generator(EVENTS, KEYS, SEED).all_events().collect();
    assert_same_windows(&sorted, &reference(&events, &Assigner::Tumble(10_000)));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_beyond_the_bound_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // One source subtask makes the watermark at the windows exact: it is the source's after the
    // previous batch. Every 997th event from index 2000 on is moved 60 s back, far beyond the
    // 2 s bound plus the 10 s window plus a batch, so each of them is late for certain.
    let config = GeneratorConfig {
        late_every: 997,
        late_by_ms: 60_000,
        late_after: 2_000,
        disorder: 5,
        ..generator(EVENTS, KEYS, SEED)
    };
    let (got, late) = windows_of(
        dir.path(),
        &[
            ("source-parallelism", "1".into()),
            ("batch-size", "500".into()),
            ("disorder", config.disorder.to_string()),
            ("late-every", config.late_every.to_string()),
            ("late-by-ms", config.late_by_ms.to_string()),
            ("late-after", config.late_after.to_string()),
        ],
    )
    .await;
    let injected = (0..EVENTS).filter(|&i| config.is_late(i)).count() as u64;
    assert!(injected > 100);
    assert_eq!(late, injected, "late records counted");
    let on_time: Vec<_> = config
        .all_events()
        .filter(|e| !config.is_late(e.index))
        .collect();
    assert_same_windows(&got, &reference(&on_time, &Assigner::Tumble(10_000)));
}
