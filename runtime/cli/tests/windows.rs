//! A keyed window aggregation on real processes (one JobMaster, two workers with two slots each,
//! parallelism 4) equals a brute-force reference computed from the same generated events.

mod common;

use common::*;

const EVENTS: u64 = 300_000;
const KEYS: u64 = 1_000;
const SEED: u64 = 7;

async fn run_window_job(window: &str, assigner: Assigner) {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let spec = spec("window-count", &dir.path().join("cluster"), 2, 2)
        .arg("parallelism", 4)
        .arg("events", EVENTS)
        .arg("keys", KEYS)
        .arg("seed", SEED)
        .arg("window", window)
        .arg("output", output.display());
    let outcome = run_to_end(spec).await;
    let events: Vec<_> = generator(EVENTS, KEYS, SEED).all_events().collect();
    let want = reference(&events, &assigner);
    let got = parse_windows(&read_rows(&output));
    assert_same_windows(&got, &want);

    // The work really was spread: 4 source and 4 window subtasks, each placed once per slot.
    let mut slots: Vec<(String, u32, u32)> = outcome
        .status
        .tasks
        .iter()
        .map(|t| (t.worker_id.clone(), t.slot, t.task.as_ref().unwrap().vertex))
        .collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), 8, "{slots:?}");
    let workers: std::collections::BTreeSet<_> = slots.iter().map(|s| s.0.clone()).collect();
    assert_eq!(workers.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn tumbling_window_count_equals_reference() {
    run_window_job("tumble:10000", Assigner::Tumble(10_000)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hopping_window_count_equals_reference() {
    run_window_job("hop:10000:2500", Assigner::Hop(10_000, 2_500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn session_window_count_equals_reference() {
    run_window_job("session:1500", Assigner::Session(1_500)).await;
}
