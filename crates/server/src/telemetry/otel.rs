//! The OpenTelemetry export (feature `otel`): a tracer provider sending
//! batches of finished spans over OTLP (HTTP, protobuf bodies) from a
//! thread of its own, the `tracing` layer that feeds it, and the W3C trace
//! context a caller may send.

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, Registry};

use crate::ServerError;

/// A provider exporting to `endpoint` (the full traces URL) in batches,
/// its spans naming `service_name` (or what the SDK reads from the
/// environment).
pub(super) fn provider(
    endpoint: &str,
    service_name: Option<&str>,
) -> Result<SdkTracerProvider, ServerError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| ServerError::Telemetry {
            step: "building the OTLP exporter",
            source: Box::new(e),
        })?;
    let mut resource = Resource::builder();
    if let Some(name) = service_name {
        resource = resource.with_service_name(name.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The layer turning `tracing` spans into OpenTelemetry spans of
/// `provider`.
pub(super) fn layer(provider: &SdkTracerProvider) -> Box<dyn Layer<Registry> + Send + Sync> {
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("roster-server"))
        .boxed()
}

/// Makes `span` (a request's) a child of the caller's trace when the
/// request carries a W3C `traceparent` header.
pub(crate) fn continue_trace(span: &Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    // Fails only when no OpenTelemetry layer is installed: nothing to join.
    let _ = span.set_parent(context);
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}
