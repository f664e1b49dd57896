//! The OpenTelemetry export (`roster-server`'s `otel` feature, which the
//! root package's dev-dependencies turn on), set up by `telemetry::init()`
//! from the environment in a process of its own: spans sent over OTLP/HTTP
//! to a collector in the test, decoded with `opentelemetry-proto`, arrive as
//! one trace with parent links from the request to the statement,
//! continuing the caller's `traceparent`; the JSON log lines on stdout name
//! the request.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use roster_testkit::{Backend, TestDb, backend_tests};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::alone;
use crate::graphql::start;

/// What the collector received.
#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    /// `service.name` of each batch's resource.
    services: Arc<Mutex<Vec<String>>>,
}

/// `POST /v1/traces`: decodes an OTLP export and keeps its spans.
async fn traces(State(received): State<Received>, body: Bytes) -> impl IntoResponse {
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    for resource_spans in export.resource_spans {
        if let Some(name) = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| text(&resource.attributes, "service.name"))
        {
            received
                .services
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(name.to_owned());
        }
        for scope_spans in resource_spans.scope_spans {
            received
                .spans
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(scope_spans.spans);
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

/// The string attribute `key`, if there is one.
fn text<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .and_then(|value| match value {
            any_value::Value::StringValue(text) => Some(text.as_str()),
            _ => None,
        })
}

/// The caller's trace: W3C `traceparent` with its trace id and span id.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request the test makes, alone in a process whose subscriber
/// `telemetry::init()` set up from the environment, as `roster-server`'s:
/// answered, then the spans flushed to the collector.
async fn traced_request(db: &TestDb) {
    let telemetry = roster::server::telemetry::init().expect("the subscriber");
    assert!(telemetry.exporting());
    db.migrate().await;
    let server = start(db).await;
    let response = server
        .client()
        .post(server.url("/graphql"))
        .header("x-request-id", "otlp-1")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .json(&json!({ "query": "query Lookup { usersByIds(ids: [\"1\", \"2\"]) { name } }" }))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.expect("the answer");
    server.stop().await;
    // SQLite's connection worker (a thread) may let go of the statement's
    // span, and so end the request's, a moment after the answer: flush a
    // few times. Dropping `telemetry` sends whatever is left.
    let telemetry = Arc::new(telemetry);
    for _ in 0..5 {
        let flushing = telemetry.clone();
        tokio::task::spawn_blocking(move || flushing.flush())
            .await
            .expect("the flush")
            .expect("the spans were sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn spans_reach_a_collector_as_one_trace(db: &TestDb) {
    if alone::is_child() {
        return traced_request(db).await;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let collector = format!("http://{}", listener.local_addr().expect("an address"));
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(received.clone());
    let collecting = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the collector");
    });
    let stdout = alone::run_alone(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
        ("ROSTER_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,tower_http=debug"),
    ])
    .await;
    collecting.abort();

    // The log lines, on stdout as JSON, name the request.
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| line["spans"][0]["request_id"] == "otlp-1")
        .collect();
    for message in ["started processing request", "finished processing request"] {
        assert!(
            of_request.iter().any(|line| line["message"] == message),
            "{message}: {stdout}"
        );
    }

    // The caller's trace; the migrations before the request make others.
    let spans: Vec<Span> = received
        .spans
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|span| hex(&span.trace_id) == TRACE_ID)
        .cloned()
        .collect();
    let named = |name: &str| -> &Span {
        let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name} span: {spans:#?}");
        found[0]
    };
    let request = named("http.request");
    let graphql = named("graphql");
    let operation = named("graphql.operation");
    let batch = named("roster_loader.batch");
    let statement = named("sea_orm.query_all");
    assert_eq!(spans.len(), 5, "{spans:#?}");
    for span in &spans {
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    assert_eq!(
        hex(&request.parent_span_id),
        CALLER_SPAN_ID,
        "the caller's span"
    );
    for (child, parent) in [
        (graphql, request),
        (operation, graphql),
        (batch, operation),
        (statement, batch),
    ] {
        assert_eq!(
            child.parent_span_id, parent.span_id,
            "{} under {}",
            child.name, parent.name
        );
        assert!(child.start_time_unix_nano >= parent.start_time_unix_nano);
        // A span ends when it is last exited. On SQLite, sqlx's connection
        // worker (a thread) enters the statement's span itself, and may
        // leave it a moment after the batch has its rows.
        let enters_elsewhere = child.name == statement.name && db.backend() == Backend::Sqlite;
        assert!(
            child.end_time_unix_nano <= parent.end_time_unix_nano || enters_elsewhere,
            "{} ends after {}",
            child.name,
            parent.name,
        );
    }
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(statement.kind, SpanKind::Client as i32);
    assert_eq!(text(&request.attributes, "request_id"), Some("otlp-1"));
    assert_eq!(text(&request.attributes, "http.route"), Some("/graphql"));
    assert_eq!(
        text(&operation.attributes, "graphql.operation.name"),
        Some("Lookup")
    );
    assert_eq!(text(&batch.attributes, "source"), Some("users"));
    assert_eq!(text(&statement.attributes, "db.operation"), Some("SELECT"));
    let services = received
        .services
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(
        !services.is_empty() && services.iter().all(|s| s == "roster-server"),
        "{services:?}"
    );
}

backend_tests!(spans_reach_a_collector_as_one_trace);
