//! The request id in every log line of its request, through the subscriber
//! `roster-server` installs (`TelemetryConfig::build`), as text and as JSON.

use roster::server::telemetry::TelemetryConfig;
use roster_testkit::{TestDb, backend_tests};
use serde_json::{Value, json};

use super::{Capture, Logs, post_with_id};
use crate::graphql::start;

/// A query over the cost bound: the schema refuses it and logs why.
const TOO_COSTLY: &str = "{ users(limit: 1) { groups { users { groups { users { groups { users { groups { users { groups { users { id } } } } } } } } } } } }";

/// The three requests each test makes, by id: answered, refused by the
/// server (415), refused by the schema (cost).
const IDS: [&str; 3] = ["req-answered", "req-refused", "req-costly"];

/// Runs [`IDS`]' requests against a server over `db` with the subscriber
/// `vars` describe (its `RUST_LOG` also showing tower-http's start and end
/// lines); every line it logged.
async fn logged(db: &TestDb, vars: &[(&str, &str)]) -> Vec<String> {
    let logs = Logs::default();
    let config = TelemetryConfig::from_lookup(|name| {
        vars.iter()
            .chain(&[("RUST_LOG", "info,tower_http=debug")])
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("valid settings");
    let writer = logs.clone();
    let (dispatch, _telemetry) = config.build(move || writer.clone()).expect("a subscriber");
    let _capture = Capture::install(&dispatch);

    let server = start(db).await;
    let answered = post_with_id(
        &server,
        Some(IDS[0]),
        &json!({ "query": "query Answered { users(limit: 1) { id } }" }),
    )
    .await;
    assert_eq!(answered, (200, IDS[0].to_owned()));
    let refused = server
        .client()
        .post(server.url("/graphql"))
        .header("x-request-id", IDS[1])
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status().as_u16(), 415);
    let costly = post_with_id(&server, Some(IDS[2]), &json!({ "query": TOO_COSTLY })).await;
    assert_eq!(costly, (200, IDS[2].to_owned()));
    // Every connection finished: every request's span closed.
    server.stop().await;
    logs.lines()
}

/// The id of the one request among [`IDS`] that `line` names; fails if it
/// names none or several.
fn request_of(line: &str) -> &'static str {
    let named: Vec<&str> = IDS.into_iter().filter(|id| line.contains(id)).collect();
    assert_eq!(named.len(), 1, "a line of exactly one request: {line}");
    named[0]
}

async fn every_text_line_names_its_request(db: &TestDb) {
    let lines = logged(db, &[]).await;
    assert!(!lines.is_empty());
    for line in &lines {
        let id = request_of(line);
        assert!(
            line.contains(&format!("http.request{{request_id=\"{id}\"")),
            "the id is a field of the request's span: {line}"
        );
    }
    let of = |id: &str| -> Vec<&String> { lines.iter().filter(|l| l.contains(id)).collect() };
    for id in IDS {
        let lines = of(id);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("started processing request"))
                && lines
                    .iter()
                    .any(|l| l.contains("finished processing request")),
            "{id}: {lines:#?}"
        );
    }
    assert!(
        of(IDS[1])
            .iter()
            .any(|l| l.contains("WARN") && l.contains("reason=\"unsupported_media_type\"")),
        "{:#?}",
        of(IDS[1])
    );
    // The schema's own refusal, inside the operation's span.
    assert!(
        of(IDS[2])
            .iter()
            .any(|l| l.contains("refused a GraphQL request")
                && l.contains("reason=\"cost\"")
                && l.contains("graphql.operation")),
        "{:#?}",
        of(IDS[2])
    );
    // The answer's line has the status and the latency.
    assert!(
        of(IDS[0])
            .iter()
            .any(|l| l.contains("finished processing request")
                && l.contains("status=200")
                && l.contains("latency=")),
        "{:#?}",
        of(IDS[0])
    );
    // Never the query text.
    assert!(
        !lines.iter().any(|l| l.contains("users(limit")),
        "{lines:#?}"
    );
}

async fn every_json_line_parses_and_names_its_request(db: &TestDb) {
    let lines = logged(db, &[("ROSTER_LOG_FORMAT", "json")]).await;
    assert!(!lines.is_empty());
    let mut warned = false;
    for line in &lines {
        let id = request_of(line);
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(entry[field].is_string(), "{field}: {line}");
        }
        let spans = entry["spans"].as_array().expect("the spans it is in");
        assert_eq!(spans[0]["name"], "http.request", "{line}");
        assert_eq!(spans[0]["request_id"], id, "{line}");
        assert_eq!(spans[0]["http.request.method"], "POST", "{line}");
        assert_eq!(spans[0]["http.route"], "/graphql", "{line}");
        if id == IDS[1] && entry["level"] == "WARN" {
            assert_eq!(entry["reason"], "unsupported_media_type", "{line}");
            warned = true;
        }
    }
    assert!(warned, "the refusal was logged: {lines:#?}");
}

backend_tests!(current_thread migrated: every_text_line_names_its_request);
backend_tests!(current_thread migrated: every_json_line_parses_and_names_its_request);
