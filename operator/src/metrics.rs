//! The operator's own metrics, in the Prometheus text format: reconciliations, failures by
//! kind of error, and how long reconciliations take.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The kind of error (`Error::kind`), never its message: label values must stay few.
    pub error: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub reconciliations: Counter,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciliations: Counter::default(),
            failures: Family::default(),
            // 5 ms to ~10 s.
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
        }
    }
}

impl Metrics {
    /// Registers the metrics (prefixed `spate_operator_`) in `registry`.
    pub fn register(self, registry: &mut Registry) -> Self {
        let registry = registry.sub_registry_with_prefix("spate_operator");
        registry.register(
            "reconciliations",
            "Reconciliations of StreamJobs",
            self.reconciliations.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciliations that failed, by kind of error",
            self.failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconciliation took",
            self.duration.clone(),
        );
        self
    }

    /// Counts a reconciliation; its duration is recorded when the guard is dropped.
    pub fn reconcile_started(&self) -> DurationGuard<'_> {
        self.reconciliations.inc();
        DurationGuard {
            histogram: &self.duration,
            start: Instant::now(),
        }
    }

    pub fn reconcile_failed(&self, kind: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                error: kind.to_string(),
            })
            .inc();
    }
}

pub struct DurationGuard<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for DurationGuard<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// The registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// The operator's HTTP endpoint: `/metrics` (OpenMetrics text) and `/healthz`.
pub fn router(registry: Arc<Registry>) -> Router {
    let metrics = move || {
        let registry = registry.clone();
        async move {
            (
                [(
                    CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                encode(&registry),
            )
        }
    };
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn http_get(address: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn the_endpoint_serves_metrics_and_health() {
        let mut registry = Registry::default();
        let metrics = Metrics::default().register(&mut registry);
        metrics.reconcile_failed("spec");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server =
            tokio::spawn(async move { axum::serve(listener, router(Arc::new(registry))).await });
        let response = http_get(address, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.contains("application/openmetrics-text"),
            "{response}"
        );
        assert!(
            response.contains("spate_operator_reconcile_failures_total{error=\"spec\"} 1"),
            "{response}"
        );
        let response = http_get(address, "/healthz").await;
        assert!(
            response.starts_with("HTTP/1.1 200") && response.ends_with("ok"),
            "{response}"
        );
        server.abort();
    }

    #[test]
    fn reconciliations_failures_and_durations_are_exposed_as_text() {
        let mut registry = Registry::default();
        let metrics = Metrics::default().register(&mut registry);
        drop(metrics.reconcile_started());
        drop(metrics.reconcile_started());
        metrics.reconcile_failed("kube");
        let text = encode(&registry);
        assert!(
            text.contains("spate_operator_reconciliations_total 2"),
            "{text}"
        );
        assert!(
            text.contains("spate_operator_reconcile_failures_total{error=\"kube\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("spate_operator_reconcile_duration_seconds_count 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
