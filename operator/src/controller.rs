//! The StreamJob controller. For each `StreamJob` it reads the job's status from its JobMaster,
//! acts on what changed (a first run, an upgrade per `upgradeMode`, a rescale, a restart, a
//! suspension or resumption, a savepoint nonce, a job that ended), applies the job's children
//! (`resources`) by server-side apply, and writes the status (`status`).
//!
//! * Children are applied with the field manager `spate-operator` and owned by the job, so the
//!   garbage collector removes them with it; the controller watches them (`owns`) and repairs
//!   one that is changed or deleted.
//! * The operator's memory of what it deployed is the status (`status.deployed`): each
//!   redeployment is a new run of the job with its own job id (`upgrade`), whose JobMaster
//!   starts once the previous run's pods are gone (`workers`).
//! * A finalizer gives the deletion of a job a step of the operator's own (`deletion`).
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
use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use spate_proto::v1::JobState;
use tracing::{debug, info, instrument, warn};

use crate::crd::{DeployedRun, DesiredState, Phase, StreamJob, StreamJobStatus};
use crate::metrics::Metrics;
use crate::resources::{self, LABEL_MANAGED_BY, MANAGED_BY, Run, SpecError};
use crate::status::{self, Health};
use jobmaster_api::{JobMasterApi, RpcError};
use observe::JobMasterView;
use upgrade::Carry;

mod deletion;
pub mod jobmaster_api;
mod lifecycle;
mod observe;
mod upgrade;
mod workers;

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "spate-operator";
pub const FINALIZER: &str = "streamjobs.spate.dev/finalizer";

