//! Worker pods for a JobMaster that runs on Kubernetes: created from the pod template the
//! operator gives the JobMaster, labelled with the job, owned by the JobMaster's Deployment (so
//! they outlive a JobMaster pod, and go with the job), watched, replaced when lost, and
//! re-adopted by a replacement JobMaster, which tells them its new address.

mod manager;
mod pods;

pub use manager::{Connected, KubernetesPods, Settings, connect};
pub use pods::{WorkerPods, job_label};

/// What can go wrong setting up the resource manager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the worker pod template {path}: {source}")]
    Template {
        path: String,
        source: std::io::Error,
    },
    #[error("the worker pod template {path} is not a Pod manifest: {source}")]
    TemplateFormat {
        path: String,
        source: serde_json::Error,
    },
    #[error("no Kubernetes client configuration (in-cluster or KUBECONFIG): {0}")]
    Client(#[source] kube::Error),
    #[error("{0} is not set: the JobMaster pod needs it from the downward API")]
    MissingEnv(&'static str),
    #[error("looking up the owner Deployment {name}: {source}")]
    Owner { name: String, source: kube::Error },
}
