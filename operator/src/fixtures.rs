//! Test support: a `kube::Client` whose API server is the test itself (a `tower_test` mock
//! service). The test answers each request in turn and checks what the reconciler sent.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::{Client, Resource};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use crate::controller::Context;
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

/// A context on a mocked API server, and its metrics registry.
pub fn context() -> (Arc<Context>, ApiServer, Registry) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut registry = Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    let reporter = Reporter {
        controller: "spate-operator".into(),
        instance: None,
    };
    let ctx = Context::new(client, reporter, metrics);
    (Arc::new(ctx), ApiServer(handle), registry)
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

    /// Asserts that no request is waiting.
    pub async fn expect_nothing_more(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(100), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected {} {}", request.method(), request.uri());
        }
    }
}
