//! The reconciler against a mocked API server: each test answers the requests the reconciler
//! makes, in order, and checks what it sent.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use spate_proto::v1::JobState;
use tokio::task::JoinHandle;

use super::{
    BACKOFF_FIRST, BACKOFF_MAX, Context, Error, POLL, RESYNC, STOPPING_POLL, error_policy,
    reconcile,
};
use crate::crd::StreamJob;
use crate::fixtures::{self, JOBMASTER_ADDRESS, NAME, NAMESPACE, job_status, jobmaster_pod};
use crate::metrics;

const SQL: &str = "INSERT INTO b SELECT * FROM a";
const CHECKPOINTING: &str = "s3://ckpt/hop";

fn start(job: &StreamJob, ctx: &Arc<Context>) -> JoinHandle<Result<Action, Error>> {
    tokio::spawn(reconcile(Arc::new(job.clone()), ctx.clone()))
}

async fn finish(reconciling: JoinHandle<Result<Action, Error>>) -> Result<Action, Error> {
    tokio::time::timeout(Duration::from_secs(5), reconciling)
        .await
        .expect("the reconciler did not finish")
        .unwrap()
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn job_path() -> String {
    format!("/apis/spate.dev/v1alpha1/namespaces/{NAMESPACE}/streamjobs/{NAME}")
}

/// The JobMaster container's arguments in an applied Deployment.
fn args(deployment: &Value) -> Vec<String> {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    serde_json::from_value(container["args"].clone()).unwrap()
}

/// The value following `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

fn job_id(run: i64) -> String {
    format!("{NAMESPACE}-{NAME}-6f1c5e0a-{run}")
}

/// A job with the finalizer, checkpointing and `upgradeMode: mode`.
fn stateful(mode: &str, spec: Value) -> StreamJob {
    let mut base = json!({
        "upgradeMode": mode,
        "checkpointing": {"interval": "10s", "storage": CHECKPOINTING},
    });
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), spec) {
        base.extend(extra);
    }
    fixtures::with_finalizer(fixtures::job(base))
}

/// `job` as the operator left it: run `run` deployed (from `from`) for its spec, in `phase`,
/// its job last seen in `job_state`.
fn deployed(
    mut job: StreamJob,
    run: i64,
    from: Option<&str>,
    phase: &str,
    job_state: Option<&str>,
) -> StreamJob {
    let hash = super::lifecycle::spec_hash(&job, SQL);
    job.status = Some(
        serde_json::from_value(json!({
            "phase": phase,
            "jobId": job_id(run),
            "jobState": job_state,
            "parallelism": job.spec.parallelism,
            "deployed": {
                "run": run,
                "generation": job.metadata.generation,
                "specHash": hash,
                "restoredFrom": from,
            },
        }))
        .unwrap(),
    );
    job
}

/// The job after a spec change: `change` applied to the spec, the generation bumped.
fn changed(job: &StreamJob, change: Value) -> StreamJob {
    let mut spec = serde_json::to_value(&job.spec).unwrap();
    if let (Some(spec), Value::Object(change)) = (spec.as_object_mut(), change) {
        spec.extend(change);
    }
    let mut next = job.clone();
    next.spec = serde_json::from_value(spec).unwrap();
    next.metadata.generation = next.metadata.generation.map(|g| g + 1);
    next
}

/// The pods of the run being stopped are gone: the reconciler checks the Deployment, deletes
/// the workers, and applies the children (returned) with the new run's JobMaster.
async fn expect_old_run_gone(server: &mut fixtures::ApiServer) -> Vec<Value> {
    server.expect_jobmaster_pods(vec![]).await;
    server.expect_deployment_read(0, 0).await;
    server.expect_workers_deleted().await;
    server.expect_children(None).await
}

