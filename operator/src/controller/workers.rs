//! Removing the worker pods of a run that is over. The JobMaster creates them (owned by its
//! Deployment, so that a replacement JobMaster of the same run adopts them); when the operator
//! replaces or stops the run, it deletes them itself once that run's JobMaster is gone, so
//! that no JobMaster replaces the deleted workers and no worker outlives its job.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use tracing::info;

use super::lifecycle;
use super::observe::JobMasterView;
use super::{Context, Error, api_error};
use crate::crd::StreamJob;
use crate::resources;

/// Whether the JobMaster of the stopped run is gone: no JobMaster pod is left (terminating ones
/// count), and the Deployment is scaled to zero (or absent), so none is coming either.
pub async fn jobmaster_gone(
    ctx: &Context,
    job: &StreamJob,
    namespace: &str,
    jobmaster: &JobMasterView,
) -> Result<bool, Error> {
    if jobmaster.pods > 0 {
        return Ok(false);
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let name = resources::jobmaster_name(job);
    let found = deployments
        .get_opt(&name)
        .await
        .map_err(api_error(format!("reading Deployment {name}")))?;
    Ok(match found {
        None => true,
        Some(deployment) => {
            let wanted = deployment.spec.and_then(|s| s.replicas).unwrap_or(1);
            let pods = deployment.status.and_then(|s| s.replicas).unwrap_or(0);
            wanted == 0 && pods == 0
        }
    })
}

/// Deletes the job's worker pods (of every run).
pub async fn delete(ctx: &Context, job: &StreamJob, namespace: &str) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = lifecycle::worker_pods(job);
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&selector),
    )
    .await
    .map_err(api_error(format!(
        "deleting the worker pods of {}",
        job.name_any()
    )))?;
    info!(job = %job.name_any(), %selector, "deleted the worker pods");
    Ok(())
}