/// Requeue a job without a JobMaster this often even without a watch event (a fallback only).
const RESYNC: Duration = Duration::from_secs(300);
/// Read the status of a job whose JobMaster is to run this often: its changes (checkpoints,
/// failovers, the job ending) come from the JobMaster, which Kubernetes does not watch.
const POLL: Duration = Duration::from_secs(5);
/// Look again this soon while the pods of a stopped run are going.
const STOPPING_POLL: Duration = Duration::from_secs(2);
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
    #[error("{what}: {source}")]
    JobMaster {
        what: &'static str,
        #[source]
        source: RpcError,
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
            Error::JobMaster { .. } => "jobmaster",
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
    /// The JobMasters' gRPC service.
    pub jobmaster: Arc<dyn JobMasterApi>,
    /// Consecutive failed reconciliations per job (by uid), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        reporter: Reporter,
        metrics: Metrics,
        jobmaster: Arc<dyn JobMasterApi>,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            jobmaster,
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
/// cleans up). One `reconcile` span per call, carrying the job's name and namespace.
#[instrument(
    name = "reconcile",
    skip_all,
    fields(job = %job.name_any(), namespace = %job.namespace().unwrap_or_default())
)]
pub async fn reconcile(job: Arc<StreamJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let namespace = job.namespace().ok_or(SpecError::NoNamespace)?;
    let jobs: Api<StreamJob> = Api::namespaced(ctx.client.clone(), &namespace);
    debug!(job = %job.name_any(), %namespace, "reconciling");
    let result = finalizer(&jobs, FINALIZER, job.clone(), |event| async {
        match event {
            Finalizer::Apply(job) => apply(&job, &ctx).await,
            Finalizer::Cleanup(job) => deletion::cleanup(&job, &ctx).await,
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
    let now = status::now();
    // What the API server has, and what this reconciliation makes of it.
    let mut written = job.status.clone();
    let mut status = written.clone().unwrap_or_default();
    if let Err(e) = resources::check(job) {
        let message = e.to_string();
        let health = Health::Invalid {
            reason: "InvalidSpec",
            message: &message,
        };
        status::assess(job, &mut status, health, &now);
        // Nothing to do until the spec changes.
        write_status(job, ctx, &mut written, &status).await?;
        return Ok(Action::await_change());
    }
    let sql = match job_sql(job, ctx, &namespace).await? {
        JobSql::Found(sql) => sql,
        JobSql::Missing(message) => {
            let health = Health::Waiting {
                reason: "JobSourceMissing",
                message: &message,
            };
            status::assess(job, &mut status, health, &now);
            write_status(job, ctx, &mut written, &status).await?;
            return Ok(Action::requeue(WAIT_FOR_SOURCE));
        }
    };
    let spec_hash = lifecycle::spec_hash(job, &sql);
    let jobmaster = observe::jobmaster(ctx, job, &namespace).await?;
    if let Some(live) = jobmaster.status_of(status.job_id.as_deref()) {
        status::fold(job, &mut status, live);
    }
    let took_savepoint = if status.deployed.is_none() {
        start(job, &mut status, spec_hash);
        false
    } else {
        act_on_changes(ctx, job, &mut status, &jobmaster, spec_hash).await?
    };
    if took_savepoint {
        // The savepoint may have stopped the job: where it went must outlive a failure of
        // what follows.
        write_status(job, ctx, &mut written, &status).await?;
    }
    let mut deployed = status.deployed.clone().unwrap_or_default();
    if deployed.stopping.is_some()
        && workers::jobmaster_gone(ctx, job, &namespace, &jobmaster).await?
    {
        workers::delete(ctx, job, &namespace).await?;
        deployed.stopping = None;
        status.deployed = Some(deployed.clone());
    }

    let run = lifecycle::run_of(job, &status, &deployed);
    let client = &ctx.client;
    apply_child(client, &namespace, resources::service_account(job)?).await?;
    apply_child(client, &namespace, resources::role(job)?).await?;
    apply_child(client, &namespace, resources::role_binding(job)?).await?;
    apply_child(client, &namespace, resources::config_map(job, &sql)?).await?;
    apply_child(client, &namespace, resources::service(job)?).await?;
    let deployment = apply_child(client, &namespace, resources::deployment(job, &run)?).await?;

    let failure = status.error.clone().unwrap_or_default();
    let unavailable = jobmaster.unavailable();
    let stalled = status::stalled(&deployment);
    let health = health(
        job,
        &status,
        &deployed,
        &jobmaster,
        &failure,
        &unavailable,
        stalled.as_deref(),
    );
    status::assess(job, &mut status, health, &now);
    write_status(job, ctx, &mut written, &status).await?;
    Ok(Action::requeue(requeue_after(&deployed, &run)))
}

/// A new job's first run.
fn start(job: &StreamJob, status: &mut StreamJobStatus, spec_hash: String) {
    let deployed = lifecycle::first_run(job, spec_hash);
    status.job_id = Some(resources::job_id(job, deployed.run));
    status.deployed = Some(deployed);
    // A nonce in the manifest the job was created with asks for nothing.
    status.savepoint_trigger_nonce = job.spec.savepoint_trigger_nonce;
    status::forget_run(job, status);
    if job.spec.state == DesiredState::Suspended {
        // Created suspended: the run is prepared, nothing is to stop.
        status.phase = Some(Phase::Suspended);
    }
}

/// Acts on what changed since the last reconciliation. Returns whether a savepoint was taken.
async fn act_on_changes(
    ctx: &Context,
    job: &StreamJob,
    status: &mut StreamJobStatus,
    jobmaster: &JobMasterView,
    spec_hash: String,
) -> Result<bool, Error> {
    let mut took_savepoint = upgrade::savepoint_on_nonce(ctx, job, status, jobmaster).await?;
    let deployed = status.deployed.clone().unwrap_or_default();
    let generation = job.metadata.generation.unwrap_or_default();
    let suspending =
        job.spec.state == DesiredState::Suspended && status.phase != Some(Phase::Suspended);
    if deployed.spec_hash != spec_hash && lifecycle::prepared_only(status) {
        // The run prepared by a suspension never ran: it takes the new spec as it is.
        status.deployed = Some(DeployedRun {
            generation,
            spec_hash,
            ..deployed
        });
    } else if deployed.spec_hash != spec_hash || suspending {
        let carry = match suspending {
            true => Carry::for_suspension(job),
            false => Carry::for_upgrade(job.spec.upgrade_mode),
        };
        took_savepoint |=
            upgrade::replace_run(ctx, job, status, jobmaster, carry, spec_hash).await?;
        status.phase = Some(match job.spec.state {
            DesiredState::Running => Phase::Upgrading,
            DesiredState::Suspended => Phase::Suspended,
        });
    } else {
        let mut deployed = deployed;
        // A change that needs no redeployment (a nonce, the upgrade mode).
        deployed.generation = generation;
        if status::ended(status.job_state.as_deref())
            && jobmaster.pods > 0
            && deployed.stopping.is_none()
        {
            // The job ended: its JobMaster goes, and its workers after it. It stays so until
            // the spec changes.
            deployed.stopping = status.job_id.clone();
        }
        status.deployed = Some(deployed);
    }
    Ok(took_savepoint)
}

/// How the job is, from the status this reconciliation made and what it observed.
fn health<'a>(
    job: &StreamJob,
    status: &StreamJobStatus,
    deployed: &DeployedRun,
    jobmaster: &JobMasterView,
    failure: &'a str,
    unavailable: &'a str,
    stalled: Option<&'a str>,
) -> Health<'a> {
    if job.spec.state == DesiredState::Suspended {
        return Health::Suspended {
            stopping: deployed.stopping.is_some() || jobmaster.pods > 0,
        };
    }
    match status.job_state.as_deref() {
        Some("FAILED") => return Health::Failed { message: failure },
        Some("FINISHED") => {
            return Health::Finished {
                reason: "JobFinished",
            };
        }
        Some("CANCELED") => {
            return Health::Finished {
                reason: "JobCanceled",
            };
        }
        Some("STOPPED") => {
            return Health::Finished {
                reason: "JobStopped",
            };
        }
        _ => {}
    }
    if deployed.stopping.is_some() {
        return Health::Upgrading;
    }
    let upgrading = status.phase == Some(Phase::Upgrading);
    match jobmaster.status_of(status.job_id.as_deref()) {
        Some(live) if live.state() == JobState::Running => Health::Running,
        Some(_) => Health::Starting {
            upgrading,
            message: "the JobMaster is starting the job",
            stalled: None,
        },
        // The job ran: its workers keep their tasks for the next JobMaster pod to adopt.
        None if status.job_state.is_some() => Health::Lost {
            phase: match status.phase {
                Some(phase @ (Phase::Deploying | Phase::Upgrading)) => phase,
                _ => Phase::Running,
            },
            message: unavailable,
        },
        None => Health::Starting {
            upgrading,
            message: "waiting for the JobMaster pod",
            stalled,
        },
    }
}

fn requeue_after(deployed: &DeployedRun, run: &Run) -> Duration {
    if deployed.stopping.is_some() {
        STOPPING_POLL
    } else if run.replicas > 0 {
        POLL
    } else {
        RESYNC
    }
}

/// Writes the status when it changed, and announces a new phase as an event.
async fn write_status(
    job: &StreamJob,
    ctx: &Context,
    written: &mut Option<StreamJobStatus>,
    status: &StreamJobStatus,
) -> Result<(), Error> {
    if written.as_ref() == Some(status) {
        return Ok(());
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

    let before = written.as_ref().and_then(|s| s.phase);
    let failovers_before = written.as_ref().and_then(|s| s.failover_count);
    *written = Some(status.clone());
    if let (Some(before), Some(now)) = (failovers_before, status.failover_count)
        && now > before
    {
        let cause = status.last_failover.as_deref().unwrap_or("no reason given");
        let note = format!("failover {now}: tasks restarted from the latest checkpoint ({cause})");
        ctx.publish(job, EventType::Warning, "Failover", note).await;
    }
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
    Ok(())
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
    // A change of a job's spec (its generation, which deletion bumps too) or finalizers
    // reconciles it; a change of its status does not, or every status write (each few
    // seconds while the job runs) would bring another reconciliation at once.
    let (reader, writer) = reflector::store();
    let jobs = watcher(
        api::<StreamJob>(&client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .predicate_filter(
        predicates::generation::<StreamJob>.combine(predicates::finalizers::<StreamJob>),
        Default::default(),
    );
    Controller::for_stream(jobs, reader)
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
