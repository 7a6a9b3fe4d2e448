//! Test support: a `kube::Client` whose API server is the test itself (a `tower_test` mock
//! service). The test answers each request in turn and checks what the reconciler sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::{Client, Resource};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use spate_proto::v1::{CheckpointStats, JobState, JobStatus};

use crate::controller::Context;
use crate::controller::jobmaster_api::{JobMasterApi, RpcError, Savepoint};
use crate::crd::{StreamJob, StreamJobSpec};
use crate::metrics::Metrics;

pub const NAMESPACE: &str = "streams";
pub const NAME: &str = "hop";

/// A job as the API server would hand it over: namespaced, with a uid and a generation.
pub fn job(spec: Value) -> StreamJob {
    let mut base = json!({
        "image": "spate:1.0",
        "parallelism": 2,
        "job": {"sql": "INSERT INTO b SELECT * FROM a"},
    });
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), spec) {
        base.extend(extra);
    }
    let spec: StreamJobSpec = serde_json::from_value(base).unwrap();
    let mut job = StreamJob::new(NAME, spec);
    job.metadata.namespace = Some(NAMESPACE.into());
    job.metadata.uid = Some("6f1c5e0a-0000-4000-8000-000000000001".into());
    job.metadata.generation = Some(1);
    job.metadata.resource_version = Some("100".into());
    job
}

pub fn with_finalizer(mut job: StreamJob) -> StreamJob {
    job.meta_mut()
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(crate::controller::FINALIZER.into());
    job
}

pub fn being_deleted(mut job: StreamJob) -> StreamJob {
    job.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    job
}

/// A client whose API server is the test.
pub fn api() -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

/// A context on a mocked API server and a fake JobMaster, and its metrics registry.
pub fn context() -> (Arc<Context>, ApiServer, Registry, Arc<FakeJobMaster>) {
    let (client, server) = api();
    let jobmaster = Arc::new(FakeJobMaster::default());
    let mut registry = Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    let reporter = Reporter {
        controller: "spate-operator".into(),
        instance: None,
    };
    let ctx = Context::new(client, reporter, metrics, jobmaster.clone());
    (Arc::new(ctx), server, registry, jobmaster)
}

/// The JobMaster pod's IP in the tests, and the address the operator calls.
pub const JOBMASTER_IP: &str = "10.1.2.3";
pub const JOBMASTER_ADDRESS: &str = "10.1.2.3:6123";

/// A JobMaster that answers what the test set, and records the calls it got.
#[derive(Default)]
pub struct FakeJobMaster {
    status: Mutex<Option<JobStatus>>,
    savepoint: Mutex<Option<Savepoint>>,
    calls: Mutex<Vec<String>>,
}

impl FakeJobMaster {
    /// What GetJobStatus answers from now on (an Unavailable error when none).
    pub fn set_status(&self, status: JobStatus) {
        *self.status.lock().unwrap() = Some(status);
    }

    /// What TriggerSavepoint answers (an Internal error when none).
    pub fn set_savepoint(&self, id: u64, location: &str) {
        *self.savepoint.lock().unwrap() = Some(Savepoint {
            id,
            location: location.into(),
        });
    }

    /// The calls so far, as `status <address>` or `savepoint stop=<bool> <address>`; forgets
    /// them.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn unavailable(address: &str, code: tonic::Code) -> RpcError {
        RpcError::Call {
            address: address.into(),
            code,
            message: "not set by the test".into(),
        }
    }
}

impl JobMasterApi for FakeJobMaster {
    fn job_status<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<JobStatus, RpcError>> {
        self.calls.lock().unwrap().push(format!("status {address}"));
        let answer = self.status.lock().unwrap().clone();
        Box::pin(async move {
            answer.ok_or_else(|| Self::unavailable(address, tonic::Code::Unavailable))
        })
    }

    fn trigger_savepoint<'a>(
        &'a self,
        address: &'a str,
        stop: bool,
    ) -> BoxFuture<'a, Result<Savepoint, RpcError>> {
        let call = format!("savepoint stop={stop} {address}");
        self.calls.lock().unwrap().push(call);
        let answer = self.savepoint.lock().unwrap().clone();
        if stop && answer.is_some() {
            // The job ends in STOPPED with the savepoint, as the JobMaster's does.
            if let Some(status) = self.status.lock().unwrap().as_mut() {
                status.state = JobState::Stopped as i32;
            }
        }
        Box::pin(
            async move { answer.ok_or_else(|| Self::unavailable(address, tonic::Code::Internal)) },
        )
    }
}

/// A JobMaster's status of run `run` of the job: its state, and the latest checkpoint when
/// `checkpoint` is given (its id).
pub fn job_status(run: i64, state: JobState, checkpoint: Option<u64>) -> JobStatus {
    JobStatus {
        job_id: format!("{NAMESPACE}-{NAME}-6f1c5e0a-{run}"),
        state: state as i32,
        parallelism: 2,
        restarts: 1,
        source_records_per_second: 1234.56,
        back_pressure: 0.123,
        checkpoints: checkpoint.map(|id| CheckpointStats {
            completed: id,
            latest_id: id,
            latest_location: format!("s3://ckpt/run-{run}/chk-{id}"),
            latest_completed_unix_ms: 1_750_000_000_000,
            latest_state_bytes: 4096,
            ..CheckpointStats::default()
        }),
        ..JobStatus::default()
    }
}

/// A JobMaster pod: ready with the test's IP, or not ready yet.
pub fn jobmaster_pod(ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{NAME}-jobmaster-7d9f-abcde"), "namespace": NAMESPACE},
        "status": {
            "phase": "Running",
            "podIP": JOBMASTER_IP,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        },
    })
}

