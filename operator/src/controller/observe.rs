//! What the JobMaster of a job says: its pods (by label), and the job's status from the ready
//! one, over gRPC at the pod's IP (no Service DNS is needed, and a pod being replaced is never
//! asked).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use spate_proto::v1::{JobState, JobStatus};

use super::jobmaster_api::{RpcError, within};
use super::{Context, Error, api_error};
use crate::crd::StreamJob;
use crate::resources::{COMPONENT_JOBMASTER, LABEL_COMPONENT, LABEL_JOB, RPC_PORT};

/// Longest wait for a JobMaster's status: it answers from memory.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// The JobMaster as the reconciler found it.
#[derive(Debug)]
pub struct JobMasterView {
    /// The JobMaster pods, ready or not, terminating ones included.
    pub pods: usize,
    /// `ip:port` of the ready one.
    pub address: Option<String>,
    /// What the ready one answered, or why it did not.
    pub answer: Option<Result<JobStatus, RpcError>>,
}

impl JobMasterView {
    /// The job's status, when the JobMaster runs the run `job_id` (during an upgrade the
    /// JobMaster of the previous run may still answer).
    pub fn status_of(&self, job_id: Option<&str>) -> Option<&JobStatus> {
        match &self.answer {
            Some(Ok(status)) if Some(status.job_id.as_str()) == job_id => Some(status),
            _ => None,
        }
    }

    /// The address of the JobMaster of run `job_id` when its job is running.
    pub fn running(&self, job_id: Option<&str>) -> Option<&str> {
        let status = self.status_of(job_id)?;
        (status.state() == JobState::Running)
            .then_some(self.address.as_deref())
            .flatten()
    }

    /// Why the JobMaster's status is not known, for the Degraded condition.
    pub fn unavailable(&self) -> String {
        match (&self.answer, self.pods) {
            (Some(Err(e)), _) => e.to_string(),
            (_, 0) => "the JobMaster pod is missing".into(),
            _ => "the JobMaster pod is not ready".into(),
        }
    }
}

/// The label selector of a job's JobMaster pods.
pub fn jobmaster_pods(job: &StreamJob) -> String {
    format!(
        "{LABEL_JOB}={},{LABEL_COMPONENT}={COMPONENT_JOBMASTER}",
        job.name_any()
    )
}

/// Lists the job's JobMaster pods and asks the ready one for the job's status.
pub async fn jobmaster(
    ctx: &Context,
    job: &StreamJob,
    namespace: &str,
) -> Result<JobMasterView, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&jobmaster_pods(job)))
        .await
        .map_err(api_error(format!(
            "listing the JobMaster pods of {}",
            job.name_any()
        )))?;
    let address = listed
        .items
        .iter()
        .find_map(ready_ip)
        .map(|ip| format!("{ip}:{RPC_PORT}"));
    let answer = match &address {
        Some(address) => {
            Some(within(STATUS_TIMEOUT, address, ctx.jobmaster.job_status(address)).await)
        }
        None => None,
    };
    Ok(JobMasterView {
        pods: listed.items.len(),
        address,
        answer,
    })
}

/// The IP of a pod that is ready and not being deleted.
fn ready_ip(pod: &Pod) -> Option<&str> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then_some(status.pod_ip.as_deref()).flatten()
}
