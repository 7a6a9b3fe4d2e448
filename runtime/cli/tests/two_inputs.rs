//! Operators with two inputs on real processes (issue 16): generated streams A and B unioned
//! into the first input of a keyed co-process function, C into its second, counted per key and
//! window into state shared by both inputs; the committed output must equal a brute-force
//! reference over the three streams' events, exactly once, across a worker killed with
//! SIGKILL. C's event time runs an hour behind A's and B's, so event time is C's: were it
//! combined any other way than as the least of the inputs', C's rows would arrive behind it and
//! be dropped as late.

mod common;

use common::*;

const EVENTS: u64 = 120_000;
/// Events per second per source subtask: each of the 12 source subtasks runs for about 6 s.
const RATE: u64 = 5_000;
const KEYS: u64 = 50;
const WINDOW_MS: i64 = 10_000;
const SEED: u64 = 7;

/// C's event time, an hour behind A's and B's.
const SECOND_OFFSET_MS: i64 = -3_600_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_and_duplicates_no_row_of_a_two_input_job() {
    let want = co_process_reference(EVENTS, KEYS, SEED, WINDOW_MS, SECOND_OFFSET_MS);
    for (salt, victim, backend) in [(11, 0, "heap"), (12, 1, "rocksdb")] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // Parallelism 4 on two workers of two slots: every input reaches the co-process
        // subtasks through both local queues and the network.
        let spec = spec("co-process", &dir.path().join("cluster"), 2, 2)
            .arg("parallelism", 4)
            .arg("events", EVENTS)
            .arg("keys", KEYS)
            .arg("seed", SEED)
            .arg("rate", RATE)
            .arg("window-ms", WINDOW_MS)
            .arg("second-offset-ms", SECOND_OFFSET_MS)
            .arg("output", out.display());
        let got = run_with_kill(spec, &out, kill_moment(salt), victim, backend).await;
        assert_same(&got, &want);
    }
}