#[tokio::test]
async fn a_new_job_first_gets_the_finalizer_and_nothing_else() {
    let (ctx, mut server, _, _) = fixtures::context();
    let job = fixtures::job(json!({}));
    let reconciling = start(&job, &ctx);

    let call = server.expect(Method::PATCH, &job_path()).await;
    let patch = call.body.clone();
    call.ok(&serde_json::to_value(fixtures::with_finalizer(job.clone())).unwrap());
    assert_eq!(
        patch,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [super::FINALIZER]},
        ])
    );
    // The patch is a change of the job, which brings the next reconciliation.
    assert_eq!(finish(reconciling).await.unwrap(), Action::await_change());
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn creating_a_job_applies_its_children_and_reports_deploying() {
    let (ctx, mut server, registry, jobmaster) = fixtures::context();
    let job = fixtures::with_finalizer(fixtures::job(json!({})));
    let reconciling = start(&job, &ctx);

    server.expect_jobmaster_pods(vec![]).await;
    let children = server.expect_children(None).await;
    let kinds: Vec<&str> = children
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "Service",
            "Deployment"
        ]
    );
    for child in &children {
        let owner = &child["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "StreamJob", "{child}");
        assert_eq!(owner["uid"], job.metadata.uid.clone().unwrap());
        assert_eq!(owner["controller"], true);
        assert_eq!(child["metadata"]["labels"]["spate.dev/job"], NAME);
    }
    assert_eq!(children[3]["data"]["job.sql"], SQL);
    let worker_pod: Value =
        serde_json::from_str(children[3]["data"]["worker-pod.json"].as_str().unwrap()).unwrap();
    assert_eq!(worker_pod["spec"]["containers"][0]["image"], "spate:1.0");
    let deployment = &children[5];
    assert_eq!(deployment["spec"]["replicas"], 1);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "spate:1.0");
    let args = args(deployment);
    assert_eq!(flag(&args, "--arg"), Some("parallelism=2"));
    assert_eq!(flag(&args, "--job-id"), Some(job_id(1).as_str()));
    assert_eq!(flag(&args, "--from"), None);

    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Deploying");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["replicas"], 2);
    assert_eq!(status["jobId"], job_id(1));
    assert_eq!(status["deployed"]["run"], 1);
    assert_eq!(status["deployed"]["generation"], 1);
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Progressing")["status"], "True");
    assert_eq!(condition(&status, "Degraded")["status"], "False");
    assert!(
        condition(&status, "Ready")["lastTransitionTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let event = server.expect_event().await;
    assert_eq!(event["reason"], "Deploying");
    assert_eq!(event["type"], "Normal");

    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(POLL));
    server.expect_nothing_more().await;
    assert!(jobmaster.take_calls().is_empty(), "no JobMaster pod to ask");
    assert!(metrics::encode(&registry).contains("spate_operator_reconciliations_total 1"));
}

#[tokio::test]
async fn a_job_created_with_an_initial_savepoint_starts_from_it() {
    let (ctx, mut server, _, _) = fixtures::context();
    let spec = json!({"initialSavepoint": "s3://ckpt/sp-0"});
    let job = fixtures::with_finalizer(fixtures::job(spec));
    let reconciling = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    let children = server.expect_children(None).await;
    assert_eq!(flag(&args(&children[5]), "--from"), Some("s3://ckpt/sp-0"));
    let status = server.expect_status(&job).await;
    assert_eq!(status["deployed"]["restoredFrom"], "s3://ckpt/sp-0");
    server.expect_event().await;
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn a_running_job_reports_what_its_jobmaster_says() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        1,
        None,
        "Deploying",
        None,
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    let reconciling = start(&job, &ctx);

    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let children = server.expect_children(None).await;
    assert_eq!(children[5]["spec"]["replicas"], 1);
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["jobState"], "RUNNING");
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(status["lastCheckpoint"]["id"], 42);
    assert_eq!(
        status["lastCheckpoint"]["location"],
        "s3://ckpt/run-1/chk-42"
    );
    assert_eq!(status["lastCheckpoint"]["time"], "2025-06-15T15:06:40Z");
    assert_eq!(status["lastCheckpoint"]["sizeBytes"], 4096);
    assert_eq!(status["failoverCount"], 1);
    assert_eq!(status["recordsPerSecond"], 1234.6);
    assert_eq!(status["backPressure"], 0.12);
    assert_eq!(status["workers"], json!({"desired": 1, "ready": 0}));
    assert_eq!(server.expect_event().await["reason"], "Running");
    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(POLL));
    server.expect_nothing_more().await;
    assert_eq!(
        jobmaster.take_calls(),
        [format!("status {JOBMASTER_ADDRESS}")]
    );
}

