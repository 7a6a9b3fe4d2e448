//! The worker's partition registry across failovers, seen from inside the worker.

use std::collections::BTreeMap;
use std::time::Duration;

use spate_jobmaster::{CheckpointSettings, RestartStrategy};
use spate_proto::v1::job_master_client::JobMasterClient;
use spate_proto::v1::{CancelJobRequest, GetJobStatusRequest, JobStatus, TaskState};
use spate_worker::InjectedFailure;

use crate::MiniCluster;

const FAILOVERS: u32 = 10;

/// Every subtask is at attempt `FAILOVERS` and running.
fn settled(status: &JobStatus) -> bool {
    status.restarts >= FAILOVERS
        && !status.tasks.is_empty()
        && status.tasks.iter().all(|t| {
            t.state == TaskState::Running as i32
                && t.task.as_ref().map(|id| id.attempt) == Some(FAILOVERS)
        })
}

/// The window subtask fails before it takes its input channels, ten attempts in a row, so the
/// source subtasks' output for it is never consumed; each failover restarts the whole region.
/// Afterwards the registry may hold only output of the attempts now running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_ten_failovers_the_registry_holds_only_the_current_attempts_partitions() {
    let checkpoints = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", checkpoints.path().display());
    let args: BTreeMap<String, String> = [("parallelism", "2"), ("events", "-1"), ("rate", "2000")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let failure = InjectedFailure::parse(&format!("1/0/connect/{FAILOVERS}")).unwrap();
    let cluster = MiniCluster::start("window-count", args, 2, |jobmaster, worker| {
        jobmaster.checkpointing =
            Some(CheckpointSettings::new(storage, Duration::from_millis(200)));
        jobmaster.restart = RestartStrategy::FixedDelay {
            attempts: 2 * FAILOVERS,
            delay: Duration::ZERO,
        };
        worker.inject_failure = Some(failure);
    })
    .await
    .unwrap();

    let mut client = JobMasterClient::connect(format!("http://{}", cluster.address))
        .await
        .unwrap();
    let status = loop {
        let status = client
            .get_job_status(GetJobStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(
            status.restarts <= FAILOVERS,
            "more failovers than injected: {}",
            status.failure
        );
        if settled(&status) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let window = status
        .tasks
        .iter()
        .find(|t| t.task.as_ref().is_some_and(|id| id.vertex == 1))
        .unwrap();
    assert!(
        window.name.contains("window"),
        "vertex 1 is {}",
        window.name
    );

    let stale: Vec<String> = cluster
        .registry
        .registered()
        .into_iter()
        .filter(|p| p.attempt != FAILOVERS)
        .map(|p| p.to_string())
        .collect();
    assert!(
        stale.is_empty(),
        "{} subpartition(s) of earlier attempts are still registered: {stale:?}",
        stale.len()
    );

    client
        .cancel_job(CancelJobRequest {
            reason: "the test is over".into(),
        })
        .await
        .unwrap();
    let end = cluster.finish().await.unwrap();
    assert_eq!(end.restarts, FAILOVERS, "{}", end.failure);
}
