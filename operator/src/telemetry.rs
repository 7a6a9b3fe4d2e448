//! Logging and tracing of the operator: `tracing` to stderr, filtered by `RUST_LOG` (default
//! `info`), and, in a build with the `otel` feature, the same spans exported to an OpenTelemetry
//! collector over OTLP (HTTP/protobuf) when an endpoint is given (`--otlp-endpoint` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`).
//!
//! The endpoint is the collector's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` means it
//! (`http://otel-collector:4318`): spans go to `<endpoint>/v1/traces`, in batches, with
//! `service.name` `spate-operator`. A build without the feature refuses an endpoint rather than
//! ignoring it.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The environment variable giving the OTLP endpoint when `--otlp-endpoint` is not.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// `service.name` of the exported spans.
pub const SERVICE_NAME: &str = "spate-operator";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "an OTLP endpoint is set ({0}, from --otlp-endpoint or {OTLP_ENDPOINT_ENV}), but this \
         spate-operator was built without the `otel` feature; build it with \
         `cargo build -p spate-operator --features otel`, or unset the endpoint"
    )]
    FeatureMissing(String),
    #[error("OTLP endpoint {0}: only http:// is supported (the exporter has no TLS)")]
    UnsupportedScheme(String),
    #[cfg(feature = "otel")]
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[cfg(feature = "otel")]
    #[error("the OTLP exporter needs a Tokio runtime")]
    NoRuntime,
}

/// What [`init`] installed; [`Telemetry::shutdown`] flushes the spans not yet exported.
#[derive(Default)]
#[must_use = "call shutdown() before exiting, or the last spans are lost"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is left and stops the exporter (at most the exporter's timeout).
    pub async fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider {
            // The export runs on this runtime (`otel::OnRuntime`) while shutdown blocks: block
            // a thread of the blocking pool, not a worker.
            match tokio::task::spawn_blocking(move || provider.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: flushing spans to the OTLP endpoint: {e}"),
                Err(e) => eprintln!("warning: flushing spans to the OTLP endpoint: {e}"),
            }
        }
    }
}

/// The endpoint to export to: `flag`, else `OTEL_EXPORTER_OTLP_ENDPOINT`; empty means none.
pub fn otlp_endpoint(flag: Option<String>) -> Option<String> {
    flag.or_else(|| std::env::var(OTLP_ENDPOINT_ENV).ok())
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
}

/// Installs the global subscriber (a second call installs nothing) and, given an endpoint, the
/// OTLP exporter. With an endpoint this must run inside a Tokio runtime.
pub fn init(otlp_endpoint: Option<&str>) -> Result<Telemetry, TelemetryError> {
    #[cfg(not(feature = "otel"))]
    if let Some(endpoint) = otlp_endpoint {
        return Err(TelemetryError::FeatureMissing(endpoint.to_owned()));
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: pod logs are files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let subscriber = tracing_subscriber::registry().with(filter).with(fmt);
    #[cfg(feature = "otel")]
    if let Some(endpoint) = otlp_endpoint {
        let provider = otel::provider(endpoint)?;
        let _ = subscriber.with(otel::layer(&provider)).try_init();
        tracing::info!(
            endpoint = %otel::traces_url(endpoint),
            "exporting spans over OTLP"
        );
        return Ok(Telemetry {
            provider: Some(provider),
        });
    }
    let _ = subscriber.try_init();
    Ok(Telemetry::default())
}

/// The OpenTelemetry side, built only with the `otel` feature.
#[cfg(feature = "otel")]
pub mod otel {
    use std::time::Duration;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_http::hyper::HyperClient;
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
    use tracing_opentelemetry::OpenTelemetryLayer;

    use super::{SERVICE_NAME, TelemetryError};

    /// Limit of one export request.
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Where the spans of a base `endpoint` go (the OTLP/HTTP traces path).
    pub fn traces_url(endpoint: &str) -> String {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    }

    /// A tracer provider exporting in batches to `endpoint` (a base URL). Needs a Tokio
    /// runtime: the requests run on it.
    pub fn provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
        if !endpoint.starts_with("http://") {
            return Err(TelemetryError::UnsupportedScheme(endpoint.to_owned()));
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
        let client = OnRuntime {
            client: HyperClient::with_default_connector(EXPORT_TIMEOUT, None),
            runtime,
        };
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url(endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(client)
            .build()?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
            .build())
    }

    /// The `tracing` layer turning spans into OpenTelemetry spans of `provider`.
    pub fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME))
    }

    /// hyper's client on the operator's Tokio runtime: the SDK's batch processor exports from
    /// a thread of its own, outside any runtime, where hyper cannot connect.
    #[derive(Debug)]
    struct OnRuntime {
        client: HyperClient,
        runtime: tokio::runtime::Handle,
    }

    #[async_trait::async_trait]
    impl HttpClient for OnRuntime {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let client = self.client.clone();
            self.runtime
                .spawn(async move { client.send_bytes(request).await })
                .await?
        }
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;

    #[test]
    fn the_flag_wins_and_blank_means_none() {
        assert_eq!(
            otlp_endpoint(Some(" http://collector:4318 ".into())).as_deref(),
            Some("http://collector:4318")
        );
        // A blank flag (the chart's empty value) turns the export off, whatever the environment.
        assert_eq!(otlp_endpoint(Some("  ".into())), None);
    }
}

