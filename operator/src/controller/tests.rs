//! The reconciler against a mocked API server: each test answers the requests the reconciler
//! makes, in order, and checks what it sent.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{BACKOFF_FIRST, BACKOFF_MAX, Context, Error, error_policy, reconcile};
use crate::crd::StreamJob;
use crate::fixtures::{self, NAME, NAMESPACE};
use crate::metrics;

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

/// Whether `args` has `flag` followed by `value`.
fn has_flag(args: &Value, flag: &str, value: &str) -> bool {
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[tokio::test]
async fn a_new_job_first_gets_the_finalizer_and_nothing_else() {
    let (ctx, mut server, _) = fixtures::context();
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
    let (ctx, mut server, registry) = fixtures::context();
    let job = fixtures::with_finalizer(fixtures::job(json!({})));
    let reconciling = start(&job, &ctx);

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
    assert_eq!(
        children[3]["data"]["job.sql"],
        "INSERT INTO b SELECT * FROM a"
    );
    let deployment = &children[5];
    assert_eq!(deployment["spec"]["replicas"], 1);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "spate:1.0");
    assert!(has_flag(&container["args"], "--arg", "parallelism=2"));
    assert!(has_flag(
        &container["args"],
        "--job-id",
        "streams-hop-6f1c5e0a"
    ));

    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Deploying");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["replicas"], 2);
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

    assert_eq!(
        finish(reconciling).await.unwrap(),
        Action::requeue(super::RESYNC)
    );
    server.expect_nothing_more().await;
    assert!(metrics::encode(&registry).contains("spate_operator_reconciliations_total 1"));
}

#[tokio::test]
async fn a_ready_jobmaster_is_reported_running() {
    let (ctx, mut server, _) = fixtures::context();
    let job = fixtures::with_finalizer(fixtures::job(json!({})));
    let reconciling = start(&job, &ctx);

    let ready = json!({
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1,
    });
    server.expect_children(Some(ready)).await;
    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Running");
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(server.expect_event().await["reason"], "Running");
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn suspending_scales_the_jobmaster_to_zero_and_reports_suspended() {
    let (ctx, mut server, _) = fixtures::context();
    let mut job = fixtures::with_finalizer(fixtures::job(json!({"state": "suspended"})));
    job.metadata.generation = Some(2);
    job.status = Some(serde_json::from_value(json!({"phase": "Running"})).unwrap());
    let reconciling = start(&job, &ctx);

    // The Deployment's pod is still stopping.
    let stopping = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1});
    let children = server.expect_children(Some(stopping)).await;
    assert_eq!(children[5]["spec"]["replicas"], 0);

    let status = server.expect_status(&job).await;
    assert_eq!(status["phase"], "Suspended");
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Progressing")["reason"], "Suspending");
    let event = server.expect_event().await;
    assert_eq!(event["reason"], "Suspended");
    finish(reconciling).await.unwrap();
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_again() {
    let (ctx, mut server, _) = fixtures::context();
    let mut job = fixtures::with_finalizer(fixtures::job(json!({})));
    let first = start(&job, &ctx);
    server.expect_children(None).await;
    let status = server.expect_status(&job).await;
    server.expect_event().await;
    finish(first).await.unwrap();

    // The next reconciliation sees the status it wrote: children again, nothing else.
    job.status = Some(serde_json::from_value(status).unwrap());
    let second = start(&job, &ctx);
    server.expect_children(None).await;
    finish(second).await.unwrap();
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn deleting_a_job_removes_the_finalizer_and_leaves_the_children_to_the_garbage_collector() {
    let (ctx, mut server, _) = fixtures::context();
    let job = fixtures::being_deleted(fixtures::with_finalizer(fixtures::job(json!({}))));
    let reconciling = start(&job, &ctx);

    let event = server.expect_event().await;
    assert_eq!(event["reason"], "Deleting");
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
    // No child was deleted by the operator.
    server.expect_nothing_more().await;
}

#[tokio::test]
async fn deletion_goes_on_when_the_namespace_refuses_events() {
    let (ctx, mut server, _) = fixtures::context();
    let job = fixtures::being_deleted(fixtures::with_finalizer(fixtures::job(json!({}))));
    let reconciling = start(&job, &ctx);

    let path = format!("/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events");
    let call = server.expect(Method::POST, &path).await;
    call.fail(403, "Forbidden", "namespace streams is being terminated");
    let call = server.expect(Method::PATCH, &job_path()).await;
    assert_eq!(call.body[1]["op"], "remove");
    call.ok(&serde_json::to_value(&job).unwrap());
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn an_api_error_fails_the_reconciliation_which_is_retried_with_backoff() {
    let (ctx, mut server, registry) = fixtures::context();
    let job = fixtures::with_finalizer(fixtures::job(json!({})));
    let reconciling = start(&job, &ctx);

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
    let (ctx, mut server, _) = fixtures::context();
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
    let children = server.expect_children(None).await;
    assert_eq!(children[3]["data"]["job.sql"], "INSERT INTO q5 SELECT 5");
    server.expect_status(&job).await;
    server.expect_event().await;
    finish(reconciling).await.unwrap();
}

#[tokio::test]
async fn a_missing_config_map_leaves_the_job_pending_without_children() {
    let (ctx, mut server, _) = fixtures::context();
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
    let (ctx, mut server, _) = fixtures::context();
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
