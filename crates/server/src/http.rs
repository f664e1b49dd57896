//! The routes: `POST /graphql`, GraphiQL at `GET /graphql` (and its assets
//! under `/graphiql/`), `GET /health`, `GET /metrics`; and the layers
//! around them: the request id and span (see `request_span`), request
//! counting, security headers, the `Host` and cross-origin checks, CORS,
//! the body limit. Every refusal goes through [`refuse`]: logged at `warn`
//! with its reason, counted in `roster_requests_refused_total`, answered
//! with a JSON error.

use std::time::Duration;

use async_graphql::{BatchRequest, BatchResponse};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sea_orm::ConnectionTrait;
use serde_json::json;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

use crate::auth::AuthError;
use crate::consistency::{self, Consistency};
use crate::metrics::RefusalReason;
use crate::policy::{self, GRAPHQL_RESPONSE_JSON};
use crate::request_span::{
    RecordStatus, RequestSpan, drop_unusable_request_id, header_name, route_label,
};
use crate::{AppState, HostPolicy, graphiql};
use roster_graphql::{Caller, MAX_RESPONSE_BYTES, request_data};
use roster_store::{CommitPosition, Loaders};

/// The largest request body accepted (1 MiB); larger ones get HTTP 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long `/health` waits for `SELECT 1`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// The most of a client-supplied value (a host, an origin) a log line quotes.
const LOGGED_CHARS: usize = 80;

/// The server's routes over `state`.
pub fn router(state: AppState) -> Router {
    let state = if state.settings().hosts.is_none() {
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        state.with_allowed_hosts(HostPolicy::default_for(loopback))
    } else {
        state
    };
    let settings = state.settings();
    let graphql_route = if settings.graphiql {
        get(graphiql::graphiql).post(graphql)
    } else {
        post(graphql)
    };
    let mut router = Router::new()
        .route("/graphql", graphql_route)
        .route("/health", get(health))
        .route("/metrics", get(metrics));
    if settings.graphiql {
        router = router.route("/graphiql/{file}", get(graphiql::asset));
    }
    // Refuses a body announced (Content-Length) or streamed past the limit
    // with 413, without reading the rest.
    router = router
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    if !settings.cors_origins.is_empty() {
        router = router.layer(cors(&settings.cors_origins));
    }
    let mut router = router
        .layer(middleware::from_fn_with_state(state.clone(), check_origin))
        .layer(middleware::from_fn_with_state(state.clone(), check_host));
    for (name, value) in policy::security_headers() {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    // Outside the checks, so every answer is counted, refusals included.
    let router = router.layer(middleware::from_fn_with_state(
        state.clone(),
        count_requests,
    ));
    // Outermost: the request id and the request's span, around everything
    // the router does (see `request_span`).
    let traced = ServiceBuilder::new()
        .layer(MapRequestLayer::new(drop_unusable_request_id))
        .layer(SetRequestIdLayer::new(header_name(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(header_name()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                .on_response(RecordStatus::default())
                // Failures are logged where they happen (refusals, errors).
                .on_failure(()),
        );
    router.layer(traced).with_state(state)
}

/// CORS for the allowed origins: `POST /graphql` with a JSON body and a
/// bearer token. Other origins get no CORS headers (and [`check_origin`]
/// refuses them).
fn cors(origins: &[String]) -> CorsLayer {
    let origins = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(&o.to_ascii_lowercase()).ok());
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT,
            header_name(),
            consistency::after_header(),
        ])
        .expose_headers([header_name(), consistency::position_header()])
        .max_age(Duration::from_secs(600))
}

/// Logs and counts a refusal, and answers `status` with a JSON error
/// carrying `code`.
fn refuse(
    state: &AppState,
    reason: RefusalReason,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    state.metrics().refused(reason);
    tracing::warn!(
        reason = reason.as_str(),
        status = status.as_u16(),
        "refused: {message}"
    );
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

/// A client-supplied value, cut short for a log line or a message.
fn shorten(value: &str) -> String {
    match value.char_indices().nth(LOGGED_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// Serves only requests whose `Host` the state allows (421 otherwise), so
/// that a name rebound to this server's address (DNS rebinding) gets
/// nothing. `/health` is exempt: probes use whatever address they know.
async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let allowed = match (&state.settings().hosts, &host) {
        (Some(hosts), Some(host)) => hosts.allows(host),
        _ => false,
    };
    if allowed || request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let message = match host {
        Some(host) => format!(
            "this server does not serve the host {} (ROSTER_ALLOWED_HOSTS)",
            shorten(&host)
        ),
        None => "a request must name its host (Host header)".to_owned(),
    };
    refuse(
        &state,
        RefusalReason::BadHost,
        StatusCode::MISDIRECTED_REQUEST,
        "BAD_USER_INPUT",
        &message,
    )
}

/// Refuses (403) a request whose `Origin` is neither this server's own nor
/// in `ROSTER_CORS_ORIGINS`: a page on another site cannot write, or read,
/// whatever the browser lets through.
async fn check_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return next.run(request).await;
    };
    let origin = origin.to_str().unwrap_or("<not text>");
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let listed = state
        .settings()
        .cors_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin));
    if listed || policy::same_origin(origin, host) {
        return next.run(request).await;
    }
    let message = format!(
        "requests from pages at {} are not allowed (ROSTER_CORS_ORIGINS)",
        shorten(origin)
    );
    refuse(
        &state,
        RefusalReason::Cors,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        &message,
    )
}