/// One request the reconciler sent.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl Call {
    /// Answers 200 with `body`.
    pub fn ok(self, body: &Value) {
        self.respond(200, body);
    }

    /// Answers 200 with what was sent (what server-side apply returns for a new object).
    pub fn echo(self) {
        let body = self.body.clone();
        self.ok(&body);
    }

    /// Answers with a Kubernetes `Status` error.
    pub fn fail(self, code: u16, reason: &str, message: &str) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": reason, "message": message, "code": code,
        });
        self.respond(code, &status);
    }

    fn respond(self, code: u16, body: &Value) {
        let response = Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        self.send.send_response(response);
    }
}

pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

impl ApiServer {
    /// The next request, which must be `method` on `path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Call {
        let next = tokio::time::timeout(Duration::from_secs(5), self.0.next_request());
        let (request, send) = next
            .await
            .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
            .expect("the client is gone");
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let call = Call {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            body,
            send,
        };
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected request with body {}",
            call.body
        );
        call
    }

    /// Expects a server-side apply by the operator of `path` and answers with what was sent.
    pub async fn expect_apply(&mut self, path: &str) -> Value {
        let call = self.expect(Method::PATCH, path).await;
        assert!(
            call.query.contains("fieldManager=spate-operator") && call.query.contains("force=true"),
            "{path}: not a forced server-side apply by spate-operator: {}",
            call.query
        );
        let body = call.body.clone();
        call.echo();
        body
    }

    /// Expects the list of the job's JobMaster pods; answers with `pods`.
    pub async fn expect_jobmaster_pods(&mut self, pods: Vec<Value>) {
        let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
        let call = self.expect(Method::GET, &path).await;
        assert_eq!(
            label_selector(&call.query),
            format!("spate.dev/job={NAME},spate.dev/component=jobmaster")
        );
        call.ok(&json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}));
    }

    /// Expects the deletion of the job's worker pods (by label).
    pub async fn expect_workers_deleted(&mut self) {
        let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
        let call = self.expect(Method::DELETE, &path).await;
        assert_eq!(
            label_selector(&call.query),
            format!("spate.dev/job={NAME},spate.dev/component=worker")
        );
        call.ok(&json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}));
    }

    /// Expects a read of the JobMaster Deployment; answers that it is scaled to zero with
    /// `pods` pods left.
    pub async fn expect_deployment_read(&mut self, replicas: i32, pods: i32) {
        let path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}-jobmaster");
        let call = self.expect(Method::GET, &path).await;
        call.ok(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{NAME}-jobmaster"), "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"replicas": pods},
        }));
    }

    /// Expects the six children of the job `NAME`, applied in order, and answers each with
    /// what was sent, but the Deployment with `deployment_status` added. Returns the bodies.
    pub async fn expect_children(&mut self, deployment_status: Option<Value>) -> Vec<Value> {
        let ns = NAMESPACE;
        let mut bodies = Vec::new();
        for path in [
            format!("/api/v1/namespaces/{ns}/serviceaccounts/{NAME}-jobmaster"),
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{NAME}-jobmaster"),
            format!(
                "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{NAME}-jobmaster"
            ),
            format!("/api/v1/namespaces/{ns}/configmaps/{NAME}-job"),
            format!("/api/v1/namespaces/{ns}/services/{NAME}-jobmaster"),
        ] {
            bodies.push(self.expect_apply(&path).await);
        }
        let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{NAME}-jobmaster");
        let call = self.expect(Method::PATCH, &path).await;
        let mut deployment = call.body.clone();
        bodies.push(call.body.clone());
        deployment["metadata"]["generation"] = json!(1);
        if let Some(status) = deployment_status {
            deployment["status"] = status;
        }
        call.ok(&deployment);
        bodies
    }

    /// Expects the status of the job to be applied; answers with `job` carrying it.
    pub async fn expect_status(&mut self, job: &StreamJob) -> Value {
        let path =
            format!("/apis/spate.dev/v1alpha1/namespaces/{NAMESPACE}/streamjobs/{NAME}/status");
        let call = self.expect(Method::PATCH, &path).await;
        assert!(
            call.query.contains("fieldManager=spate-operator"),
            "{}",
            call.query
        );
        assert_eq!(call.body["apiVersion"], "spate.dev/v1alpha1");
        assert_eq!(call.body["kind"], "StreamJob");
        let status = call.body["status"].clone();
        let mut answer = serde_json::to_value(job).unwrap();
        answer["status"] = status.clone();
        call.ok(&answer);
        status
    }

    /// Expects an event about the job; answers that it was created. Returns the event.
    pub async fn expect_event(&mut self) -> Value {
        let path = format!("/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events");
        let call = self.expect(Method::POST, &path).await;
        assert_eq!(call.body["regarding"]["name"], NAME);
        assert_eq!(call.body["regarding"]["kind"], "StreamJob");
        let event = call.body.clone();
        call.echo();
        event
    }

    /// Expects the status of the job to be applied; returns it with the answer's job (`job`
    /// carrying the status), for the next reconciliation.
    pub async fn expect_status_of(&mut self, job: &StreamJob) -> (Value, StreamJob) {
        let status = self.expect_status(job).await;
        let mut next = job.clone();
        next.status = Some(serde_json::from_value(status.clone()).unwrap());
        (status, next)
    }

    /// Asserts that no request is waiting.
    pub async fn expect_nothing_more(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(100), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected {} {}", request.method(), request.uri());
        }
    }
}

/// The `labelSelector` of a query, decoded.
fn label_selector(query: &str) -> String {
    let encoded = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("labelSelector="))
        .unwrap_or_default();
    encoded
        .replace("%3D", "=")
        .replace("%2C", ",")
        .replace("%2F", "/")
}
