//! The StreamJob controller: for each `StreamJob`, apply its children (`resources`) by
//! server-side apply, then report what it observed in the status subresource (`status`).
//!
//! * Children are applied with the field manager `spate-operator` and owned by the job, so the
//!   garbage collector removes them with it; the controller watches them (`owns`) and repairs
//!   one that is changed or deleted.
//! * `state: suspended` scales the JobMaster Deployment to zero.
//! * A finalizer gives the deletion of a job a step of the operator's own (see `cleanup`).
//! * A failed reconciliation is retried with an exponential backoff per job.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::crd::{Phase, StreamJob};
use crate::metrics::Metrics;
use crate::resources::{self, LABEL_MANAGED_BY, MANAGED_BY, SpecError};
use crate::status::{self, Observation};

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "spate-operator";
pub const FINALIZER: &str = "streamjobs.spate.dev/finalizer";

/// Requeue a healthy job this often even without a watch event (a fallback only).
const RESYNC: Duration = Duration::from_secs(300);
/// Retry a job whose SQL is not there yet (its ConfigMap is not watched).
const WAIT_FOR_SOURCE: Duration = Duration::from_secs(30);
/// Backoff of failed reconciliations: doubling from the first, up to the last.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(5);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Finalizer(Box<finalizer::Error<Error>>),
}

impl Error {
    /// A short, fixed name of the error's kind (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Api { .. } => "api",
            Error::Spec(_) => "spec",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.kind(),
                // Adding or removing the finalizer failed, or the object has no name.
                _ => "finalizer",
            },
        }
    }
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// What every reconciliation shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Consecutive failed reconciliations per job (by uid), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, reporter: Reporter, metrics: Metrics) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            failures: Mutex::default(),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes an event about `job`; events are best-effort (a failure is logged).
    async fn publish(&self, job: &StreamJob, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &job.object_ref(&())).await {
            warn!(job = %job.name_any(), reason, error = %e, "could not publish an event");
        }
    }
}

fn backoff_key(job: &StreamJob) -> String {
    job.uid()
        .unwrap_or_else(|| format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any()))
}

