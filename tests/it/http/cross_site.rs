//! No cross-site writes: only `application/json` bodies are executed
//! (415 otherwise, nothing run), a foreign `Origin` is refused, CORS
//! preflights succeed only for `ROSTER_CORS_ORIGINS`, the `Host` header is
//! checked (DNS rebinding), no GraphQL over GET, security headers on every
//! answer, and `application/graphql-response+json` when asked for.

use roster::server::{AppState, HostPolicy};
use roster_testkit::{TestDb, backend_tests};
use serde_json::{Value, json};

use super::{INSERT, users};
use crate::graphql::{Server, error_code, start};

/// Bodies a page on another site can send without a CORS preflight (a
/// form, or `fetch` in `no-cors` mode), and a body with no type at all.
async fn only_json_bodies_are_executed(db: &TestDb) {
    let server = start(db).await;
    let json_text = json!({ "query": INSERT }).to_string();
    let form = format!("query={}", INSERT.replace(' ', "+"));
    let cases: [(&str, Option<&str>, String); 5] = [
        ("text/plain", Some("text/plain"), json_text.clone()),
        (
            "text/plain;charset=UTF-8",
            Some("text/plain;charset=UTF-8"),
            json_text.clone(),
        ),
        ("a form", Some("application/x-www-form-urlencoded"), form),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            format!(
                "--x\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{json_text}\r\n--x--\r\n"
            ),
        ),
        ("no type", None, json_text.clone()),
    ];
    for (case, content_type, body) in &cases {
        let mut request = server
            .client()
            .post(server.url("/graphql"))
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", *content_type);
        }
        let response = request.send().await.expect("POST");
        assert_eq!(response.status().as_u16(), 415, "{case}");
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{case}");
    }
    assert_eq!(users(db).await, 0, "a non-JSON body was executed");
    assert_eq!(
        server
            .metric("roster_requests_refused_total{reason=\"unsupported_media_type\"}")
            .await,
        Some(cases.len() as u64)
    );
    // The same body as application/json runs.
    server.data(INSERT, json!({})).await;
    assert_eq!(users(db).await, 1);
}

/// A request carrying another site's `Origin` is refused whatever its
/// body; the server's own origin is served.
async fn a_foreign_origin_cannot_write(db: &TestDb) {
    let server = start(db).await;
    let own = server.url("");
    for origin in ["http://evil.test", "null", "http://localhost:1"] {
        let response = server
            .client()
            .post(server.url("/graphql"))
            .header("origin", origin)
            .json(&json!({ "query": INSERT }))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 403, "{origin}");
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }
    assert_eq!(users(db).await, 0);
    let response = server
        .client()
        .post(server.url("/graphql"))
        .header("origin", &own)
        .json(&json!({ "query": INSERT }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200, "the page's own origin");
    assert_eq!(users(db).await, 1);
    assert_eq!(
        server
            .metric("roster_requests_refused_total{reason=\"cors\"}")
            .await,
        Some(3)
    );
}

async fn preflight(server: &Server, origin: &str) -> reqwest::Response {
    server
        .client()
        .request(reqwest::Method::OPTIONS, server.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .expect("OPTIONS")
}

/// CORS: an allowed origin's preflight and request get the CORS headers;
/// another origin's preflight is refused without them.
async fn cors_preflights_follow_the_allowlist(db: &TestDb) {
    let allowed = "http://app.test:3000";
    let state = AppState::new(db.conn().clone()).with_cors_origins(vec![allowed.to_owned()]);
    let server = Server::start(state).await;

    let response = preflight(&server, allowed).await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], allowed);
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert!(
        allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );

    let response = server
        .client()
        .post(server.url("/graphql"))
        .header("origin", allowed)
        .json(&json!({ "query": INSERT }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], allowed);
    assert_eq!(users(db).await, 1);

    let response = preflight(&server, "http://evil.test").await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // Without an allowlist, every foreign preflight is refused.
    let server = start(db).await;
    let response = preflight(&server, allowed).await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// `Host` names another site (DNS rebinding): 421, nothing run; the
