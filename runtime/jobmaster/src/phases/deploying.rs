use std::collections::BTreeSet;
use std::time::Instant;

use futures::future::join_all;
use spate_graph::SubtaskRef;
use spate_proto::v1::{CheckpointConfig, DeployTaskRequest, JobSpec, JobState, TaskId};

use super::{Job, Restarting, Running, Transition, TransitionTo};
use crate::checkpoint::task_restore;
use crate::failover::{Failure, FailureCause};
use crate::placement::{Placement, deployment};
use crate::record::TaskEntry;
use crate::workers::unreachable_worker;

/// Writes the new attempts of `which` into the record, as `placement` places them, and deploys
/// them; the coordinator learns of them once every worker took its tasks.
pub struct Deploying {
    pub which: BTreeSet<SubtaskRef>,
    /// Every subtask's slot and attempt once these are deployed.
    pub placement: Placement,
}

impl TransitionTo<Running> for Deploying {}
impl TransitionTo<Restarting> for Deploying {}

impl Deploying {
    pub async fn run(self, job: &mut Job<'_>) -> Transition {
        let requests = self.write_attempts(job);
        match deploy(job, requests).await {
            Ok(()) => {
                if let Some(coordinator) = job.coordinator.as_mut() {
                    let restored = job
                        .restore
                        .as_ref()
                        .map_or(0, |r| r.location.checkpoint_id());
                    job.owner
                        .serve_until(coordinator.deployed(&self.which, restored))
                        .await;
                }
                Transition::to(&self, Running)
            }
            Err(cause) => {
                // A worker that refuses the deployment is most likely gone: mark it lost now,
                // or the restart would place the same tasks on its slots again.
                if matches!(cause, FailureCause::DeployFailed { .. }) {
                    unreachable_worker(job.owner).await;
                }
                let failure = Failure::new(cause, self.which.clone());
                Transition::to(&self, Restarting { failure })
            }
        }
    }

    /// Makes the new attempts the record's current ones; returns their deployments, by worker.
    fn write_attempts(&self, job: &mut Job<'_>) -> Vec<(String, DeployTaskRequest)> {
        let (config, graph) = (job.config, job.graph);
        let spec = JobSpec {
            name: config.job_name.clone(),
            args: config.job_args.clone().into_iter().collect(),
        };
        let fingerprint = graph.fingerprint();
        let checkpointing = job.coordinator.as_ref().map(|c| {
            let settings = c.settings();
            CheckpointConfig {
                storage_url: settings.storage_url.clone(),
                storage_options: settings.storage_options.clone().into_iter().collect(),
                job_dir: config.job_id.clone(),
                state_backend: settings.state_backend.clone(),
            }
        });
        let record = job.owner.record();
        record
            .tasks
            .retain(|t| !self.which.contains(&(t.id.vertex, t.id.subtask)));
        let mut requests = Vec::new();
        for &(vertex, subtask) in &self.which {
            let assignment = &self.placement[vertex as usize][subtask as usize];
            let id = TaskId {
                job_id: config.job_id.clone(),
                vertex,
                subtask,
                attempt: assignment.attempt,
            };
            record
                .tasks
                .push(TaskEntry::new(id.clone(), graph, assignment.slot.clone()));
            let mut request = deployment(graph, &self.placement, &spec, id, &fingerprint);
            request.checkpointing = checkpointing.clone();
            request.restore = job
                .restore
                .as_ref()
                .map(|r| task_restore(r, graph, vertex, subtask));
            requests.push((assignment.slot.worker_id.clone(), request));
        }
        record.tasks.sort_by_key(|t| (t.id.vertex, t.id.subtask));
        record.job_state = JobState::Running;
        record.started.get_or_insert_with(Instant::now);
        requests
    }
}

/// Sends the deployments; a corrupt snapshot decides the outcome whichever deployment found it
/// first (retrying cannot help there), else the first refusal does.
async fn deploy(
    job: &mut Job<'_>,
    requests: Vec<(String, DeployTaskRequest)>,
) -> Result<(), FailureCause> {
    let clients = job.owner.clients();
    let deployments = requests.into_iter().map(|(worker, request)| {
        let client = clients.deployer(&worker);
        async move {
            let task = request.task.clone().unwrap_or_default();
            let task = (task.vertex, task.subtask);
            let sent = match client {
                Ok(mut client) => client
                    .deploy_task(request)
                    .await
                    .map(|_| ())
                    .map_err(|s| (s.code() == tonic::Code::DataLoss, s.message().to_string())),
                Err(e) => Err((false, format!("{e:#}"))),
            };
            sent.map_err(|(unrestorable, message)| match unrestorable {
                true => FailureCause::SnapshotUnrestorable {
                    task,
                    worker,
                    message,
                },
                false => FailureCause::DeployFailed {
                    task,
                    worker,
                    message,
                },
            })
        }
    });
    let mut errors: Vec<FailureCause> = job
        .owner
        .serve_until(join_all(deployments))
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    let unrestorable = errors
        .iter()
        .position(|e| matches!(e, FailureCause::SnapshotUnrestorable { .. }));
    match unrestorable {
        Some(index) => Err(errors.swap_remove(index)),
        None => errors.into_iter().next().map_or(Ok(()), Err),
    }
}