#[cfg(all(test, not(feature = "otel")))]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_without_the_otel_feature_is_refused() {
        let error = init(Some("http://collector:4318")).err().expect("an error");
        assert!(matches!(error, TelemetryError::FeatureMissing(_)));
        let message = error.to_string();
        assert!(message.contains("`otel` feature"), "{message}");
        assert!(message.contains("http://collector:4318"), "{message}");
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    type Received = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

    /// A collector accepting `POST /v1/traces` and keeping each body with its content type.
    async fn collector() -> (String, Received) {
        let received = Received::default();
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                post(
                    |State(received): State<Received>, headers: HeaderMap, body: Bytes| async move {
                        let content_type = headers
                            .get(axum::http::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        received.lock().unwrap().push((content_type, body));
                        // An empty ExportTraceServiceResponse: everything accepted.
                        StatusCode::OK
                    },
                ),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}"), received)
    }

    fn string_attribute(
        attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
        key: &str,
    ) -> Option<String> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .and_then(|v| match v {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
    }

    #[tokio::test]
    async fn a_span_reaches_the_collector_with_its_fields() {
        let (endpoint, received) = collector().await;
        // A trailing slash, as users write it: still <endpoint>/v1/traces.
        let provider = otel::provider(&format!("{endpoint}/")).unwrap();
        let subscriber = tracing_subscriber::registry().with(otel::layer(&provider));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("reconcile", job = "wordcount", namespace = "streams");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert!(
            received.lock().unwrap().is_empty(),
            "exported before the flush: not batched"
        );
        // Shutdown blocks until the batch is exported (on this runtime, hence spawn_blocking).
        Telemetry {
            provider: Some(provider),
        }
        .shutdown()
        .await;

        let received = received.lock().unwrap();
        assert_eq!(received.len(), 1, "one export request");
        let (content_type, body) = &received[0];
        assert_eq!(content_type.as_deref(), Some("application/x-protobuf"));
        let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP protobuf");
        let resource = request.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(
            string_attribute(&resource.attributes, "service.name").as_deref(),
            Some(SERVICE_NAME)
        );
        let spans: Vec<_> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(spans.len(), 1, "{spans:?}");
        let span = spans[0];
        assert_eq!(span.name, "reconcile");
        assert_eq!(
            string_attribute(&span.attributes, "job").as_deref(),
            Some("wordcount")
        );
        assert_eq!(
            string_attribute(&span.attributes, "namespace").as_deref(),
            Some("streams")
        );
        assert_eq!(span.events.len(), 1, "the event inside the span");
    }

    #[tokio::test]
    async fn an_https_endpoint_is_refused() {
        let error = otel::provider("https://collector:4318").err().unwrap();
        assert!(matches!(error, TelemetryError::UnsupportedScheme(_)));
    }
}
