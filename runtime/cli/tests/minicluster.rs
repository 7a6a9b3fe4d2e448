//! The in-process runner (`spate-minicluster`: a JobMaster and a worker in the test process)
//! and real processes run the same SQL jobs to the same output: the SQL examples of
//! `examples/`, at parallelism 4. Each run's time is printed; the in-process one starts no
//! process.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::*;

const EVENTS: u64 = 50_000;
const PARALLELISM: u32 = 4;

/// The corpus: every SQL example the SQL tests check against their references.
const CORPUS: &[&str] = &[
    "q0.sql",
    "q1.sql",
    "q2.sql",
    "q5_hop_count.sql",
    "q7_tumble_max.sql",
];

fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn the_in_process_runner_and_real_processes_agree_on_the_sql_examples() {
    for name in CORPUS {
        let dir = tempfile::tempdir().unwrap();
        let (in_process, on_processes) =
            (dir.path().join("in-process"), dir.path().join("processes"));

        let args = BTreeMap::from([
            ("sql".to_string(), example_sql(name, &in_process, EVENTS)),
            ("parallelism".to_string(), PARALLELISM.to_string()),
        ]);
        let started = Instant::now();
        spate_minicluster::run_to_end("sql", args, PARALLELISM)
            .await
            .unwrap_or_else(|e| panic!("{name} in process: {e:#}"));
        let in_process_took = started.elapsed();

        let spec = spec("sql", &dir.path().join("cluster"), 2, 2)
            .arg("sql", example_sql(name, &on_processes, EVENTS))
            .arg("parallelism", PARALLELISM);
        let started = Instant::now();
        run_to_end(spec).await;
        let on_processes_took = started.elapsed();

        let got = sorted(read_rows(&in_process));
        assert!(!got.is_empty(), "{name}: no output");
        assert_eq!(got, sorted(read_rows(&on_processes)), "{name}");
        eprintln!(
            "{name}: {} rows, in process {in_process_took:.2?}, on processes {on_processes_took:.2?}",
            got.len()
        );
    }
}
