//! The objects a `StreamJob` owns, as pure functions of it: the JobMaster's ServiceAccount,
//! Role and RoleBinding, the ConfigMap with the job's SQL, the JobMaster Deployment and its
//! Service. Each is owned by the StreamJob (an ownerReference with `controller: true`, so the
//! garbage collector removes it with the job) and labelled with the job's name.
//!
//! Worker pods are not made here: the JobMaster creates them through its resource manager,
//! from the worker pod manifest the ConfigMap carries (`worker_pod`).

use std::collections::BTreeMap;

use k8s_openapi::DeepMerge;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvFromSource, EnvVar,
    EnvVarSource, ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SecretEnvSource, Service, ServiceAccount, ServicePort, ServiceSpec, TCPSocketAction, Volume,
    VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::crd::{PullPolicy, Resources, RestartKind, StreamJob};

/// The JobMaster's gRPC port (workers register there, `spate savepoint` calls it).
pub const RPC_PORT: i32 = 6123;
/// The main container of the JobMaster pod. A container of this name in `spec.podTemplate` is
/// merged into it; other containers of the template (sidecars) are kept as they are.
pub const MAIN_CONTAINER: &str = "spate";
/// Where the job's ConfigMap is mounted in the JobMaster pod.
pub const JOB_DIR: &str = "/etc/spate";
/// The ConfigMap key (and file name) holding the job's SQL.
pub const JOB_SQL_KEY: &str = "job.sql";
/// The ConfigMap key (and file name) holding the worker pod manifest the JobMaster completes
/// for each worker pod it creates.
pub const WORKER_POD_KEY: &str = "worker-pod.json";
/// The worker pod's main container.
pub const WORKER_CONTAINER: &str = "worker";
/// Longest StreamJob name: `<name>-jobmaster` must fit a Service name and a label value (63).
pub const MAX_NAME_LEN: usize = 53;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_JOB: &str = "spate.dev/job";
pub const LABEL_COMPONENT: &str = "spate.dev/component";
pub const MANAGED_BY: &str = "spate-operator";
pub const COMPONENT_JOBMASTER: &str = "jobmaster";
/// The component label the JobMaster's resource manager gives worker pods; the scale
/// subresource's label selector names them.
pub const COMPONENT_WORKER: &str = "worker";

/// A spec the schema admitted but that cannot be turned into objects.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("the StreamJob has no namespace")]
    NoNamespace,
    #[error("the StreamJob has no uid yet (it was not read from the API server)")]
    NoUid,
    #[error("the name '{0}' is longer than {MAX_NAME_LEN} characters")]
    NameTooLong(String),
    #[error("{field}: '{value}' is not a duration like 500ms, 10s, 5m or 1h")]
    Duration { field: &'static str, value: String },
    #[error("spec.podTemplate is not a pod template: {0}")]
    PodTemplate(String),
}

/// Name of the JobMaster's Deployment, Service, ServiceAccount, Role and RoleBinding.
pub fn jobmaster_name(job: &StreamJob) -> String {
    format!("{}-jobmaster", job.name_any())
}

/// Name of the ConfigMap holding the job's SQL.
pub fn job_config_map_name(job: &StreamJob) -> String {
    format!("{}-job", job.name_any())
}

/// The job id of the job's `run`-th run. It names the run's checkpoint directory and the
/// JobMaster's `--recover` restores that directory's latest checkpoint in preference to
/// `--from`, so it stays the same across JobMaster restarts of one run and changes with every
/// redeployment from a state the operator chose. It differs for a job deleted and created
/// again under the same name (which starts fresh, as in Flink): the object's uid is part of it.
pub fn job_id(job: &StreamJob, run: i64) -> String {
    let uid: String = job
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let base = format!("{}-{}", job.namespace().unwrap_or_default(), job.name_any());
    match uid.is_empty() {
        true => format!("{base}-{run}"),
        false => format!("{base}-{uid}-{run}"),
    }
}

/// What of the JobMaster Deployment the controller decides rather than the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub job_id: String,
    /// The savepoint or checkpoint to start from (`--from`).
    pub from: Option<String>,
    /// JobMaster pods: 1, or 0 while the job is suspended, a run is being stopped, or the job
    /// ended.
    pub replicas: i32,
}