#[tokio::test]
async fn a_failover_is_counted_in_the_status_and_announced_as_a_warning_event() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let mut job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    job.status.as_mut().unwrap().failover_count = Some(1);
    let mut live = job_status(1, JobState::Running, Some(42));
    live.restarts = 2;
    live.last_failover = "worker hop-jobmaster-worker-x exited (its process ended)".into();
    jobmaster.set_status(live);
    let reconciling = start(&job, &ctx);

    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    server.expect_children(None).await;
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["failoverCount"], 2);
    assert_eq!(
        status["lastFailover"],
        "worker hop-jobmaster-worker-x exited (its process ended)"
    );
    let event = server.expect_event().await;
    assert_eq!(event["reason"], "Failover");
    assert_eq!(event["type"], "Warning");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("failover 2") && note.contains("exited"),
        "{note}"
    );
    finish(reconciling).await.unwrap();
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn a_jobmaster_of_another_run_is_not_taken_for_this_runs() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        2,
        None,
        "Upgrading",
        None,
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    server.expect_children(None).await;
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Upgrading");
    assert!(status.get("lastCheckpoint").is_none(), "{status}");
    finish(reconciling).await.unwrap();
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn a_lost_jobmaster_is_degraded_not_failed_and_its_pod_comes_back() {
    let (ctx, mut server, _, _) = fixtures::context();
    let job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    let reconciling = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    let children = server.expect_children(None).await;
    // The same run: its replacement JobMaster adopts the workers and their tasks.
    assert_eq!(children[5]["spec"]["replicas"], 1);
    assert_eq!(
        flag(&args(&children[5]), "--job-id"),
        Some(job_id(1).as_str())
    );
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Running");
    assert!(status.get("error").is_none(), "{status}");
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Progressing")["reason"], "JobMasterLost");
    let degraded = condition(&status, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "JobMasterLost");
    assert_eq!(degraded["message"], "the JobMaster pod is missing");
    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(POLL));
    // No phase change, no event; no worker was deleted.
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn a_jobmaster_that_does_not_answer_is_lost_with_the_reason() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    server.expect_children(None).await;
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Running");
    let message = condition(&status, "Degraded")["message"].as_str().unwrap();
    assert!(message.contains("Unavailable"), "{message}");
    finish(reconciling).await.unwrap();
    assert_eq!(jobmaster.take_calls().len(), 1);
}

#[tokio::test]
async fn a_job_whose_sql_does_not_plan_fails_and_its_pods_go_until_the_spec_changes() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        1,
        None,
        "Deploying",
        None,
    );
    let failure = "SQL error at line 1, column 15: table 'a' not found";
    let mut failed = job_status(1, JobState::Failed, None);
    failed.failure = failure.into();
    jobmaster.set_status(failed);

    // The JobMaster serves the failure (--keep-serving): the operator scales it to zero.
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let children = server.expect_children(None).await;
    assert_eq!(children[5]["spec"]["replicas"], 0);
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["error"], failure);
    assert_eq!(status["jobState"], "FAILED");
    let degraded = condition(&status, "Degraded");
    assert_eq!(
        (
            &degraded["status"],
            &degraded["reason"],
            &degraded["message"]
        ),
        (&json!("True"), &json!("JobFailed"), &json!(failure))
    );
    let event = server.expect_event().await;
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("Failed"))
    );
    assert_eq!(event["note"], failure);
    assert_eq!(
        finish(reconciling).await.unwrap(),
        Action::requeue(STOPPING_POLL)
    );

    // Once the JobMaster pod is gone its workers are deleted.
    let reconciling = start(&job, &ctx);
    let children = expect_old_run_gone(&mut server).await;
    assert_eq!(children[5]["spec"]["replicas"], 0);
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["error"], failure);
    assert!(status["deployed"].get("stopping").is_none(), "{status}");
    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(RESYNC));

    // And so it stays, without a pod, until the spec changes.
    let reconciling = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    let children = server.expect_children(None).await;
    assert_eq!(children[5]["spec"]["replicas"], 0);
    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(RESYNC));
    server.expect_nothing_more().await;

    // A fixed script is a new run.
    let mut fixed = changed(&job, json!({}));
    fixed.spec.job.sql = Some("INSERT INTO b SELECT * FROM c".into());
    let reconciling = start(&fixed, &ctx);
    let children = expect_old_run_gone(&mut server).await;
    assert_eq!(
        children[3]["data"]["job.sql"],
        "INSERT INTO b SELECT * FROM c"
    );
    assert_eq!(children[5]["spec"]["replicas"], 1);
    assert_eq!(
        flag(&args(&children[5]), "--job-id"),
        Some(job_id(2).as_str())
    );
    let status = server.expect_status(&fixed).await;
    assert_eq!(status["phase"], "Upgrading");
    assert!(status.get("error").is_none(), "{status}");
    assert!(status.get("jobState").is_none(), "{status}");
    assert_eq!(condition(&status, "Degraded")["status"], "False");
    server.expect_event().await;
    finish(reconciling).await.unwrap();
    assert_eq!(
        jobmaster.take_calls().len(),
        1,
        "asked only while its pod was there"
    );
}

