//! Each phase given a situation, without workers or network: the transition it chooses and
//! what it writes into the record.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use spate_graph::JobGraph;
use spate_proto::v1::{JobState, TaskId, TaskState};

use super::{Ending, Job, Outcome, Phase, Restarting, Running, Transition, WaitingForSlots};
use crate::config::JobMasterConfig;
use crate::events::Event;
use crate::failover::{FailoverPlanner, Failure, FailureCause, RestartBackoff};
use crate::owner::{Owner, OwnerHandle};
use crate::placement::SlotRef;
use crate::record::{JobRecord, TaskEntry};
use crate::resources::Standalone;
use crate::workers::Workers;

fn graph() -> JobGraph {
    let args = BTreeMap::from([("parallelism".to_string(), "2".to_string())]);
    JobGraph::build(spate_jobs::build("passthrough", &args).unwrap()).unwrap()
}

/// Runs `phase` once over a job of `graph` with `config`, no checkpoints and no workers;
/// returns the phase it hands over to.
async fn run(
    phase: Phase,
    config: &JobMasterConfig,
    graph: &JobGraph,
    owner: &mut Owner,
) -> Option<Phase> {
    let mut resources = Standalone;
    let mut job = Job {
        config,
        graph,
        owner,
        workers: Workers {
            resources: &mut resources,
            jobmaster: "127.0.0.1:1",
        },
        coordinator: None,
        planner: FailoverPlanner::new(graph, config.failover),
        backoff: RestartBackoff::new(config.restart.clone()),
        attempt: 0,
        restore: None,
    };
    let next: Transition = phase.run(&mut job).await;
    next.next()
}

/// The outcome of the `Ending` a phase handed over to.
fn outcome(next: Option<Phase>) -> Outcome {
    match next {
        Some(Phase::Ending(Ending { outcome })) => outcome,
        Some(other) => panic!("went to {}, not ending", other.name()),
        None => panic!("the job ended without an outcome"),
    }
}

fn owner() -> (Owner, OwnerHandle) {
    Owner::new(JobRecord::new("job-1", "passthrough"))
}

#[tokio::test]
async fn waiting_for_slots_fails_the_job_when_none_come_in_time() {
    let graph = graph();
    let mut config = JobMasterConfig::new("passthrough", BTreeMap::new());
    config.slot_timeout = Duration::ZERO;
    let (mut owner, _handle) = owner();
    let phase = Phase::WaitingForSlots(WaitingForSlots::Whole);
    let outcome = outcome(run(phase, &config, &graph, &mut owner).await);
    assert!(matches!(outcome, Outcome::Failed { .. }));
    let failure = outcome.to_string();
    assert!(
        failure.starts_with("not enough slots: the job needs 2, workers offered 0"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_cancel_while_waiting_for_slots_ends_the_job_canceled() {
    let graph = graph();
    let config = JobMasterConfig::new("passthrough", BTreeMap::new());
    let (mut owner, handle) = owner();
    let reason = "stop it".to_string();
    handle.events.send(Event::Cancel { reason }).ok().unwrap();
    let phase = Phase::WaitingForSlots(WaitingForSlots::Whole);
    let outcome = outcome(run(phase, &config, &graph, &mut owner).await);
    assert!(matches!(&outcome, Outcome::Canceled(reason) if reason == "stop it"));
}

#[tokio::test]
async fn a_failure_a_restart_cannot_help_ends_the_job_without_restarting() {
    let graph = graph();
    let config = JobMasterConfig::new("passthrough", BTreeMap::new());
    let (mut owner, _handle) = owner();
    let cause = FailureCause::SnapshotUnrestorable {
        task: (0, 0),
        worker: "worker-0".into(),
        message: "checksum mismatch".into(),
    };
    let failure = Failure::new(cause, BTreeSet::from([(0, 0)]));
    let phase = Phase::Restarting(Restarting { failure });
    let outcome = outcome(run(phase, &config, &graph, &mut owner).await);
    let failure = outcome.to_string();
    assert!(
        failure.contains("checksum mismatch (not restarted: restoring the same snapshot"),
        "{failure}"
    );
    assert_eq!(owner.view().restarts, 0);

    // Ending writes the outcome into the record: the status shows it.
    let next = run(
        Phase::Ending(Ending { outcome }),
        &config,
        &graph,
        &mut owner,
    )
    .await;
    assert!(next.is_none(), "the job is over after ending");
    assert_eq!(owner.view().job_state, JobState::Failed);
    assert_eq!(owner.view().failure, failure);
}

#[tokio::test]
async fn running_ends_the_job_once_every_task_finished() {
    let graph = graph();
    let config = JobMasterConfig::new("passthrough", BTreeMap::new());
    let (mut owner, _handle) = owner();
    for subtask in 0..2 {
        let id = TaskId {
            job_id: "job-1".into(),
            vertex: 0,
            subtask,
            attempt: 0,
        };
        let slot = SlotRef {
            worker_id: "worker-0".into(),
            data_address: "127.0.0.1:1".into(),
            slot: subtask,
        };
        let mut task = TaskEntry::new(id, &graph, slot);
        task.state = TaskState::Finished;
        owner.record().tasks.push(task);
    }
    let next = run(Phase::Running(Running), &config, &graph, &mut owner).await;
    assert!(matches!(outcome(next), Outcome::Finished));
}
