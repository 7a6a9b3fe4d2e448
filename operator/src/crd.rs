//! The `StreamJob` custom resource (`spate.dev/v1alpha1`). The CRD in `crds/` is generated from
//! these types by `crdgen`; what a manifest may say is decided here, and the API server enforces
//! it (types, enums, ranges, and CEL rules for what spans several fields).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "spate.dev",
    version = "v1alpha1",
    kind = "StreamJob",
    namespaced,
    shortname = "sj",
    status = "StreamJobStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Parallelism","type":"integer","jsonPath":".spec.parallelism"}"#,
    printcolumn = r#"{"name":"Last checkpoint","type":"date","jsonPath":".status.lastCheckpoint.time"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    scale = r#"{"specReplicasPath":".spec.parallelism","statusReplicasPath":".status.replicas","labelSelectorPath":".status.labelSelector"}"#
)]
#[x_kube(validation = Rule::new("!has(self.maxParallelism) || self.maxParallelism >= self.parallelism").message("maxParallelism must be at least parallelism").field_path(".maxParallelism"))]
#[x_kube(validation = Rule::new("self.upgradeMode == 'stateless' || has(self.checkpointing)").message("upgradeMode savepoint and last-state need checkpointing").field_path(".upgradeMode"))]
#[serde(rename_all = "camelCase")]
pub struct StreamJobSpec {
    /// The job: Flink SQL inline or from a ConfigMap.
    pub job: JobSource,
    /// The container image with the `spate` binary.
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Parallelism of the job's operators; the scale subresource sets it.
    #[schemars(range(min = 1, max = 32768))]
    pub parallelism: i32,
    /// Number of key groups: the largest parallelism the job's state can be rescaled to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32768))]
    pub max_parallelism: Option<i32>,
    #[serde(default)]
    pub worker: WorkerSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_master: Option<JobMasterSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpointing: Option<CheckpointingSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_strategy: Option<RestartStrategy>,
    /// `suspended` takes a savepoint and removes the pods; `running` resumes from it.
    #[serde(default)]
    pub state: DesiredState,
    /// How a spec change reaches a running job.
    #[serde(default)]
    pub upgrade_mode: UpgradeMode,
    /// Start from this savepoint or checkpoint (a storage URL) instead of empty state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_savepoint: Option<String>,
    /// Changing it triggers a savepoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_trigger_nonce: Option<i64>,
    /// Changing it restarts the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    /// Merged into the JobMaster and worker pods (a PodTemplateSpec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub pod_template: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerSpec>,
}

/// A pod template is passed through as it is; the API server validates it when pods are made.
fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.sql) != has(self.configMapRef)").message("give the job either as sql or as configMapRef, not both"))]
#[serde(rename_all = "camelCase")]
pub struct JobSource {
    /// The job's Flink SQL script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub sql: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKey>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKey {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Task slots per worker pod.
    #[schemars(range(min = 1, max = 256))]
    pub slots: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        WorkerSpec {
            slots: 2,
            resources: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMasterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// CPU and memory as Kubernetes quantities ("500m", "2Gi").
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointingSpec {
    /// Time between checkpoints, e.g. "10s" or "1m".
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: String,
    /// Where checkpoints go: file://, s3://, gs:// or az:// URL.
    #[schemars(regex(pattern = r"^(file|s3|gs|az)://.+"))]
    pub storage: String,
    /// A Secret with the storage credentials (never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Completed checkpoints to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub retained: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartStrategy {
    pub kind: RestartKind,
    /// Restarts allowed (fixed-delay, exponential-backoff) or per interval (failure-rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub attempts: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub delay: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartKind {
    FixedDelay,
    ExponentialBackoff,
    FailureRate,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    #[default]
    Running,
    Suspended,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    #[default]
    Stateless,
    Savepoint,
    LastState,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerSpec {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_parallelism: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_parallelism: Option<i32>,
    /// Busy-time fraction the autoscaler aims for, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_utilization_percent: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamJobStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// For the scale subresource: the parallelism running now, and the pods that run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkerCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint: Option<CheckpointInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_savepoint: Option<CheckpointInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_count: Option<i64>,
    /// Why the job last failed over (restarted tasks from a checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_second: Option<f64>,
    /// Fraction of time the job's sources were back-pressured, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_pressure: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The job's state as its JobMaster last reported it (CREATED, RUNNING, FINISHED, FAILED,
    /// CANCELED, STOPPED); cleared when a new run is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_state: Option<String>,
    /// The operator's record of what it deployed, which drives upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed: Option<DeployedRun>,
    /// The last `savepointTriggerNonce` a savepoint was taken for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_trigger_nonce: Option<i64>,
}

/// The run of the job the JobMaster Deployment is built for. Each redeployment (upgrade,
/// rescale, restart, resume) is a new run: a new job id, so that the JobMaster's `--recover`
/// (which prefers the job id's own checkpoints) restores what the operator chose instead.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployedRun {
    /// Counts the runs; the last part of the job id.
    pub run: i64,
    /// The `metadata.generation` of the spec this run was built from (or last found equal to).
    pub generation: i64,
    /// Fingerprint of what shapes the running job (the SQL and the spec but `state`,
    /// `upgradeMode`, `initialSavepoint`, `savepointTriggerNonce` and `autoscaler`): a
    /// new generation with the same fingerprint is no upgrade.
    pub spec_hash: String,
    /// The savepoint or checkpoint the run started from (its `--from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// The job id of a run being stopped: the JobMaster Deployment stays at zero until that
    /// run's JobMaster pod is gone, then its worker pods are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    Pending,
    Deploying,
    Running,
    Suspended,
    Upgrading,
    Failed,
    Finished,
}

/// A condition in the Kubernetes convention: Ready, Progressing, Degraded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerCounts {
    pub desired: i32,
    pub ready: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// RFC 3339.
    pub time: String,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
}