#[tokio::test]
async fn a_stateless_upgrade_starts_a_new_run_from_nothing_once_the_old_pods_are_gone() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    let job = changed(&job, json!({"image": "spate:1.1"}));

    // The old run's JobMaster is scaled away: the new run's Deployment has no pod yet.
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let children = server.expect_children(None).await;
    let deployment = &children[5];
    assert_eq!(deployment["spec"]["replicas"], 0);
    assert_eq!(
        flag(&args(deployment), "--job-id"),
        Some(job_id(2).as_str())
    );
    assert_eq!(flag(&args(deployment), "--from"), None);
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["phase"], "Upgrading");
    assert_eq!(status["jobId"], job_id(2));
    assert_eq!(status["deployed"]["run"], 2);
    assert_eq!(status["deployed"]["generation"], 2);
    assert_eq!(status["deployed"]["stopping"], job_id(1));
    assert!(status.get("lastCheckpoint").is_none(), "{status}");
    assert_eq!(server.expect_event().await["reason"], "Upgrading");
    assert_eq!(
        finish(reconciling).await.unwrap(),
        Action::requeue(STOPPING_POLL)
    );
    assert_eq!(
        jobmaster.take_calls(),
        [format!("status {JOBMASTER_ADDRESS}")]
    );

    // While its pod terminates, nothing else happens.
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(false)])
        .await;
    let children = server.expect_children(None).await;
    assert_eq!(children[5]["spec"]["replicas"], 0);
    assert_eq!(
        finish(reconciling).await.unwrap(),
        Action::requeue(STOPPING_POLL)
    );
    server.expect_nothing_more().await;

    // Then its workers are deleted and the new run's JobMaster starts.
    let reconciling = start(&job, &ctx);
    let children = expect_old_run_gone(&mut server).await;
    assert_eq!(children[5]["spec"]["replicas"], 1);
    let container = &children[5]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "spate:1.1");
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["phase"], "Upgrading");
    assert!(status["deployed"].get("stopping").is_none(), "{status}");
    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(POLL));

    // Running when the new run's job runs.
    jobmaster.set_status(job_status(2, JobState::Running, None));
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    server.expect_children(None).await;
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Running");
    assert_eq!(server.expect_event().await["reason"], "Running");
    finish(reconciling).await.unwrap();
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn a_savepoint_upgrade_stops_the_job_with_a_savepoint_and_starts_from_it() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        stateful("savepoint", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    jobmaster.set_savepoint(43, "s3://ckpt/sp-43");
    let job = changed(&job, json!({"image": "spate:1.1"}));

    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    // The savepoint is recorded before anything else is done.
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["lastSavepoint"]["id"], 43);
    assert_eq!(status["lastSavepoint"]["location"], "s3://ckpt/sp-43");
    assert_eq!(status["deployed"]["restoredFrom"], "s3://ckpt/sp-43");
    assert_eq!(status["deployed"]["run"], 2);
    assert_eq!(status["phase"], "Upgrading");
    assert_eq!(server.expect_event().await["reason"], "Upgrading");
    let children = server.expect_children(None).await;
    let deployment = &children[5];
    assert_eq!(deployment["spec"]["replicas"], 0);
    assert_eq!(
        flag(&args(deployment), "--job-id"),
        Some(job_id(2).as_str())
    );
    assert_eq!(flag(&args(deployment), "--from"), Some("s3://ckpt/sp-43"));
    server.expect_status(&job).await;
    finish(reconciling).await.unwrap();
    assert_eq!(
        jobmaster.take_calls(),
        [
            format!("status {JOBMASTER_ADDRESS}"),
            format!("savepoint stop=true {JOBMASTER_ADDRESS}"),
        ]
    );
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn a_failed_savepoint_keeps_the_old_run_and_is_retried() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        stateful("savepoint", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    let job = changed(&job, json!({"image": "spate:1.1"}));

    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let event = server.expect_event().await;
    assert_eq!(event["reason"], "ReconcileFailed");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("stop-with-savepoint"),
        "{event}"
    );
    let error = finish(reconciling).await.unwrap_err();
    assert_eq!(error.kind(), "jobmaster");
    // Nothing was applied: the old run's JobMaster keeps running.
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn a_last_state_upgrade_starts_from_the_latest_checkpoint_without_a_savepoint() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        stateful("last-state", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    let job = changed(&job, json!({"image": "spate:1.1"}));

    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let children = server.expect_children(None).await;
    let deployment = &children[5];
    assert_eq!(deployment["spec"]["replicas"], 0);
    assert_eq!(
        flag(&args(deployment), "--job-id"),
        Some(job_id(2).as_str())
    );
    assert_eq!(
        flag(&args(deployment), "--from"),
        Some("s3://ckpt/run-1/chk-42")
    );
    let status = server.expect_status(&job).await;
    assert_eq!(status["deployed"]["restoredFrom"], "s3://ckpt/run-1/chk-42");
    server.expect_event().await;
    finish(reconciling).await.unwrap();
    assert_eq!(
        jobmaster.take_calls(),
        [format!("status {JOBMASTER_ADDRESS}")]
    );
}

