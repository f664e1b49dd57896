//! Global object identification over real HTTP: `globalId` names its type,
//! `node` and `nodes` round-trip it for every type, batched.

use roster::server::{AppState, seed};
use roster_testkit::{TestDb, backend_tests};
use serde_json::json;

use super::{Server, error_code};

async fn node_round_trips_every_type_in_one_statement_per_type(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    let (conn, log) = db.logged_conn().await;
    let server = Server::start(AppState::new(conn)).await;
    let rows = server
        .data(
            "{ users(limit: 3) { id globalId name } groups(limit: 3) { id globalId name } \
             groupTypes(limit: 3) { id globalId name } }",
            json!({}),
        )
        .await;
    let mut ids = Vec::new();
    for (list, type_name) in [
        ("users", "User"),
        ("groups", "Group"),
        ("groupTypes", "GroupType"),
    ] {
        for row in rows[list].as_array().expect("rows") {
            let global = row["globalId"].as_str().expect("globalId").to_owned();
            let node = server
                .data(
                    "query($id: ID!) { node(id: $id) { __typename globalId \
                     ... on User { id name } ... on Group { id name } ... on GroupType { id name } } }",
                    json!({ "id": global }),
                )
                .await;
            assert_eq!(node["node"]["__typename"], type_name);
            assert_eq!(node["node"]["id"], row["id"]);
            assert_eq!(node["node"]["name"], row["name"]);
            assert_eq!(node["node"]["globalId"], row["globalId"]);
            ids.push(global);
        }
    }
    // All nine at once, with one that names no row: one statement per type.
    let missing = "VXNlcjo5OTk5OTk5OTk5"; // User:9999999999
    ids.insert(4, missing.to_owned());
    log.clear();
    let nodes = server
        .data(
            "query($ids: [ID!]!) { nodes(ids: $ids) { globalId } }",
            json!({ "ids": ids }),
        )
        .await;
    assert_eq!(log.selects(), 3, "{:#?}", log.all());
    let shown: Vec<Option<String>> = nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["globalId"].as_str().map(str::to_owned))
        .collect();
    let expected: Vec<Option<String>> = ids
        .iter()
        .map(|id| (id != missing).then(|| id.clone()))
        .collect();
    assert_eq!(shown, expected);
}

async fn ids_that_are_no_global_ids_are_bad_input(db: &TestDb) {
    let (conn, log) = db.logged_conn().await;
    let server = Server::start(AppState::new(conn)).await;
    for id in [
        "42",
        "not base64!",
        "Rm9vOjE=",
        "VXNlcjp4",
        &"QUFB".repeat(50),
    ] {
        log.clear();
        let answer = server
            .run(
                "query($id: ID!) { node(id: $id) { globalId } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{id}: {answer:#}");
        assert_eq!(log.len(), 0, "{id}");
    }
}

backend_tests!(migrated:
    node_round_trips_every_type_in_one_statement_per_type,
    ids_that_are_no_global_ids_are_bad_input,
);