/// Reconciles one job: adds the finalizer, then applies (or, when the job is being deleted,
/// cleans up).
pub async fn reconcile(job: Arc<StreamJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let namespace = job.namespace().ok_or(SpecError::NoNamespace)?;
    let jobs: Api<StreamJob> = Api::namespaced(ctx.client.clone(), &namespace);
    debug!(job = %job.name_any(), %namespace, "reconciling");
    let result = finalizer(&jobs, FINALIZER, job.clone(), |event| async {
        match event {
            Finalizer::Apply(job) => apply(&job, &ctx).await,
            Finalizer::Cleanup(job) => cleanup(&job, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    match &result {
        Ok(_) => {
            ctx.failures().remove(&backoff_key(&job));
        }
        Err(e) => {
            let note = format!("{e}");
            ctx.publish(&job, EventType::Warning, "ReconcileFailed", note)
                .await;
        }
    }
    result
}

/// Retries a failed job after 5 s, 10 s, 20 s ... up to 5 minutes.
pub fn error_policy(job: Arc<StreamJob>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.kind());
    let failures = {
        let mut failures = ctx.failures();
        let n = failures.entry(backoff_key(&job)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = BACKOFF_FIRST
        .saturating_mul(1 << (failures - 1).min(16))
        .min(BACKOFF_MAX);
    warn!(job = %job.name_any(), error = %error, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The job's SQL, or why it is not there yet.
enum JobSql {
    Found(String),
    Missing(String),
}

async fn job_sql(job: &StreamJob, ctx: &Context, namespace: &str) -> Result<JobSql, Error> {
    let source = &job.spec.job;
    if let Some(sql) = &source.sql {
        return Ok(JobSql::Found(sql.clone()));
    }
    let Some(reference) = &source.config_map_ref else {
        // The schema requires one of the two.
        return Ok(JobSql::Missing(
            "spec.job gives neither sql nor configMapRef".into(),
        ));
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let found = config_maps
        .get_opt(&reference.name)
        .await
        .map_err(api_error(format!("reading ConfigMap {}", reference.name)))?;
    Ok(match found {
        None => JobSql::Missing(format!("ConfigMap {} does not exist", reference.name)),
        Some(cm) => match cm.data.and_then(|mut data| data.remove(&reference.key)) {
            Some(sql) => JobSql::Found(sql),
            None => JobSql::Missing(format!(
                "ConfigMap {} has no key {}",
                reference.name, reference.key
            )),
        },
    })
}

/// Applies one child by server-side apply and returns it as the API server has it.
async fn apply_child<K>(client: &Client, namespace: &str, child: K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let name = child.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&child))
        .await
        .map_err(api_error(format!("applying {} {name}", K::kind(&()))))
}

async fn apply(job: &StreamJob, ctx: &Context) -> Result<Action, Error> {
    let namespace = job.namespace().ok_or(SpecError::NoNamespace)?;
    if let Err(e) = resources::check(job) {
        let message = e.to_string();
        let observed = Observation::Invalid {
            reason: "InvalidSpec",
            message: &message,
        };
        // Nothing to do until the spec changes.
        return report(job, ctx, observed, Action::await_change()).await;
    }
    let sql = match job_sql(job, ctx, &namespace).await? {
        JobSql::Found(sql) => sql,
        JobSql::Missing(message) => {
            let observed = Observation::Waiting {
                reason: "JobSourceMissing",
                message: &message,
            };
            return report(job, ctx, observed, Action::requeue(WAIT_FOR_SOURCE)).await;
        }
    };
    let client = &ctx.client;
    apply_child(client, &namespace, resources::service_account(job)?).await?;
    apply_child(client, &namespace, resources::role(job)?).await?;
    apply_child(client, &namespace, resources::role_binding(job)?).await?;
    apply_child(client, &namespace, resources::config_map(job, &sql)?).await?;
    apply_child(client, &namespace, resources::service(job)?).await?;
    let deployment = apply_child(client, &namespace, resources::deployment(job, &sql)?).await?;
    report(
        job,
        ctx,
        Observation::Applied(&deployment),
        Action::requeue(RESYNC),
    )
    .await
}

/// Writes the status (when it changed) and announces a new phase as an event.
async fn report(
    job: &StreamJob,
    ctx: &Context,
    observed: Observation<'_>,
    action: Action,
) -> Result<Action, Error> {
    let status = status::desired(job, observed, &status::now());
    if status::unchanged(job.status.as_ref(), &status) {
        return Ok(action);
    }
    let name = job.name_any();
    let jobs: Api<StreamJob> =
        Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let patch = Patch::Apply(serde_json::json!({
        "apiVersion": StreamJob::api_version(&()),
        "kind": StreamJob::kind(&()),
        "status": status,
    }));
    jobs.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &patch)
        .await
        .map_err(api_error(format!("writing the status of StreamJob {name}")))?;

    let before = job.status.as_ref().and_then(|s| s.phase);
    if let Some(phase) = status.phase
        && before != Some(phase)
    {
        info!(job = %name, ?before, ?phase, "phase");
        let type_ = match phase {
            Phase::Failed | Phase::Pending => EventType::Warning,
            _ => EventType::Normal,
        };
        let note = status
            .error
            .clone()
            .or_else(|| {
                let ready = status.conditions.iter().find(|c| c.type_ == status::READY);
                ready.map(|c| c.message.clone())
            })
            .unwrap_or_default();
        ctx.publish(job, type_, &format!("{phase:?}"), note).await;
    }
    Ok(action)
}

/// The job is being deleted. Its children are owned by it and the garbage collector removes
/// them (the JobMaster's worker pods go with the JobMaster), so there is nothing to delete
/// here. Events are best-effort: a namespace being deleted refuses new events, and failing
/// here would keep the finalizer and hang the namespace's deletion.
async fn cleanup(job: &StreamJob, ctx: &Context) -> Result<Action, Error> {
    // Future work: with `upgradeMode: savepoint`, take a savepoint before the pods go (what
    // Flink's operator calls savepoint-on-deletion). That needs the operator's JobMaster
    // client (trigger a savepoint, read where it went), which does not exist yet.
    ctx.publish(
        job,
        EventType::Normal,
        "Deleting",
        "the JobMaster and the job's objects are removed with the StreamJob".into(),
    )
    .await;
    ctx.failures().remove(&backoff_key(job));
    Ok(Action::await_change())
}

/// Runs the controller until SIGINT/SIGTERM: StreamJobs in `namespace`, or in every namespace.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    // Only the operator's own objects: the caches stay small in a busy cluster.
    let owned = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    Controller::new(
        api::<StreamJob>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<Deployment>(&client, namespace), owned.clone())
    .owns(api::<ConfigMap>(&client, namespace), owned.clone())
    .owns(api::<Service>(&client, namespace), owned.clone())
    .owns(api::<ServiceAccount>(&client, namespace), owned.clone())
    .owns(api::<Role>(&client, namespace), owned.clone())
    .owns(api::<RoleBinding>(&client, namespace), owned)
    .shutdown_on_signal()
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        match result {
            Ok((job, action)) => debug!(%job, ?action, "reconciled"),
            Err(e) => debug!(error = %e, "reconcile did not complete"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