/// default allows the listen address and `localhost`; `/health` answers
/// any host.
async fn the_host_header_is_checked(db: &TestDb) {
    let server = start(db).await;
    let port = super::address(&server)
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    for host in [
        format!("rebind.evil.test:{port}"),
        "evil.test".into(),
        format!("10.1.2.3:{port}"),
    ] {
        let response = server
            .client()
            .post(server.url("/graphql"))
            .header("host", &host)
            .json(&json!({ "query": INSERT }))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 421, "{host}");
        let metrics = server
            .client()
            .get(server.url("/metrics"))
            .header("host", &host)
            .send()
            .await
            .expect("GET");
        assert_eq!(metrics.status().as_u16(), 421, "{host}");
    }
    assert_eq!(users(db).await, 0);
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let response = server
            .client()
            .post(server.url("/graphql"))
            .header("host", &host)
            .json(&json!({ "query": "{ users { id } }" }))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 200, "{host}");
    }
    let health = server
        .client()
        .get(server.url("/health"))
        .header("host", "10.1.2.3:8000")
        .send()
        .await
        .expect("GET");
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(
        server
            .metric("roster_requests_refused_total{reason=\"bad_host\"}")
            .await,
        Some(6)
    );

    // An explicit list replaces the default.
    let state = AppState::new(db.conn().clone())
        .with_allowed_hosts(HostPolicy::list(&["roster.example.org"]).expect("hosts"));
    let server = Server::start(state).await;
    let status = |host: &'static str| {
        let request = server
            .client()
            .post(server.url("/graphql"))
            .header("host", host)
            .json(&json!({ "query": "{ users { id } }" }));
        async move { request.send().await.expect("POST").status().as_u16() }
    };
    assert_eq!(status("roster.example.org").await, 200);
    assert_eq!(status("localhost").await, 421);
}

/// Security headers on every answer; the GraphiQL page allows scripts from
/// its own origin only and cannot be framed.
async fn every_answer_has_security_headers(db: &TestDb) {
    let server = start(db).await;
    let get = |path: &'static str| server.client().get(server.url(path)).send();
    let answers = [
        get("/health").await.expect("GET"),
        get("/metrics").await.expect("GET"),
        get("/nowhere").await.expect("GET"),
        get("/graphql").await.expect("GET"),
        server
            .client()
            .post(server.url("/graphql"))
            .json(&json!({ "query": "{ users { id } }" }))
            .send()
            .await
            .expect("POST"),
        server
            .client()
            .post(server.url("/graphql"))
            .body("x")
            .send()
            .await
            .expect("POST"),
    ];
    for answer in &answers {
        let headers = answer.headers();
        assert_eq!(
            headers["x-content-type-options"],
            "nosniff",
            "{}",
            answer.url()
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{}", answer.url());
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
    let page_csp = answers[3].headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(page_csp.contains("script-src 'self'"), "{page_csp}");
    assert!(!page_csp.contains("unsafe-eval"), "{page_csp}");
    assert_eq!(
        answers[4].headers()["cache-control"],
        "no-store",
        "answers may hold personal data"
    );
}

/// GraphQL over GET is not executed: GET /graphql is the GraphiQL page (or
/// 405 with GraphiQL off), whatever its query string.
async fn no_graphql_over_get(db: &TestDb) {
    let mutation = format!("/graphql?query={}", INSERT.replace(' ', "%20"));
    for graphiql in [true, false] {
        let state = AppState::new(db.conn().clone()).with_graphiql(graphiql);
        let server = Server::start(state).await;
        let response = server
            .client()
            .get(server.url(&mutation))
            .send()
            .await
            .expect("GET");
        let expected = if graphiql { 200 } else { 405 };
        assert_eq!(response.status().as_u16(), expected);
        let asset = server
            .client()
            .get(server.url(&format!(
                "/graphiql/graphiql-{}.min.js",
                roster::server::GRAPHIQL_VERSION
            )))
            .send()
            .await
            .expect("GET");
        assert_eq!(asset.status().is_success(), graphiql);
    }
    assert_eq!(users(db).await, 0);
}

/// `Accept: application/graphql-response+json` gets that media type, and a
/// request that does not parse gets 400 with it; plain JSON clients keep
/// `application/json` and 200.
async fn graphql_response_json_when_asked(db: &TestDb) {
    let server = start(db).await;
    let post = |accept: &'static str, query: &'static str| {
        server
            .client()
            .post(server.url("/graphql"))
            .header("accept", accept)
            .json(&json!({ "query": query }))
            .send()
    };
    let graphql_type = "application/graphql-response+json";
    let ok = post(
        "application/graphql-response+json, application/json;q=0.9",
        "{ users { id } }",
    )
    .await
    .expect("POST");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["content-type"], graphql_type);
    let bad = post(graphql_type, "{ users { id ").await.expect("POST");
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(bad.headers()["content-type"], graphql_type);
    let legacy = post("application/json", "{ users { id ")
        .await
        .expect("POST");
    assert_eq!(legacy.status().as_u16(), 200);
    assert_eq!(legacy.headers()["content-type"], "application/json");
    let answer: Value = legacy.json().await.expect("JSON");
    assert_eq!(error_code(&answer), "BAD_USER_INPUT");
}

backend_tests!(
    migrated: only_json_bodies_are_executed,
    a_foreign_origin_cannot_write,
    cors_preflights_follow_the_allowlist,
    the_host_header_is_checked,
    every_answer_has_security_headers,
    no_graphql_over_get,
    graphql_response_json_when_asked,
);
