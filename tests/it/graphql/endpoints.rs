//! The other routes: GraphiQL, `/health`, `/metrics`; and the server as
//! `prepare` builds it (migrated, seeded, statements counted).

use roster::server::{AppState, Config, prepare};
use roster_testkit::{TestDb, backend_tests};
use serde_json::json;

use super::{Server, start};

async fn graphiql_is_served_at_get_graphql(db: &TestDb) {
    let server = start(db).await;
    let response = server
        .client()
        .get(server.url("/graphql"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("text");
    assert!(html.to_lowercase().contains("graphiql"), "{html}");
    assert!(html.contains("/graphql"));
}

async fn health_checks_the_database(db: &TestDb) {
    let server = start(db).await;
    let response = server
        .client()
        .get(server.url("/health"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    server.stop().await;

    // A closed pool: 503.
    let (conn, _log) = db.logged_conn().await;
    let server = Server::start(AppState::new(conn.clone())).await;
    conn.close().await.expect("close the pool");
    let response = server
        .client()
        .get(server.url("/health"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 503);
}

/// The introspection query GraphiQL sends (graphql-js 16) passes the limits.
async fn graphiql_introspection_passes_the_limits(db: &TestDb) {
    let server = start(db).await;
    let data = server.data(INTROSPECTION, json!({})).await;
    let types = data["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|t| t["name"] == "DateTime"));
}

async fn prepared_server_seeds_and_exports_metrics(db: &TestDb) {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        ..Config::new(db.url())
    };
    let state = prepare(&config).await.expect("prepare");
    let metrics = state.metrics().clone();
    let server = Server::start(state).await;
    let data = server
        .data(
            "{ groups(limit: 60) { users { name } } groupTypes { name } }",
            json!({}),
        )
        .await;
    assert_eq!(data["groups"].as_array().map(Vec::len), Some(60));
    assert_eq!(data["groupTypes"].as_array().map(Vec::len), Some(5));
    let members: usize = data["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| g["users"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(members, 900);
    assert!(metrics.sql_statements() >= 3);

    let response = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("text");
    for line in [
        "roster_http_requests_total{method=\"POST\",path=\"/graphql\",status=\"200\"} 1",
        "roster_loader_batches_total 1",
        "roster_loader_statements_total 1",
        "roster_loader_batch_size_bucket{le=\"64.0\"} 1",
        "roster_loader_batch_size_count 1",
        "roster_loader_batch_size_sum 60.0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    let sql = text
        .lines()
        .find_map(|l| l.strip_prefix("roster_sql_statements_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("roster_sql_statements_total");
    assert!(sql >= 3, "{text}");
}

backend_tests!(
    migrated: graphiql_is_served_at_get_graphql,
    health_checks_the_database,
    graphiql_introspection_passes_the_limits,
    prepared_server_seeds_and_exports_metrics,
);

const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description
  type { ...TypeRef }
  defaultValue
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;