#[tokio::test]
async fn a_last_state_upgrade_without_a_checkpoint_takes_a_savepoint() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        stateful("last-state", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, None));
    jobmaster.set_savepoint(3, "s3://ckpt/sp-3");
    let job = changed(&job, json!({"restartNonce": 1}));

    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let status = server.expect_status(&job).await;
    assert_eq!(status["deployed"]["restoredFrom"], "s3://ckpt/sp-3");
    server.expect_event().await;
    let children = server.expect_children(None).await;
    assert_eq!(flag(&args(&children[5]), "--from"), Some("s3://ckpt/sp-3"));
    server.expect_status(&job).await;
    finish(reconciling).await.unwrap();
    assert_eq!(
        jobmaster.take_calls()[1],
        format!("savepoint stop=true {JOBMASTER_ADDRESS}")
    );
}

#[tokio::test]
async fn an_upgrade_of_a_job_that_does_not_run_restores_its_last_state() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    // The JobMaster is lost; the last checkpoint it reported is in the status.
    let mut job = deployed(
        stateful("savepoint", json!({})),
        1,
        Some("s3://ckpt/sp-0"),
        "Running",
        Some("RUNNING"),
    );
    if let Some(status) = job.status.as_mut() {
        status.last_checkpoint = Some(crate::crd::CheckpointInfo {
            id: Some(7),
            time: "2025-06-15T15:06:40Z".into(),
            location: "s3://ckpt/run-1/chk-7".into(),
            size_bytes: None,
        });
    }
    let job = changed(&job, json!({"image": "spate:1.1"}));

    let reconciling = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    let event = server.expect_event().await;
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("SavepointSkipped"))
    );
    server.expect_deployment_read(1, 0).await;
    let children = server.expect_children(None).await;
    assert_eq!(
        flag(&args(&children[5]), "--from"),
        Some("s3://ckpt/run-1/chk-7")
    );
    server.expect_status(&job).await;
    server.expect_event().await;
    finish(reconciling).await.unwrap();
    assert!(jobmaster.take_calls().is_empty());
}

#[tokio::test]
async fn scaling_rescales_from_a_savepoint_and_reports_the_new_parallelism() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        stateful("savepoint", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    jobmaster.set_savepoint(43, "s3://ckpt/sp-43");
    // kubectl scale sj/hop --replicas=4
    let job = changed(&job, json!({"parallelism": 4}));

    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let (_, job) = server.expect_status_of(&job).await;
    server.expect_event().await;
    let children = server.expect_children(None).await;
    let args = args(&children[5]);
    assert_eq!(flag(&args, "--arg"), Some("parallelism=4"));
    assert_eq!(flag(&args, "--from"), Some("s3://ckpt/sp-43"));
    assert_eq!(flag(&args, "--job-id"), Some(job_id(2).as_str()));
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["replicas"], 4);
    assert_eq!(status["parallelism"], 4);
    finish(reconciling).await.unwrap();

    // The running job's parallelism is what the status mirrors.
    let reconciling = start(&job, &ctx);
    let children = expect_old_run_gone(&mut server).await;
    assert_eq!(children[5]["spec"]["replicas"], 1);
    let (_, job) = server.expect_status_of(&job).await;
    finish(reconciling).await.unwrap();
    let mut running = job_status(2, JobState::Running, None);
    running.parallelism = 4;
    jobmaster.set_status(running);
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    server.expect_children(None).await;
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["replicas"], 4);
    server.expect_event().await;
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn scaling_a_stateless_job_restarts_it() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    let job = changed(&job, json!({"parallelism": 3}));
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let children = server.expect_children(None).await;
    let args = args(&children[5]);
    assert_eq!(flag(&args, "--arg"), Some("parallelism=3"));
    assert_eq!(flag(&args, "--from"), None);
    assert_eq!(flag(&args, "--job-id"), Some(job_id(2).as_str()));
    server.expect_status(&job).await;
    server.expect_event().await;
    finish(reconciling).await.unwrap();
    assert_eq!(jobmaster.take_calls().len(), 1, "no savepoint");
}

