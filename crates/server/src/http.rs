//! The routes: `POST /graphql`, GraphiQL at `GET /graphql`, `GET /health`,
//! `GET /metrics`; the request body limit and request counting.

use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::ConnectionTrait;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;

use crate::AppState;
use roster_graphql::{MAX_RESPONSE_BYTES, request_data, request_loaders};

/// The largest request body accepted (1 MiB); larger ones get HTTP 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long `/health` waits for `SELECT 1`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// The server's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        // Refuses a body announced (Content-Length) or streamed past the
        // limit with 413, without reading the rest.
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost, so refused bodies (413) are counted too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Executes a GraphQL request, or a batch, with one set of loaders for the
/// whole HTTP request. A batch is checked as a whole first
/// ([`roster_graphql::admit`]: refused before any of it runs); its
/// operations run one after the other, in order, so a later one reads what
/// an earlier one wrote. An answer over [`MAX_RESPONSE_BYTES`] is replaced
/// by a `response_size` refusal. The whole
/// request gets [`AppState::request_timeout`]; past it the answer is 504
/// with an `INTERNAL` error.
async fn graphql(State(state): State<AppState>, body: Bytes) -> Response {
    let mut batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(e) => {
            state.metrics().graphql_error(Some("BAD_USER_INPUT"));
            let body = json!({ "errors": [{
                "message": format!("the body is not a GraphQL request: {e}"),
                "extensions": { "code": "BAD_USER_INPUT" },
            }]});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let loaders = request_loaders(state.db(), state.metrics().loader());
    let work = async {
        // A batch is measured as a whole before any of it runs.
        if let Err(refusal) = roster_graphql::admit(&mut batch) {
            return BatchResponse::Single(refusal.to_response());
        }
        match batch {
            BatchRequest::Single(request) => BatchResponse::Single(
                state
                    .schema()
                    .execute(request_data(request, &loaders, state.db()))
                    .await,
            ),
            BatchRequest::Batch(requests) => {
                let mut responses = Vec::with_capacity(requests.len());
                for request in requests {
                    let request = request_data(request, &loaders, state.db());
                    responses.push(state.schema().execute(request).await);
                }
                BatchResponse::Batch(responses)
            }
        }
    };
    let limit = state.request_timeout();
    match tokio::time::timeout(limit, work).await {
        Ok(response) => {
            let (response, body) = roster_graphql::encode(response, MAX_RESPONSE_BYTES);
            let responses = match &response {
                BatchResponse::Single(one) => std::slice::from_ref(one),
                BatchResponse::Batch(many) => many.as_slice(),
            };
            for error in responses.iter().flat_map(|r| &r.errors) {
                state.metrics().graphql_error(error_code(error));
            }
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        // Everything the request was doing is dropped: a transaction rolls
        // back; a single statement already sent may or may not have run.
        Err(_) => {
            tracing::warn!(?limit, "a GraphQL request hit the request time limit");
            state.metrics().request_timeout();
            state.metrics().graphql_error(Some("INTERNAL"));
            let body = json!({ "errors": [{
                "message": format!(
                    "the request did not finish within {}",
                    humantime::format_duration(limit)
                ),
                "extensions": { "code": "INTERNAL" },
            }]});
            (StatusCode::GATEWAY_TIMEOUT, Json(body)).into_response()
        }
    }
}

/// An error's `extensions.code`, if it has one.
fn error_code(error: &async_graphql::ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        async_graphql::Value::Enum(code) => Some(code.as_str()),
        _ => None,
    }
}

/// The GraphiQL IDE, pointed at `/graphql`.
async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("Roster GraphiQL")
            .finish(),
    )
}

/// 200 if the database answers `SELECT 1`, else 503.
async fn health(State(state): State<AppState>) -> Response {
    let check = tokio::time::timeout(HEALTH_TIMEOUT, state.db().execute_unprepared("SELECT 1"));
    match check.await {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: the database failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(_) => {
            tracing::warn!("health check: the database did not answer in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// Prometheus text (OpenMetrics).
async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics().encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Counts every answered request by method, route and status.
async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path: &'static str = match request.uri().path() {
        "/graphql" => "/graphql",
        "/health" => "/health",
        "/metrics" => "/metrics",
        _ => "other",
    };
    let response = next.run(request).await;
    state
        .metrics()
        .http_request(&method, path, response.status().as_u16());
    response
}