/// Labels of the objects and pods of one component of a job.
pub fn labels(job_name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "spate".to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_JOB.to_string(), job_name.to_string()),
        (LABEL_COMPONENT.to_string(), component.to_string()),
    ])
}

/// Selects the pods of a job's component (the Deployment's and Service's selector).
fn selector(job_name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "spate".to_string()),
        (LABEL_JOB.to_string(), job_name.to_string()),
        (LABEL_COMPONENT.to_string(), component.to_string()),
    ])
}

/// The label selector of the scale subresource: the job's worker pods.
pub fn worker_selector(job_name: &str) -> String {
    selector(job_name, COMPONENT_WORKER)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metadata of an object owned by `job`: its namespace, the jobmaster labels and a controller
/// owner reference.
fn owned_meta(job: &StreamJob, name: String) -> Result<ObjectMeta, SpecError> {
    let owner = job.controller_owner_ref(&()).ok_or(SpecError::NoUid)?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(job.namespace().ok_or(SpecError::NoNamespace)?),
        labels: Some(labels(&job.name_any(), COMPONENT_JOBMASTER)),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    })
}

/// Refuses what would make invalid child objects before any is applied.
pub fn check(job: &StreamJob) -> Result<(), SpecError> {
    let name = job.name_any();
    if name.len() > MAX_NAME_LEN {
        return Err(SpecError::NameTooLong(name));
    }
    job.namespace().ok_or(SpecError::NoNamespace)?;
    job.uid().ok_or(SpecError::NoUid)?;
    let run = Run {
        job_id: job_id(job, 1),
        from: None,
        replicas: 1,
    };
    jobmaster_args(job, &run)?;
    pod_template(job, &run)?;
    worker_pod(job)?;
    Ok(())
}

pub fn service_account(job: &StreamJob) -> Result<ServiceAccount, SpecError> {
    Ok(ServiceAccount {
        metadata: owned_meta(job, jobmaster_name(job))?,
        ..ServiceAccount::default()
    })
}

/// What the JobMaster may do, in the job's namespace only: run worker pods (its resource
/// manager creates, watches, labels and deletes them), keep ConfigMaps (its own state across
/// restarts), and read its own Deployment (the owner of the worker pods).
pub fn role(job: &StreamJob) -> Result<Role, SpecError> {
    let rule = |group: &str, resource: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(vec![resource.to_string()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    };
    Ok(Role {
        metadata: owned_meta(job, jobmaster_name(job))?,
        rules: Some(vec![
            rule(
                "",
                "pods",
                &["get", "list", "watch", "create", "delete", "patch"],
            ),
            rule(
                "",
                "configmaps",
                &[
                    "get", "list", "watch", "create", "update", "patch", "delete",
                ],
            ),
            rule("apps", "deployments", &["get"]),
        ]),
    })
}

pub fn role_binding(job: &StreamJob) -> Result<RoleBinding, SpecError> {
    let name = jobmaster_name(job);
    Ok(RoleBinding {
        metadata: owned_meta(job, name.clone())?,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: job.namespace(),
            ..Subject::default()
        }]),
    })
}

/// The job's SQL (inline in the spec, or copied from the ConfigMap the spec names) and the
/// worker pod manifest, mounted as files in the JobMaster pod.
pub fn config_map(job: &StreamJob, sql: &str) -> Result<ConfigMap, SpecError> {
    let worker_pod = serde_json::to_string_pretty(&worker_pod(job)?)
        .map_err(|e| SpecError::PodTemplate(e.to_string()))?;
    Ok(ConfigMap {
        metadata: owned_meta(job, job_config_map_name(job))?,
        data: Some(BTreeMap::from([
            (JOB_SQL_KEY.to_string(), sql.to_string()),
            (WORKER_POD_KEY.to_string(), worker_pod),
        ])),
        ..ConfigMap::default()
    })
}