#[tokio::test]
async fn a_restart_nonce_restarts_the_job_per_its_upgrade_mode() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        fixtures::with_finalizer(fixtures::job(json!({}))),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    let job = changed(&job, json!({"restartNonce": 1}));
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let children = server.expect_children(None).await;
    assert_eq!(
        flag(&args(&children[5]), "--job-id"),
        Some(job_id(2).as_str())
    );
    server.expect_status(&job).await;
    server.expect_event().await;
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn suspending_saves_the_state_removes_the_pods_and_resuming_continues_from_it() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        stateful("stateless", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    jobmaster.set_savepoint(43, "s3://ckpt/sp-43");
    let job = changed(&job, json!({"state": "suspended"}));

    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["phase"], "Suspended");
    assert_eq!(status["lastSavepoint"]["location"], "s3://ckpt/sp-43");
    assert_eq!(status["deployed"]["restoredFrom"], "s3://ckpt/sp-43");
    assert_eq!(status["deployed"]["stopping"], job_id(1));
    assert_eq!(server.expect_event().await["reason"], "Suspended");
    let children = server.expect_children(None).await;
    assert_eq!(children[5]["spec"]["replicas"], 0);
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(condition(&status, "Progressing")["reason"], "Suspending");
    assert_eq!(
        finish(reconciling).await.unwrap(),
        Action::requeue(STOPPING_POLL)
    );
    assert_eq!(
        jobmaster.take_calls(),
        [
            format!("status {JOBMASTER_ADDRESS}"),
            format!("savepoint stop=true {JOBMASTER_ADDRESS}"),
        ]
    );

    // The JobMaster is gone: the workers are deleted; no pod is left.
    let reconciling = start(&job, &ctx);
    let children = expect_old_run_gone(&mut server).await;
    assert_eq!(children[5]["spec"]["replicas"], 0);
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["phase"], "Suspended");
    assert_eq!(condition(&status, "Progressing")["status"], "False");
    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(RESYNC));

    // Resuming starts the prepared run from the savepoint.
    let job = changed(&job, json!({"state": "running"}));
    let reconciling = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    let children = server.expect_children(None).await;
    let deployment = &children[5];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(
        flag(&args(deployment), "--job-id"),
        Some(job_id(2).as_str())
    );
    assert_eq!(flag(&args(deployment), "--from"), Some("s3://ckpt/sp-43"));
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Deploying");
    assert_eq!(status["deployed"]["generation"], 3);
    assert_eq!(server.expect_event().await["reason"], "Deploying");
    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(POLL));
    server.expect_nothing_more().await;
    assert!(jobmaster.take_calls().is_empty());
}

