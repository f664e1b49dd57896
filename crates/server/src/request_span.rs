//! Every request's id and span: the outermost layers of the router.
//!
//! - The request id: `x-request-id` from the client if it is usable (1 to
//!   [`MAX_REQUEST_ID_LEN`] visible ASCII characters, sent once), otherwise
//!   a new UUID v4 in its place (tower-http's `SetRequestIdLayer`); it goes
//!   back in the answer's `x-request-id` (`PropagateRequestIdLayer`).
//! - The span (tower-http's `TraceLayer`): `http.request` at `info`, with
//!   the request id, the method and the route (each from a fixed set, as
//!   the metrics labels), and the status once answered. Every log line of
//!   the request is inside it, and so are the `graphql`, `graphql.operation`,
//!   loader batch and statement spans; it closes when the answer's body has
//!   been sent. Never the query string, the headers or the body.
//!
//! With the `otel` feature, a W3C `traceparent` header makes the span a
//! child of the caller's trace.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, Response};
use tower_http::trace::{DefaultOnResponse, MakeSpan, OnResponse};
use tracing::Span;
use tracing::field::Empty;

use crate::metrics::method_label;

/// The request id header, in requests and answers.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id taken from a client; a longer one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// [`REQUEST_ID_HEADER`] as a header name.
pub(crate) fn header_name() -> HeaderName {
    HeaderName::from_static(REQUEST_ID_HEADER)
}

/// Whether `value` may be used as a request id: 1 to
/// [`MAX_REQUEST_ID_LEN`] visible ASCII characters (no space, no control
/// character, nothing beyond ASCII).
pub fn is_usable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// Removes a request id the server will not use (see
/// [`is_usable_request_id`]; also one sent more than once), so that
/// `SetRequestIdLayer` makes a new one in its place.
pub(crate) fn drop_unusable_request_id(mut request: Request) -> Request {
    let name = header_name();
    let mut values = request.headers().get_all(&name).iter();
    let usable = match (values.next(), values.next()) {
        (Some(value), None) => is_usable_request_id(value.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !usable {
        request.headers_mut().remove(&name);
    }
    request
}

/// The `route` of a path for the span and the metrics: one of a fixed set.
pub(crate) fn route_label(path: &str) -> &'static str {
    match path {
        "/graphql" => "/graphql",
        "/health" => "/health",
        "/metrics" => "/metrics",
        p if p.starts_with("/graphiql/") => "/graphiql",
        _ => "other",
    }
}

/// Makes the `http.request` span of a request.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> Span {
        let id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|id| id.to_str().ok())
            .unwrap_or("-");
        let span = tracing::info_span!(
            "http.request",
            request_id = id,
            http.request.method = method_label(request.method().as_str()),
            http.route = route_label(request.uri().path()),
            http.response.status_code = Empty,
            otel.kind = "server",
            otel.status_code = Empty,
        );
        #[cfg(feature = "otel")]
        crate::telemetry::continue_trace(&span, request.headers());
        span
    }
}

/// Records the status in the request's span (an error status for 5xx),
/// then logs the answer at `debug` (`tower_http::trace::on_response`,
/// with the latency in microseconds).
#[derive(Clone, Debug)]
pub(crate) struct RecordStatus(DefaultOnResponse);

impl Default for RecordStatus {
    fn default() -> Self {
        Self(DefaultOnResponse::new().latency_unit(tower_http::LatencyUnit::Micros))
    }
}

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        self.0.on_response(response, latency, span);
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn usable_request_ids() {
        assert!(is_usable_request_id(b"abc-123_DEF.456:~"));
        assert!(is_usable_request_id(&[b'a'; MAX_REQUEST_ID_LEN]));
        assert!(!is_usable_request_id(&[b'a'; MAX_REQUEST_ID_LEN + 1]));
        assert!(!is_usable_request_id(b""));
        for hostile in [&b"a b"[..], b"a\tb", b"a\nb", b"a\x7fb", "é".as_bytes()] {
            assert!(!is_usable_request_id(hostile), "{hostile:?}");
        }
    }

    #[test]
    fn an_unusable_or_repeated_id_is_dropped() {
        let request = |ids: &[&str]| {
            let mut request = Request::new(axum::body::Body::empty());
            for id in ids {
                request.headers_mut().append(
                    REQUEST_ID_HEADER,
                    HeaderValue::from_str(id).expect("a header value"),
                );
            }
            drop_unusable_request_id(request)
                .headers()
                .get_all(REQUEST_ID_HEADER)
                .iter()
                .count()
        };
        assert_eq!(request(&["abc"]), 1);
        assert_eq!(request(&[]), 0);
        assert_eq!(request(&["a b"]), 0);
        assert_eq!(request(&["abc", "def"]), 0);
    }

    #[test]
    fn routes_come_from_a_fixed_set() {
        assert_eq!(route_label("/graphql"), "/graphql");
        assert_eq!(route_label("/graphiql/graphiql.min.js"), "/graphiql");
        assert_eq!(route_label("/graphqlx"), "other");
        assert_eq!(route_label("/anything/else"), "other");
    }
}