/// 401 with `WWW-Authenticate: Bearer` and `UNAUTHENTICATED`.
fn unauthenticated(state: &AppState, error: &AuthError) -> Response {
    let mut response = refuse(
        state,
        RefusalReason::Unauthenticated,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        &error.to_string(),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(error.challenge()),
    );
    response
}

/// Why a `/graphql` request ended before it was executed.
enum Early {
    /// The body did not arrive within the body timeout.
    BodyTimeout,
    /// The body was over [`MAX_BODY_BYTES`].
    TooLarge,
    /// The body could not be read (the client went away).
    BodyFailed(axum::Error),
    /// The body is not a GraphQL request.
    NotGraphql(serde_json::Error),
}

/// Executes a GraphQL request, or a batch, with one set of loaders for the
/// whole HTTP request. The operations of a batch run one after the other,
/// in order, so a later one reads what an earlier one wrote.
///
/// In order: the caller's token (401), the `Content-Type` (415), then the
/// body, read within the body timeout (408); the request time limit
/// ([`AppState::request_timeout`]) covers everything from reading the body
/// to the answer (504 with `INTERNAL` past it). The caller goes into each
/// operation's data, where the schema checks its scopes (`FORBIDDEN`, HTTP
/// 403 when it refuses a whole single request), and into the tracing span
/// of the request, so every log line below says who asked.
async fn graphql(State(state): State<AppState>, request: Request) -> Response {
    let settings = state.settings();
    let caller = match settings.auth.authenticate(request.headers()) {
        Ok(caller) => caller,
        Err(e) => return unauthenticated(&state, &e),
    };
    if !policy::is_json(request.headers()) {
        return refuse(
            &state,
            RefusalReason::UnsupportedMediaType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "POST /graphql takes a body of Content-Type application/json",
        );
    }
    let after = match consistency::requested(request.headers()) {
        Ok(after) => after,
        Err(message) => {
            state.metrics().graphql_error(Some("BAD_USER_INPUT"));
            let body = json!({ "errors": [{
                "message": message,
                "extensions": { "code": "BAD_USER_INPUT" },
            }]});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let graphql_response = policy::wants_graphql_response(request.headers());
    let span = tracing::info_span!("graphql", caller = caller.subject().unwrap_or("-"));
    let body_timeout = settings.limits.body_timeout;
    let work = async {
        let read = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES);
        let body = match tokio::time::timeout(body_timeout, read).await {
            Err(_) => return Err(Early::BodyTimeout),
            Ok(Err(e)) if too_large(&e) => return Err(Early::TooLarge),
            Ok(Err(e)) => return Err(Early::BodyFailed(e)),
            Ok(Ok(body)) => body,
        };
        let batch: BatchRequest = serde_json::from_slice(&body).map_err(Early::NotGraphql)?;
        Ok(execute(&state, batch, &caller, after).await)
    }
    .instrument(span.clone());
    let limit = state.request_timeout();
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(Ok((mut response, consistency)))) => {
            consistency.annotate(&mut response);
            let mut answered = span.in_scope(|| answer(&state, response, graphql_response));
            if let Some(position) = consistency.header() {
                answered
                    .headers_mut()
                    .insert(consistency::position_header(), position);
            }
            answered
        }
        Ok(Ok(Err(message))) => {
            state.metrics().graphql_error(Some("BAD_USER_INPUT"));
            let body = json!({ "errors": [{
                "message": message,
                "extensions": { "code": "BAD_USER_INPUT" },
            }]});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        Ok(Err(Early::BodyTimeout)) => {
            let mut response = refuse(
                &state,
                RefusalReason::BodyTimeout,
                StatusCode::REQUEST_TIMEOUT,
                "BAD_USER_INPUT",
                &format!(
                    "the request body did not arrive within {}",
                    humantime::format_duration(body_timeout)
                ),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        // Counted as `too_large` with every other 413 (see `count_requests`).
        Ok(Err(Early::TooLarge)) => {
            let body = json!({ "errors": [{
                "message": format!("the request body is over {MAX_BODY_BYTES} bytes"),
                "extensions": { "code": "BAD_USER_INPUT" },
            }]});
            (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response()
        }
        Ok(Err(Early::BodyFailed(e))) => {
            tracing::debug!(error = %e, "reading a request body failed");
            StatusCode::BAD_REQUEST.into_response()
        }
        Ok(Err(Early::NotGraphql(e))) => {
            state.metrics().graphql_error(Some("BAD_USER_INPUT"));
            let body = json!({ "errors": [{
                "message": format!("the body is not a GraphQL request: {e}"),
                "extensions": { "code": "BAD_USER_INPUT" },
            }]});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        // Everything the request was doing is dropped: a transaction rolls
        // back; a single statement already sent may or may not have run.
        Err(_) => {
            state.metrics().request_timeout();
            state.metrics().graphql_error(Some("INTERNAL"));
            let message = format!(
                "the request did not finish within {}",
                humantime::format_duration(limit)
            );
            let mut response = refuse(
                &state,
                RefusalReason::RequestTimeout,
                StatusCode::GATEWAY_TIMEOUT,
                "INTERNAL",
                &message,
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Whether reading a body failed on the size limit.
fn too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Runs `batch` for `caller`, its reads routed by the cluster (to a replica
/// that has reached `after`, if given) and its writes to the primary; with
/// the primary's commit position if it wrote. `Err`: `after` does not fit
/// this cluster.
async fn execute(
    state: &AppState,
    mut batch: BatchRequest,
    caller: &Caller,
    after: Option<CommitPosition>,
) -> Result<(BatchResponse, Consistency), String> {
    // A batch is measured as a whole before any of it runs.
    if let Err(refusal) = state.schema().admit(&mut batch) {
        return Ok((
            BatchResponse::Single(refusal.to_response()),
            Consistency::default(),
        ));
    }
    let cluster = state.cluster();
    let target = cluster
        .read_route(after.as_ref())
        .await
        .map_err(|e| format!("{}: {e}", consistency::AFTER_HEADER))?;
    tracing::debug!(read_from = target.from.as_str(), "reads routed");
    state.metrics().read_routed(target.from);
    let primary = target.route.primary_connection().clone();
    let loaders = Loaders::routed(target.route, state.metrics().loader().clone());
    let introspection = state.settings().introspection;
    let prepare = |request: async_graphql::Request| {
        let request = request_data(request, &loaders, &primary).data(caller.clone());
        if introspection {
            request
        } else {
            request.disable_introspection()
        }
    };
    let response = match batch {
        BatchRequest::Single(request) => {
            BatchResponse::Single(state.schema().execute(prepare(request)).await)
        }
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(state.schema().execute(prepare(request)).await);
            }
            BatchResponse::Batch(responses)
        }
    };
    let mut consistency = Consistency {
        position: None,
        read_from: after.is_some().then_some(target.from),
    };
    if loaders.route().written() {
        // After the writes were acknowledged: a position at or past them.
        let asked = cluster
            .position()
            .instrument(tracing::info_span!("roster.commit_position"));
        match asked.await {
            Ok(position) => consistency.position = position,
            Err(e) => tracing::warn!(error = %e, "reading the primary's commit position failed"),
        }
    }
    Ok((response, consistency))
}

/// The HTTP answer for `response`: encodes it within
/// [`MAX_RESPONSE_BYTES`] (refused with `response_size` beyond), counts its
/// errors (and the refusals among them), picks the status and the media
/// type.
fn answer(state: &AppState, response: BatchResponse, graphql_response: bool) -> Response {
    let (response, body) = roster_graphql::encode(response, MAX_RESPONSE_BYTES);
    let responses = match &response {
        BatchResponse::Single(one) => std::slice::from_ref(one),
        BatchResponse::Batch(many) => many.as_slice(),
    };
    for error in responses.iter().flat_map(|r| &r.errors) {
        let code = extension(error, "code");
        state.metrics().graphql_error(code);
        let reason = match code {
            Some("FORBIDDEN") => Some(RefusalReason::Forbidden),
            Some("BAD_USER_INPUT") => {
                extension(error, "reason").and_then(RefusalReason::from_graphql)
            }
            _ => None,
        };
        if let Some(reason) = reason {
            state.metrics().refused(reason);
            // The schema logs its own refusals (cost, depth, …) once.
            if reason == RefusalReason::Forbidden {
                tracing::warn!(
                    reason = reason.as_str(),
                    "refused: {}",
                    shorten(&error.message)
                );
            }
        }
    }
    let status = match &response {
        BatchResponse::Single(one)
            if one.data == async_graphql::Value::Null
                && !one.errors.is_empty()
                && one
                    .errors
                    .iter()
                    .all(|e| extension(e, "code") == Some("FORBIDDEN")) =>
        {
            StatusCode::FORBIDDEN
        }
        // A request error (it did not parse or validate): no execution, so
        // 4xx under the GraphQL-over-HTTP media type.
        BatchResponse::Single(one)
            if graphql_response
                && one.data == async_graphql::Value::Null
                && !one.errors.is_empty()
                && one.errors.iter().all(|e| e.path.is_empty()) =>
        {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    };
    let media_type = if graphql_response {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    };
    (
        status,
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// A string in an error's `extensions` (`code`, `reason`), if it has one.
fn extension<'a>(error: &'a async_graphql::ServerError, name: &str) -> Option<&'a str> {
    match error.extensions.as_ref()?.get(name)? {
        async_graphql::Value::String(value) => Some(value),
        async_graphql::Value::Enum(value) => Some(value.as_str()),
        _ => None,
    }
}

/// 200 if the database answers `SELECT 1`, else 503.
async fn health(State(state): State<AppState>) -> Response {
    let primary = state.db();
    let check = tokio::time::timeout(HEALTH_TIMEOUT, primary.execute_unprepared("SELECT 1"));
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

/// Counts every answered request by method (from a fixed set), route and
/// status; and the refusals no handler sees: bodies over the limit (413)
/// and methods a route does not serve (405).
async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = route_label(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let reason = match status {
        StatusCode::PAYLOAD_TOO_LARGE => Some(RefusalReason::TooLarge),
        StatusCode::METHOD_NOT_ALLOWED => Some(RefusalReason::Method),
        _ => None,
    };
    if let Some(reason) = reason {
        state.metrics().refused(reason);
        tracing::warn!(
            reason = reason.as_str(),
            method = crate::metrics::method_label(method.as_str()),
            path,
            "refused: {status}"
        );
    }
    state
        .metrics()
        .http_request(method.as_str(), path, status.as_u16());
    response
}