#[tokio::test]
async fn a_spec_change_while_suspended_keeps_the_savepoint_to_resume_from() {
    let (ctx, mut server, _, _) = fixtures::context();
    let job = deployed(
        stateful("stateless", json!({"state": "suspended"})),
        2,
        Some("s3://ckpt/sp-43"),
        "Suspended",
        None,
    );
    let job = changed(&job, json!({"image": "spate:1.1", "state": "running"}));
    let reconciling = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    let children = server.expect_children(None).await;
    let deployment = &children[5];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(
        flag(&args(deployment), "--job-id"),
        Some(job_id(2).as_str())
    );
    assert_eq!(flag(&args(deployment), "--from"), Some("s3://ckpt/sp-43"));
    let status = server.expect_status(&job).await;
    assert_eq!(status["deployed"]["generation"], 2);
    server.expect_event().await;
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn a_job_created_suspended_runs_nothing() {
    let (ctx, mut server, _, _) = fixtures::context();
    let job = fixtures::with_finalizer(fixtures::job(json!({"state": "suspended"})));
    let reconciling = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    let children = server.expect_children(None).await;
    assert_eq!(children[5]["spec"]["replicas"], 0);
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Suspended");
    assert_eq!(status["deployed"]["run"], 1);
    server.expect_event().await;
    assert_eq!(finish(reconciling).await.unwrap(), Action::requeue(RESYNC));
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn a_savepoint_nonce_takes_a_savepoint_and_is_remembered() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        stateful("savepoint", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    jobmaster.set_savepoint(50, "s3://ckpt/sp-50");
    let job = changed(&job, json!({"savepointTriggerNonce": 5}));

    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let event = server.expect_event().await;
    assert_eq!(event["reason"], "SavepointTaken");
    assert!(event["note"].as_str().unwrap().contains("s3://ckpt/sp-50"));
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["savepointTriggerNonce"], 5);
    assert_eq!(status["lastSavepoint"]["id"], 50);
    assert_eq!(status["lastSavepoint"]["location"], "s3://ckpt/sp-50");
    // Not a redeployment: the same run keeps running.
    assert_eq!(status["deployed"]["run"], 1);
    assert_eq!(status["deployed"]["generation"], 2);
    let children = server.expect_children(None).await;
    assert_eq!(children[5]["spec"]["replicas"], 1);
    assert_eq!(
        flag(&args(&children[5]), "--job-id"),
        Some(job_id(1).as_str())
    );
    let (status, job) = server.expect_status_of(&job).await;
    assert_eq!(status["phase"], "Running");
    finish(reconciling).await.unwrap();
    assert_eq!(
        jobmaster.take_calls(),
        [
            format!("status {JOBMASTER_ADDRESS}"),
            format!("savepoint stop=false {JOBMASTER_ADDRESS}"),
        ]
    );

    // Handled: the next reconciliation takes none.
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    server.expect_children(None).await;
    finish(reconciling).await.unwrap();
    server.expect_nothing_more().await;
    assert_eq!(
        jobmaster.take_calls(),
        [format!("status {JOBMASTER_ADDRESS}")]
    );
}

#[tokio::test]
async fn a_savepoint_nonce_waits_while_the_job_does_not_run() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(stateful("savepoint", json!({})), 1, None, "Deploying", None);
    let job = changed(&job, json!({"savepointTriggerNonce": 5}));
    jobmaster.set_status(job_status(1, JobState::Created, None));
    let reconciling = start(&job, &ctx);
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    server.expect_children(None).await;
    let status = server.expect_status(&job).await;
    assert!(status.get("savepointTriggerNonce").is_none(), "{status}");
    assert_eq!(status["phase"], "Deploying");
    finish(reconciling).await.unwrap();
    assert_eq!(
        jobmaster.take_calls(),
        [format!("status {JOBMASTER_ADDRESS}")]
    );
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_again() {
    let (ctx, mut server, _, _) = fixtures::context();
    let job = fixtures::with_finalizer(fixtures::job(json!({})));
    let first = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    server.expect_children(None).await;
    let (_, job) = server.expect_status_of(&job).await;
    server.expect_event().await;
    finish(first).await.unwrap();

    // The next reconciliation sees the status it wrote: children again, nothing else.
    let second = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    server.expect_children(None).await;
    finish(second).await.unwrap();
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn deleting_a_job_deletes_its_workers_and_leaves_the_rest_to_the_garbage_collector() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = fixtures::being_deleted(fixtures::with_finalizer(fixtures::job(json!({}))));
    let reconciling = start(&job, &ctx);

    let event = server.expect_event().await;
    assert_eq!(event["reason"], "Deleting");
    server.expect_workers_deleted().await;
    let call = server.expect(Method::PATCH, &job_path()).await;
    assert_eq!(
        call.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": super::FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])
    );
    call.ok(&serde_json::to_value(&job).unwrap());
    assert_eq!(finish(reconciling).await.unwrap(), Action::await_change());
    // Stateless: no savepoint, and no other object was deleted by the operator.
    server.expect_nothing_more().await;
    assert!(jobmaster.take_calls().is_empty());
}

#[tokio::test]
async fn deleting_a_savepoint_job_stops_it_with_a_savepoint_first() {
    let (ctx, mut server, _, jobmaster) = fixtures::context();
    let job = deployed(
        stateful("savepoint", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    let job = fixtures::being_deleted(job);
    jobmaster.set_status(job_status(1, JobState::Running, Some(42)));
    jobmaster.set_savepoint(44, "s3://ckpt/sp-44");
    let reconciling = start(&job, &ctx);

    assert_eq!(server.expect_event().await["reason"], "Deleting");
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let event = server.expect_event().await;
    assert_eq!(event["reason"], "SavepointTaken");
    assert!(event["note"].as_str().unwrap().contains("s3://ckpt/sp-44"));
    server.expect_workers_deleted().await;
    let call = server.expect(Method::PATCH, &job_path()).await;
    assert_eq!(call.body[1]["op"], "remove");
    call.ok(&serde_json::to_value(&job).unwrap());
    finish(reconciling).await.unwrap();
    assert_eq!(
        jobmaster.take_calls(),
        [
            format!("status {JOBMASTER_ADDRESS}"),
            format!("savepoint stop=true {JOBMASTER_ADDRESS}"),
        ]
    );
}

#[tokio::test]
async fn deletion_goes_on_without_a_savepoint_when_the_jobmaster_cannot_take_one() {
    let (ctx, mut server, _, _) = fixtures::context();
    let job = deployed(
        stateful("savepoint", json!({})),
        1,
        None,
        "Running",
        Some("RUNNING"),
    );
    let job = fixtures::being_deleted(job);
    let reconciling = start(&job, &ctx);

    assert_eq!(server.expect_event().await["reason"], "Deleting");
    // Its pod is there, but GetJobStatus fails: the job is not known to run.
    server
        .expect_jobmaster_pods(vec![jobmaster_pod(true)])
        .await;
    let event = server.expect_event().await;
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("SavepointSkipped"))
    );
    server.expect_workers_deleted().await;
    let call = server.expect(Method::PATCH, &job_path()).await;
    call.ok(&serde_json::to_value(&job).unwrap());
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn deletion_goes_on_when_the_namespace_refuses_events() {
    let (ctx, mut server, _, _) = fixtures::context();
    let job = fixtures::being_deleted(fixtures::with_finalizer(fixtures::job(json!({}))));
    let reconciling = start(&job, &ctx);

    let path = format!("/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events");
    let call = server.expect(Method::POST, &path).await;
    call.fail(403, "Forbidden", "namespace streams is being terminated");
    server.expect_workers_deleted().await;
    let call = server.expect(Method::PATCH, &job_path()).await;
    assert_eq!(call.body[1]["op"], "remove");
    call.ok(&serde_json::to_value(&job).unwrap());
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn an_api_error_fails_the_reconciliation_which_is_retried_with_backoff() {
    let (ctx, mut server, registry, _) = fixtures::context();
    let job = fixtures::with_finalizer(fixtures::job(json!({})));
    let reconciling = start(&job, &ctx);

    server.expect_jobmaster_pods(vec![]).await;
    let path = format!("/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{NAME}-jobmaster");
    let call = server.expect(Method::PATCH, &path).await;
    call.fail(500, "InternalError", "etcdserver: request timed out");
    let event = server.expect_event().await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "ReconcileFailed");
    assert!(
        event["note"].as_str().unwrap().contains("etcdserver"),
        "{event}"
    );
    let error = finish(reconciling).await.unwrap_err();
    assert_eq!(error.kind(), "api");
    assert!(
        error
            .to_string()
            .contains("applying ServiceAccount hop-jobmaster"),
        "{error}"
    );
    server.expect_nothing_more().await;

    let job = Arc::new(job);
    let delays: Vec<Action> = (0..8)
        .map(|_| error_policy(job.clone(), &error, ctx.clone()))
        .collect();
    assert_eq!(delays[0], Action::requeue(BACKOFF_FIRST));
    assert_eq!(delays[1], Action::requeue(BACKOFF_FIRST * 2));
    assert_eq!(delays[2], Action::requeue(BACKOFF_FIRST * 4));
    assert_eq!(delays[7], Action::requeue(BACKOFF_MAX));
    let text = metrics::encode(&registry);
    assert!(
        text.contains("spate_operator_reconcile_failures_total{error=\"api\"} 8"),
        "{text}"
    );

    // A successful reconciliation resets the backoff.
    let job = fixtures::with_finalizer(fixtures::job(json!({})));
    let reconciling = start(&job, &ctx);
    server.expect_jobmaster_pods(vec![]).await;
    server.expect_children(None).await;
    server.expect_status(&job).await;
    server.expect_event().await;
    finish(reconciling).await.unwrap();
    assert_eq!(
        error_policy(Arc::new(job), &error, ctx.clone()),
        Action::requeue(BACKOFF_FIRST)
    );
}

#[tokio::test]
async fn a_job_from_a_config_map_runs_a_copy_of_its_sql() {
    let (ctx, mut server, _, _) = fixtures::context();
    let spec = json!({"job": {"configMapRef": {"name": "queries", "key": "q5.sql"}}});
    let job = fixtures::with_finalizer(fixtures::job(spec));
    let reconciling = start(&job, &ctx);

    let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps/queries");
    let call = server.expect(Method::GET, &path).await;
    call.ok(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "queries", "namespace": NAMESPACE},
        "data": {"q5.sql": "INSERT INTO q5 SELECT 5"},
    }));
    server.expect_jobmaster_pods(vec![]).await;
    let children = server.expect_children(None).await;
    assert_eq!(children[3]["data"]["job.sql"], "INSERT INTO q5 SELECT 5");
    server.expect_status(&job).await;
    server.expect_event().await;
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn a_missing_config_map_leaves_the_job_pending_without_children() {
    let (ctx, mut server, _, _) = fixtures::context();
    let spec = json!({"job": {"configMapRef": {"name": "queries", "key": "q5.sql"}}});
    let job = fixtures::with_finalizer(fixtures::job(spec));
    let reconciling = start(&job, &ctx);

    let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps/queries");
    let call = server.expect(Method::GET, &path).await;
    call.fail(404, "NotFound", "configmaps \"queries\" not found");
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["error"], "ConfigMap queries does not exist");
    assert_eq!(condition(&status, "Degraded")["reason"], "JobSourceMissing");
    let event = server.expect_event().await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        finish(reconciling).await.unwrap(),
        Action::requeue(super::WAIT_FOR_SOURCE)
    );
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn an_invalid_pod_template_fails_the_job_without_applying_anything() {
    let (ctx, mut server, _, _) = fixtures::context();
    let spec = json!({"podTemplate": {"spec": {"containers": "spate"}}});
    let job = fixtures::with_finalizer(fixtures::job(spec));
    let reconciling = start(&job, &ctx);

    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .starts_with("spec.podTemplate is not a pod template"),
        "{status}"
    );
    assert_eq!(condition(&status, "Degraded")["reason"], "InvalidSpec");
    assert_eq!(server.expect_event().await["type"], "Warning");
    assert_eq!(finish(reconciling).await.unwrap(), Action::await_change());
    server.expect_nothing_more().await;
}
