//! The worker pod: the operator's template, completed with what only the JobMaster knows.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Port of each worker's control service: fixed, so that a replacement JobMaster that finds a
/// worker pod by its labels can reach it at the pod's IP.
pub const CONTROL_PORT: u16 = 6124;
pub const COMPONENT_LABEL: &str = "spate.dev/component";
pub const JOB_ID_LABEL: &str = "spate.dev/job-id";
/// Where a worker keeps task state: an emptyDir, so it survives the process but not the pod.
const STATE_DIR: &str = "/var/lib/spate";
/// Workers keep their tasks this long without a JobMaster: enough for a replacement JobMaster
/// pod to be scheduled and started.
const JOBMASTER_TIMEOUT_S: u32 = 120;

/// Builds the job's worker pods.
#[derive(Debug, Clone)]
pub struct WorkerPods {
    pub template: Pod,
    pub job_id: String,
    /// The JobMaster's address as workers reach it.
    pub jobmaster: String,
    pub slots: u32,
    pub owner: Option<OwnerReference>,
    /// Pod names start with it; the API server appends a unique suffix.
    pub name_prefix: String,
}

/// The job id as a label value (at most 63 characters; longer ids keep their start and a hash).
pub fn job_label(job_id: &str) -> String {
    let clean: String = job_id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '-',
        })
        .collect();
    if clean.len() <= 63 && clean == job_id {
        return clean;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    job_id.hash(&mut hasher);
    let start: String = clean.chars().take(46).collect();
    format!(
        "{}-{:016x}",
        start.trim_end_matches(['-', '_', '.']),
        hasher.finish()
    )
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

impl WorkerPods {
    pub fn selector(&self) -> String {
        format!(
            "{COMPONENT_LABEL}=worker,{JOB_ID_LABEL}={}",
            job_label(&self.job_id)
        )
    }

    pub fn pod(&self) -> Pod {
        let mut pod = self.template.clone();
        let meta = &mut pod.metadata;
        meta.name = None;
        meta.generate_name = Some(format!("{}-worker-", self.name_prefix));
        meta.namespace = None;
        meta.resource_version = None;
        meta.uid = None;
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(COMPONENT_LABEL.into(), "worker".into());
        labels.insert(JOB_ID_LABEL.into(), job_label(&self.job_id));
        meta.owner_references = self.owner.clone().map(|owner| vec![owner]);

        let spec = pod.spec.get_or_insert_with(PodSpec::default);
        spec.restart_policy = Some("Never".into());
        if spec.containers.is_empty() {
            spec.containers.push(Container::default());
        }
        let index = spec
            .containers
            .iter()
            .position(|c| c.name == "worker")
            .unwrap_or(0);
        let container = &mut spec.containers[index];
        container.name = "worker".into();
        container.command = Some(vec!["spate".into()]);
        container.args = Some(self.args());
        let env = container.env.get_or_insert_with(Vec::new);
        env.retain(|e| e.name != "POD_NAME" && e.name != "POD_IP");
        // Kubernetes expands $(POD_NAME) and $(POD_IP) in the args from these.
        env.push(field_env("POD_NAME", "metadata.name"));
        env.push(field_env("POD_IP", "status.podIP"));
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        mounts.retain(|m| m.mount_path != STATE_DIR);
        mounts.push(VolumeMount {
            name: "spate-state".into(),
            mount_path: STATE_DIR.into(),
            ..VolumeMount::default()
        });
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != "spate-state");
        volumes.push(Volume {
            name: "spate-state".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        pod
    }

    fn args(&self) -> Vec<String> {
        [
            "worker",
            "--jobmaster",
            &self.jobmaster,
            "--id",
            "$(POD_NAME)",
            "--bind-host",
            "$(POD_IP)",
            "--control-port",
            &CONTROL_PORT.to_string(),
            "--slots",
            &self.slots.to_string(),
            "--state-dir",
            &format!("{STATE_DIR}/state"),
            "--jobmaster-timeout-s",
            &JOBMASTER_TIMEOUT_S.to_string(),
        ]
        .map(String::from)
        .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn template() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ignored", "labels": {"spate.dev/job": "hop"}},
            "spec": {
                "serviceAccountName": "hop-jobmaster",
                "containers": [{
                    "name": "worker",
                    "image": "spate:dev",
                    "resources": {"limits": {"cpu": "1"}},
                    "env": [{"name": "AWS_REGION", "value": "us-east-1"}]
                }]
            }
        }))
        .unwrap()
    }

    fn builder() -> WorkerPods {
        WorkerPods {
            template: template(),
            job_id: "streams-hop-0b9e2a8c-1".into(),
            jobmaster: "$(JOBMASTER_IP):6123".into(),
            slots: 2,
            owner: Some(OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "hop-jobmaster".into(),
                uid: "u-1".into(),
                ..OwnerReference::default()
            }),
            name_prefix: "hop".into(),
        }
    }

    #[test]
    fn completes_the_template() {
        let pod = builder().pod();
        let meta = &pod.metadata;
        assert_eq!(meta.name, None);
        assert_eq!(meta.generate_name.as_deref(), Some("hop-worker-"));
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["spate.dev/job"], "hop", "template labels kept");
        assert_eq!(labels[COMPONENT_LABEL], "worker");
        assert_eq!(labels[JOB_ID_LABEL], "streams-hop-0b9e2a8c-1");
        assert_eq!(
            meta.owner_references.as_ref().unwrap()[0].kind,
            "Deployment"
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some("spate:dev"));
        assert_eq!(
            container.resources,
            Some(ResourceRequirements {
                limits: Some(
                    [(
                        "cpu".to_string(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into())
                    )]
                    .into()
                ),
                ..ResourceRequirements::default()
            })
        );
        let args = container.args.as_ref().unwrap();
        let flag = |name: &str| {
            let i = args.iter().position(|a| a == name).unwrap();
            args[i + 1].as_str()
        };
        assert_eq!(args[0], "worker");
        assert_eq!(flag("--jobmaster"), "$(JOBMASTER_IP):6123");
        assert_eq!(flag("--id"), "$(POD_NAME)");
        assert_eq!(flag("--bind-host"), "$(POD_IP)");
        assert_eq!(flag("--control-port"), "6124");
        assert_eq!(flag("--slots"), "2");
        let env: Vec<&str> = container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(env, ["AWS_REGION", "POD_NAME", "POD_IP"]);
        assert!(
            spec.volumes
                .as_ref()
                .unwrap()
                .iter()
                .any(|v| v.name == "spate-state" && v.empty_dir.is_some())
        );
    }

    #[test]
    fn long_or_odd_job_ids_become_valid_label_values() {
        assert_eq!(job_label("ns-job-1234abcd-2"), "ns-job-1234abcd-2");
        let long = "a-very-long-namespace-name-and-a-very-long-job-name-0123abcd-17";
        let label = job_label(long);
        assert!(label.len() <= 63, "{label}");
        assert!(label.starts_with("a-very-long-namespace"));
        assert_ne!(job_label("job/1"), job_label("job:1"), "hashed, not merged");
        assert_eq!(
            builder().selector(),
            "spate.dev/component=worker,spate.dev/job-id=streams-hop-0b9e2a8c-1"
        );
    }
}