/// The worker pod as far as the spec decides it; the JobMaster completes it for each worker
/// (name, command, `POD_IP`, the `spate.dev/job-id` label, owner, restart policy, service
/// account). `spec.podTemplate` is its base like the JobMaster's, and the template's `spate`
/// container is merged into the `worker` container.
pub fn worker_pod(job: &StreamJob) -> Result<Pod, SpecError> {
    let name = job.name_any();
    let mut template = user_template(job)?;
    if let Some(spec) = template.spec.as_mut() {
        for container in &mut spec.containers {
            if container.name == MAIN_CONTAINER {
                container.name = WORKER_CONTAINER.into();
            }
        }
    }
    let mut pod_labels = labels(&name, COMPONENT_WORKER);
    pod_labels.remove(LABEL_MANAGED_BY);
    pod_labels.insert(LABEL_INSTANCE.into(), name);
    template.merge_from(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: WORKER_CONTAINER.into(),
                image: Some(job.spec.image.clone()),
                image_pull_policy: pull_policy(job),
                resources: requests_and_limits(job.spec.worker.resources.as_ref()),
                env_from: credentials(job),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    });
    Ok(Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: template.spec,
        status: None,
    })
}

pub fn service(job: &StreamJob) -> Result<Service, SpecError> {
    Ok(Service {
        metadata: owned_meta(job, jobmaster_name(job))?,
        spec: Some(ServiceSpec {
            selector: Some(selector(&job.name_any(), COMPONENT_JOBMASTER)),
            ports: Some(vec![ServicePort {
                name: Some("rpc".into()),
                port: RPC_PORT,
                target_port: Some(IntOrString::String("rpc".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The JobMaster of `run`: one pod (or none), replaced by `Recreate` so that two JobMasters of
/// one job never run at once.
pub fn deployment(job: &StreamJob, run: &Run) -> Result<Deployment, SpecError> {
    Ok(Deployment {
        metadata: owned_meta(job, jobmaster_name(job))?,
        spec: Some(DeploymentSpec {
            replicas: Some(run.replicas),
            selector: LabelSelector {
                match_labels: Some(selector(&job.name_any(), COMPONENT_JOBMASTER)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: pod_template(job, run)?,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// The JobMaster's pod: `spec.podTemplate` first, then what the operator needs on top of it
/// (Kubernetes' merge rules: containers, env and volumes by name, ports by number; the
/// operator's values win).
pub fn pod_template(job: &StreamJob, run: &Run) -> Result<PodTemplateSpec, SpecError> {
    let mut template = user_template(job)?;
    template.merge_from(jobmaster_pod(job, run)?);
    Ok(template)
}

/// `spec.podTemplate`, the base of the JobMaster and worker pods.
fn user_template(job: &StreamJob) -> Result<PodTemplateSpec, SpecError> {
    match &job.spec.pod_template {
        Some(value) => serde_json::from_value::<PodTemplateSpec>(value.clone())
            .map_err(|e| SpecError::PodTemplate(e.to_string())),
        None => Ok(PodTemplateSpec::default()),
    }
}

fn pull_policy(job: &StreamJob) -> Option<String> {
    job.spec.image_pull_policy.map(|policy| {
        match policy {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
        .to_string()
    })
}

/// The checkpoint storage credentials as environment variables: the storage client reads them
/// from there (AWS_ACCESS_KEY_ID, GOOGLE_SERVICE_ACCOUNT, AZURE_STORAGE_ACCOUNT_KEY, ...).
fn credentials(job: &StreamJob) -> Option<Vec<EnvFromSource>> {
    let secret = job
        .spec
        .checkpointing
        .as_ref()?
        .credentials_secret
        .as_ref()?;
    Some(vec![EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: secret.clone(),
            optional: Some(false),
        }),
        ..EnvFromSource::default()
    }])
}

/// An environment variable from the pod's own fields (the downward API).
fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn jobmaster_pod(job: &StreamJob, run: &Run) -> Result<PodTemplateSpec, SpecError> {
    let name = job.name_any();
    let env = vec![
        // `--advertise $(POD_IP):6123`: workers reach the JobMaster at its pod's address.
        field_env("POD_IP", "status.podIP"),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        // Worker pods are owned by the Deployment, not by the JobMaster pod: a replacement
        // JobMaster adopts them, and deleting the Deployment garbage-collects them.
        EnvVar {
            name: "SPATE_OWNER_DEPLOYMENT".into(),
            value: Some(jobmaster_name(job)),
            ..EnvVar::default()
        },
    ];
    let container = Container {
        name: MAIN_CONTAINER.into(),
        image: Some(job.spec.image.clone()),
        image_pull_policy: pull_policy(job),
        command: Some(vec!["spate".into()]),
        args: Some(jobmaster_args(job, run)?),
        ports: Some(vec![ContainerPort {
            name: Some("rpc".into()),
            container_port: RPC_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        env_from: credentials(job),
        resources: requests_and_limits(
            job.spec
                .job_master
                .as_ref()
                .and_then(|j| j.resources.as_ref()),
        ),
        // The port is bound once the JobMaster has started; with `--keep-serving` it stays
        // bound after the job ended, to report how (a job whose SQL does not plan included).
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("rpc".into()),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "job".into(),
            mount_path: JOB_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let mut pod_labels = labels(&name, COMPONENT_JOBMASTER);
    pod_labels.remove(LABEL_MANAGED_BY);
    pod_labels.insert(LABEL_INSTANCE.into(), name);
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(jobmaster_name(job)),
            containers: vec![container],
            volumes: Some(vec![Volume {
                name: "job".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: job_config_map_name(job),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
    })
}

/// CPU and memory as requests and equal limits.
fn requests_and_limits(resources: Option<&Resources>) -> Option<ResourceRequirements> {
    let resources = resources?;
    let mut amounts = BTreeMap::new();
    if let Some(cpu) = &resources.cpu {
        amounts.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &resources.memory {
        amounts.insert("memory".to_string(), Quantity(memory.clone()));
    }
    if amounts.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        requests: Some(amounts.clone()),
        limits: Some(amounts),
        ..ResourceRequirements::default()
    })
}

/// The arguments of `spate` in the JobMaster container (`spate jobmaster --help`).
///
/// `--recover` is always given: a JobMaster pod that replaces one that died takes over the
/// tasks its workers kept running, or restores the run's latest completed checkpoint; on the
/// first start of a run there is neither and the job starts fresh or from `--from`.
/// `--keep-serving` keeps the JobMaster up after the job ended (a job whose SQL does not plan
/// included) to report how, instead of exiting into a crash loop.
pub fn jobmaster_args(job: &StreamJob, run: &Run) -> Result<Vec<String>, SpecError> {
    let spec = &job.spec;
    let mut args: Vec<String> = vec![
        "jobmaster".into(),
        format!("{JOB_DIR}/{JOB_SQL_KEY}"),
        "--bind".into(),
        format!("0.0.0.0:{RPC_PORT}"),
        // Kubernetes expands $(POD_IP) from the container's environment.
        "--advertise".into(),
        format!("$(POD_IP):{RPC_PORT}"),
        "--job-id".into(),
        run.job_id.clone(),
        "--recover".into(),
        "--keep-serving".into(),
        "--resource-manager".into(),
        "kubernetes".into(),
        "--worker-pod-template".into(),
        format!("{JOB_DIR}/{WORKER_POD_KEY}"),
        "--worker-slots".into(),
        spec.worker.slots.to_string(),
        "--arg".into(),
        format!("parallelism={}", spec.parallelism),
    ];
    if let Some(checkpointing) = &spec.checkpointing {
        let interval = duration_ms("spec.checkpointing.interval", &checkpointing.interval)?;
        args.extend([
            "--checkpoint-interval-ms".into(),
            interval.to_string(),
            "--checkpoint-dir".into(),
            checkpointing.storage.clone(),
        ]);
    }
    if let Some(restart) = &spec.restart_strategy {
        let kind = match restart.kind {
            RestartKind::FixedDelay => "fixed-delay",
            RestartKind::ExponentialBackoff => "exponential-delay",
            RestartKind::FailureRate => "failure-rate",
        };
        args.extend(["--restart-strategy".into(), kind.into()]);
        if let Some(attempts) = restart.attempts {
            args.extend(["--max-restarts".into(), attempts.to_string()]);
        }
        if let Some(delay) = &restart.delay {
            let delay = duration_ms("spec.restartStrategy.delay", delay)?;
            args.extend(["--restart-delay-ms".into(), delay.to_string()]);
        }
    }
    if let Some(from) = &run.from {
        args.extend(["--from".into(), from.clone()]);
    }
    Ok(args)
}

/// "500ms", "10s", "5m", "1h" in milliseconds (the schema's pattern `^[0-9]+(ms|s|m|h)$`).
pub fn duration_ms(field: &'static str, text: &str) -> Result<u64, SpecError> {
    let bad = || SpecError::Duration {
        field,
        value: text.to_string(),
    };
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let factor = match &text[digits.len()..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(bad)
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases and processes.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CheckpointingSpec, JobMasterSpec, Resources, RestartStrategy, StreamJobSpec};

    fn job() -> StreamJob {
        let spec: StreamJobSpec = serde_json::from_value(serde_json::json!({
            "image": "spate:1.0",
            "parallelism": 4,
            "job": {"sql": "INSERT INTO b SELECT * FROM a"},
        }))
        .unwrap();
        let mut job = StreamJob::new("hop", spec);
        job.metadata.namespace = Some("streams".into());
        job.metadata.uid = Some("0b9e2a8c-uid".into());
        job
    }

    fn run() -> Run {
        Run {
            job_id: "streams-hop-0b9e2a8c-1".into(),
            from: None,
            replicas: 1,
        }
    }

    fn args_of(job: &StreamJob) -> Vec<String> {
        jobmaster_args(job, &run()).unwrap()
    }

    /// The value following `flag` in `args`.
    fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
        let i = args.iter().position(|a| a == flag)?;
        args.get(i + 1).map(String::as_str)
    }

    fn main_container(template: &PodTemplateSpec) -> &Container {
        let spec = template.spec.as_ref().unwrap();
        spec.containers
            .iter()
            .find(|c| c.name == MAIN_CONTAINER)
            .unwrap()
    }

    #[test]
    fn every_child_is_owned_by_the_job_as_controller_and_labelled() {
        let job = job();
        let metas = [
            service_account(&job).unwrap().metadata,
            role(&job).unwrap().metadata,
            role_binding(&job).unwrap().metadata,
            config_map(&job, "sql").unwrap().metadata,
            service(&job).unwrap().metadata,
            deployment(&job, &run()).unwrap().metadata,
        ];
        for meta in metas {
            assert_eq!(meta.namespace.as_deref(), Some("streams"));
            let owners = meta.owner_references.unwrap();
            assert_eq!(owners.len(), 1);
            let owner = &owners[0];
            assert_eq!(owner.kind, "StreamJob");
            assert_eq!(owner.api_version, "spate.dev/v1alpha1");
            assert_eq!(owner.name, "hop");
            assert_eq!(owner.uid, "0b9e2a8c-uid");
            assert_eq!(owner.controller, Some(true));
            let labels = meta.labels.unwrap();
            assert_eq!(labels[LABEL_NAME], "spate");
            assert_eq!(labels[LABEL_JOB], "hop");
            assert_eq!(labels[LABEL_COMPONENT], "jobmaster");
            assert_eq!(labels[LABEL_MANAGED_BY], "spate-operator");
        }
    }

    #[test]
    fn a_job_not_read_from_the_api_server_has_no_children() {
        let mut job = job();
        job.metadata.uid = None;
        assert_eq!(service(&job).unwrap_err(), SpecError::NoUid);
        assert_eq!(check(&job).unwrap_err(), SpecError::NoUid);
    }

    #[test]
    fn the_role_allows_pods_configmaps_and_reading_deployments_in_the_namespace_only() {
        let job = job();
        let role = role(&job).unwrap();
        // A Role (not a ClusterRole) grants nothing outside its namespace.
        assert_eq!(role.metadata.namespace.as_deref(), Some("streams"));
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 3);
        let verbs_for = |group: &str, resource: &str| {
            let rule = rules
                .iter()
                .find(|r| r.resources.as_deref() == Some(&[resource.to_string()][..]))
                .unwrap();
            assert_eq!(rule.api_groups.as_deref(), Some(&[group.to_string()][..]));
            assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
            rule.verbs.clone()
        };
        assert_eq!(
            verbs_for("", "pods"),
            ["get", "list", "watch", "create", "delete", "patch"]
        );
        assert_eq!(
            verbs_for("", "configmaps"),
            [
                "get", "list", "watch", "create", "update", "patch", "delete"
            ]
        );
        assert_eq!(verbs_for("apps", "deployments"), ["get"]);
        for rule in &rules {
            assert!(!rule.verbs.iter().any(|v| v == "*" || v == "escalate"));
        }

        let binding = role_binding(&job).unwrap();
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(binding.role_ref.name, "hop-jobmaster");
        let subjects = binding.subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, "hop-jobmaster");
        assert_eq!(subjects[0].namespace.as_deref(), Some("streams"));
        assert_eq!(
            service_account(&job).unwrap().metadata.name.as_deref(),
            Some("hop-jobmaster")
        );
    }

    #[test]
    fn the_config_map_holds_the_sql_and_the_worker_pod() {
        let cm = config_map(&job(), "SELECT 1").unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("hop-job"));
        let data = cm.data.unwrap();
        assert_eq!(data[JOB_SQL_KEY], "SELECT 1");
        let pod: serde_json::Value = serde_json::from_str(&data[WORKER_POD_KEY]).unwrap();
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["spec"]["containers"][0]["name"], "worker");
    }

    #[test]
    fn the_worker_pod_has_the_spec_image_resources_credentials_labels_and_template() {
        let mut job = job();
        job.spec.image_pull_policy = Some(PullPolicy::Always);
        job.spec.worker.resources = Some(Resources {
            cpu: Some("2".into()),
            memory: Some("4Gi".into()),
        });
        job.spec.checkpointing = Some(CheckpointingSpec {
            interval: "10s".into(),
            storage: "s3://bucket/hop".into(),
            credentials_secret: Some("s3-creds".into()),
            retained: None,
        });
        job.spec.pod_template = Some(serde_json::json!({
            "metadata": {"labels": {"team": "ads"}},
            "spec": {
                "nodeSelector": {"pool": "streaming"},
                "containers": [
                    {"name": "spate", "env": [{"name": "RUST_LOG", "value": "debug"}]},
                    {"name": "sidecar", "image": "proxy:1"}
                ]
            }
        }));
        let pod = worker_pod(&job).unwrap();
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_NAME], "spate");
        assert_eq!(labels[LABEL_INSTANCE], "hop");
        assert_eq!(labels[LABEL_JOB], "hop");
        assert_eq!(labels[LABEL_COMPONENT], "worker");
        assert_eq!(labels["team"], "ads");
        assert!(!labels.contains_key(LABEL_MANAGED_BY));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_selector.unwrap()["pool"], "streaming");
        let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["worker", "sidecar"],
            "the template's spate container is the worker"
        );
        let worker = &spec.containers[0];
        assert_eq!(worker.image.as_deref(), Some("spate:1.0"));
        assert_eq!(worker.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(worker.env.as_ref().unwrap()[0].name, "RUST_LOG");
        let resources = worker.resources.as_ref().unwrap();
        assert_eq!(resources.requests.as_ref().unwrap()["cpu"].0, "2");
        assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "4Gi");
        let env_from = worker.env_from.as_ref().unwrap();
        assert_eq!(env_from[0].secret_ref.as_ref().unwrap().name, "s3-creds");
        // What the JobMaster decides per worker is not in the manifest.
        assert!(worker.command.is_none() && worker.args.is_none());
        assert!(spec.restart_policy.is_none());
    }

    #[test]
    fn the_minimal_spec_gives_the_jobmaster_the_sql_file_its_id_and_parallelism() {
        let args = args_of(&job());
        assert_eq!(args[0], "jobmaster");
        assert_eq!(args[1], "/etc/spate/job.sql");
        assert_eq!(flag(&args, "--bind"), Some("0.0.0.0:6123"));
        assert_eq!(flag(&args, "--advertise"), Some("$(POD_IP):6123"));
        assert_eq!(flag(&args, "--job-id"), Some("streams-hop-0b9e2a8c-1"));
        assert_eq!(flag(&args, "--arg"), Some("parallelism=4"));
        assert_eq!(flag(&args, "--worker-slots"), Some("2"));
        assert_eq!(flag(&args, "--resource-manager"), Some("kubernetes"));
        assert_eq!(
            flag(&args, "--worker-pod-template"),
            Some("/etc/spate/worker-pod.json")
        );
        assert!(args.contains(&"--recover".to_string()));
        assert!(args.contains(&"--keep-serving".to_string()));
        for absent in ["--checkpoint-interval-ms", "--restart-strategy", "--from"] {
            assert!(!args.iter().any(|a| a == absent), "{absent} in {args:?}");
        }
    }

    #[test]
    fn job_ids_name_the_namespace_the_job_its_uid_and_the_run() {
        assert_eq!(job_id(&job(), 1), "streams-hop-0b9e2a8c-1");
        assert_eq!(job_id(&job(), 12), "streams-hop-0b9e2a8c-12");
    }

    #[test]
    fn checkpointing_restarts_and_the_runs_state_become_flags() {
        let mut job = job();
        job.spec.checkpointing = Some(CheckpointingSpec {
            interval: "10s".into(),
            storage: "s3://bucket/hop".into(),
            credentials_secret: Some("s3-creds".into()),
            retained: Some(3),
        });
        job.spec.restart_strategy = Some(RestartStrategy {
            kind: RestartKind::ExponentialBackoff,
            attempts: Some(7),
            delay: Some("2s".into()),
        });
        let from = Run {
            from: Some("s3://bucket/savepoints/sp-1".into()),
            ..run()
        };
        let args = jobmaster_args(&job, &from).unwrap();
        assert_eq!(flag(&args, "--checkpoint-interval-ms"), Some("10000"));
        assert_eq!(flag(&args, "--checkpoint-dir"), Some("s3://bucket/hop"));
        assert_eq!(flag(&args, "--restart-strategy"), Some("exponential-delay"));
        assert_eq!(flag(&args, "--max-restarts"), Some("7"));
        assert_eq!(flag(&args, "--restart-delay-ms"), Some("2000"));
        assert_eq!(flag(&args, "--from"), Some("s3://bucket/savepoints/sp-1"));

        // The credentials reach the JobMaster as environment variables, never as arguments.
        assert!(!args.iter().any(|a| a.contains("s3-creds")));
        let template = pod_template(&job, &run()).unwrap();
        let env_from = main_container(&template).env_from.clone().unwrap();
        assert_eq!(env_from[0].secret_ref.as_ref().unwrap().name, "s3-creds");
    }

    #[test]
    fn every_restart_kind_has_the_jobmasters_name() {
        let mut job = job();
        for (kind, name) in [
            (RestartKind::FixedDelay, "fixed-delay"),
            (RestartKind::ExponentialBackoff, "exponential-delay"),
            (RestartKind::FailureRate, "failure-rate"),
        ] {
            job.spec.restart_strategy = Some(RestartStrategy {
                kind,
                attempts: None,
                delay: None,
            });
            assert_eq!(flag(&args_of(&job), "--restart-strategy"), Some(name));
        }
    }

    #[test]
    fn durations_in_the_schemas_units_convert_to_milliseconds() {
        let ms = |t| duration_ms("f", t);
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("2h"), Ok(7_200_000));
        for bad in ["", "s", "10", "10d", "1.5s", "-1s", "99999999999999999999h"] {
            assert!(ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_deployment_runs_the_runs_jobmaster_from_the_spec_image() {
        let mut job = job();
        job.spec.image_pull_policy = Some(PullPolicy::IfNotPresent);
        job.spec.job_master = Some(JobMasterSpec {
            resources: Some(Resources {
                cpu: Some("500m".into()),
                memory: Some("1Gi".into()),
            }),
        });
        let deployment = deployment(&job, &run()).unwrap();
        let spec = deployment.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.strategy.unwrap().type_.as_deref(),
            Some("Recreate"),
            "two JobMasters of one job must never overlap"
        );
        let selector = spec.selector.match_labels.unwrap();
        let pod_labels = spec.template.metadata.clone().unwrap().labels.unwrap();
        for (k, v) in &selector {
            assert_eq!(pod_labels.get(k), Some(v));
        }
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("hop-jobmaster"));
        let container = main_container(&spec.template);
        assert_eq!(container.image.as_deref(), Some("spate:1.0"));
        assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            container.command.as_deref(),
            Some(&["spate".to_string()][..])
        );
        assert_eq!(container.args.as_ref().unwrap(), &args_of(&job));
        assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 6123);
        let resources = container.resources.as_ref().unwrap();
        assert_eq!(resources.requests.as_ref().unwrap()["cpu"].0, "500m");
        assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "1Gi");
        assert_eq!(
            container.volume_mounts.as_ref().unwrap()[0].mount_path,
            JOB_DIR
        );
        let volume = &pod.volumes.as_ref().unwrap()[0];
        assert_eq!(volume.config_map.as_ref().unwrap().name, "hop-job");
        let env = container.env.as_ref().unwrap();
        let field = |name: &str| {
            let var = env.iter().find(|e| e.name == name).unwrap();
            let source = var.value_from.as_ref().unwrap();
            source.field_ref.as_ref().unwrap().field_path.clone()
        };
        assert_eq!(field("POD_IP"), "status.podIP");
        assert_eq!(field("POD_NAME"), "metadata.name");
        assert_eq!(field("POD_NAMESPACE"), "metadata.namespace");
        let owner = env.iter().find(|e| e.name == "SPATE_OWNER_DEPLOYMENT");
        assert_eq!(owner.unwrap().value.as_deref(), Some("hop-jobmaster"));

        let stopped = Run {
            replicas: 0,
            ..run()
        };
        let spec = super::deployment(&job, &stopped).unwrap().spec.unwrap();
        assert_eq!(spec.replicas, Some(0));
    }

    #[test]
    fn the_service_selects_the_jobmaster_pod_on_the_rpc_port() {
        let job = job();
        let spec = service(&job).unwrap().spec.unwrap();
        let template = pod_template(&job, &run()).unwrap();
        let pod_labels = template.metadata.unwrap().labels.unwrap();
        for (k, v) in spec.selector.unwrap() {
            assert_eq!(pod_labels.get(&k), Some(&v));
        }
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.port, 6123);
        assert_eq!(port.target_port, Some(IntOrString::String("rpc".into())));
    }

    #[test]
    fn the_pod_template_is_merged_under_the_operators_settings() {
        let mut job = job();
        job.spec.pod_template = Some(serde_json::json!({
            "metadata": {"labels": {"team": "ads", "spate.dev/job": "not-hop"}},
            "spec": {
                "nodeSelector": {"pool": "streaming"},
                "serviceAccountName": "theirs",
                "containers": [
                    {
                        "name": "spate",
                        "image": "ignored:0",
                        "env": [{"name": "RUST_LOG", "value": "debug"}],
                        "resources": {"requests": {"cpu": "2"}}
                    },
                    {"name": "sidecar", "image": "proxy:1"}
                ],
                "volumes": [{"name": "scratch", "emptyDir": {}}]
            }
        }));
        let template = pod_template(&job, &run()).unwrap();
        let labels = template.metadata.as_ref().unwrap().labels.clone().unwrap();
        assert_eq!(labels["team"], "ads");
        assert_eq!(labels[LABEL_JOB], "hop", "the operator's labels win");
        let pod = template.spec.as_ref().unwrap();
        assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "streaming");
        assert_eq!(pod.service_account_name.as_deref(), Some("hop-jobmaster"));
        assert_eq!(pod.containers.len(), 2);
        let main = main_container(&template);
        assert_eq!(main.image.as_deref(), Some("spate:1.0"));
        assert_eq!(main.env.as_ref().unwrap()[0].name, "RUST_LOG");
        // No jobMaster.resources in the spec: the template's stay.
        assert_eq!(
            main.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0,
            "2"
        );
        assert!(
            main.args
                .as_ref()
                .unwrap()
                .contains(&"--recover".to_string())
        );
        let volumes: Vec<&str> = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["scratch", "job"]);
    }

    #[test]
    fn a_pod_template_of_the_wrong_shape_is_a_spec_error() {
        let mut job = job();
        job.spec.pod_template = Some(serde_json::json!({"spec": {"containers": "spate"}}));
        assert!(matches!(check(&job), Err(SpecError::PodTemplate(_))));
    }

    #[test]
    fn names_too_long_for_a_service_are_refused() {
        let mut job = job();
        job.metadata.name = Some("x".repeat(MAX_NAME_LEN));
        assert_eq!(check(&job), Ok(()));
        assert_eq!(jobmaster_name(&job).len(), 63);
        job.metadata.name = Some("x".repeat(MAX_NAME_LEN + 1));
        assert!(matches!(check(&job), Err(SpecError::NameTooLong(_))));
    }

    #[test]
    fn the_worker_selector_names_the_jobs_workers() {
        assert_eq!(
            worker_selector("hop"),
            "app.kubernetes.io/name=spate,spate.dev/component=worker,spate.dev/job=hop"
        );
    }
}
