//! Lookups by the keys other systems use (`userByExternalId`, `userByEmail`,
//! `groupByExternalId`, `usersByExternalIds`, `usersByEmails`) over HTTP:
//! answers in input order with nulls, text matched byte for byte, one
//! statement per key kind however many lookups a request makes, and bad
//! keys refused before any SQL.

use roster::graphql::{MAX_EMAIL_BYTES, MAX_LIMIT, MAX_TEXT_BYTES};
use roster::server::AppState;
use roster_testkit::{StatementLog, TestDb, backend_tests};
use serde_json::{Value, json};

use super::{Server, error_code};
use crate::fixtures::{group_with, user_with};

/// The rows every test here looks up.
struct Rows {
    /// `ada@example.org`, externalId 1001.
    ada: i64,
    /// `ADA@example.org`, externalId 1002.
    ada_upper: i64,
    /// `bob@example.org ` (a trailing space), no externalId.
    bob: i64,
    /// Group `G-1`.
    g1: i64,
    /// Group `g-1`.
    g1_lower: i64,
    /// Group `G-1 ` (a trailing space).
    g1_space: i64,
}

async fn insert_rows(db: &TestDb) -> Rows {
    let conn = db.conn();
    let ada = user_with(conn, Some("Ada"), None, Some("ada@example.org"), Some(1001)).await;
    let ada_upper = user_with(conn, Some("ADA"), None, Some("ADA@example.org"), Some(1002)).await;
    let bob = user_with(conn, Some("Bob"), None, Some("bob@example.org "), None).await;
    // The same externalId and e-mail address again: the lowest id wins.
    user_with(
        conn,
        Some("Ada 2"),
        None,
        Some("ada@example.org"),
        Some(1001),
    )
    .await;
    let g1 = group_with(conn, Some("core"), None, Some("G-1"), None).await;
    let g1_lower = group_with(conn, Some("Core"), None, Some("g-1"), None).await;
    let g1_space = group_with(conn, Some("core "), None, Some("G-1 "), None).await;
    Rows {
        ada: ada.id,
        ada_upper: ada_upper.id,
        bob: bob.id,
        g1: g1.id,
        g1_lower: g1_lower.id,
        g1_space: g1_space.id,
    }
}

/// A server over a logged pool to `db`, and the log (cleared).
async fn logged_server(db: &TestDb) -> (Server, StatementLog) {
    let (conn, log) = db.logged_conn().await;
    let server = Server::start(AppState::new(conn)).await;
    log.clear();
    (server, log)
}

fn id(id: i64) -> Value {
    json!({ "id": id.to_string() })
}

const LOOKUPS: &str = r#"query($externalIds: [ID!]!, $emails: [String!]!) {
  ada: userByExternalId(externalId: "1001") { id }
  missing: userByExternalId(externalId: "999") { id }
  byExternalIds: usersByExternalIds(externalIds: $externalIds) { id }
  exact: userByEmail(email: "ada@example.org") { id }
  otherCase: userByEmail(email: "Ada@example.org") { id }
  withoutTheSpace: userByEmail(email: "bob@example.org") { id }
  byEmails: usersByEmails(emails: $emails) { id }
  g1: groupByExternalId(externalId: "G-1") { id }
  g1Lower: groupByExternalId(externalId: "g-1") { id }
  g1Space: groupByExternalId(externalId: "G-1 ") { id }
  noGroup: groupByExternalId(externalId: "G-2") { id }
}"#;

async fn lookups_answer_in_order_byte_for_byte_with_one_statement_per_key_kind(db: &TestDb) {
    let rows = insert_rows(db).await;
    let (server, log) = logged_server(db).await;
    let data = server
        .data(
            LOOKUPS,
            json!({
                "externalIds": ["1002", "999", "1001", "1002"],
                "emails": ["ADA@example.org", "nobody@example.org", "bob@example.org ", "ada@example.org"],
            }),
        )
        .await;
    assert_eq!(
        data,
        json!({
            "ada": id(rows.ada),
            "missing": null,
            "byExternalIds": [id(rows.ada_upper), null, id(rows.ada), id(rows.ada_upper)],
            "exact": id(rows.ada),
            "otherCase": null,
            "withoutTheSpace": null,
            "byEmails": [id(rows.ada_upper), null, id(rows.bob), id(rows.ada)],
            "g1": id(rows.g1),
            "g1Lower": id(rows.g1_lower),
            "g1Space": id(rows.g1_space),
            "noGroup": null,
        })
    );
    // Eleven lookups of three key kinds: three statements.
    let statements = log.all();
    assert_eq!(statements.len(), 3, "{statements:#?}");
    let wheres: Vec<String> = statements
        .iter()
        .map(|sql| {
            let (_, condition) = sql.split_once("WHERE").expect("a WHERE clause");
            condition.to_owned()
        })
        .collect();
    let on = |table: &str, column: &str| {
        statements
            .iter()
            .zip(&wheres)
            .filter(|(sql, condition)| {
                sql.contains(&format!("FROM {table}")) && condition.contains(column)
            })
            .count()
    };
    assert_eq!(
        on("\"users\"", "externalId") + on("`users`", "externalId"),
        1
    );
    assert_eq!(on("\"users\"", "email") + on("`users`", "email"), 1);
    assert_eq!(
        on("\"groups\"", "externalId") + on("`groups`", "externalId"),
        1
    );
    server.stop().await;
}

/// A row found by a key primes the by-id loader: in a batch (one set of
/// loaders), reading it by id afterwards costs no statement.
async fn a_row_found_by_key_is_then_read_by_id_without_a_statement(db: &TestDb) {
    let rows = insert_rows(db).await;
    let (server, log) = logged_server(db).await;
    let (status, answers) = server
        .post(&json!([
            { "query": r#"{ userByEmail(email: "ada@example.org") { id name } }"# },
            { "query": "query($id: ID!) { user(id: $id) { id name } }", "variables": { "id": rows.ada.to_string() } },
        ]))
        .await;
    assert_eq!(status, 200, "{answers:#}");
    let ada = json!({ "id": rows.ada.to_string(), "name": "Ada" });
    assert_eq!(answers[0]["data"]["userByEmail"], ada, "{answers:#}");
    assert_eq!(answers[1]["data"]["user"], ada, "{answers:#}");
    assert_eq!(log.len(), 1, "{:#?}", log.all());
    server.stop().await;
}

async fn bad_keys_are_bad_user_input_without_a_statement(db: &TestDb) {
    insert_rows(db).await;
    let (server, log) = logged_server(db).await;
    let too_many: Vec<String> = (0..=MAX_LIMIT).map(|i| i.to_string()).collect();
    let long_email = format!("{}@example.org", "a".repeat(MAX_EMAIL_BYTES));
    let long_key = "k".repeat(MAX_TEXT_BYTES + 1);
    let cases = [
        (
            "query($k: [ID!]!) { usersByExternalIds(externalIds: $k) { id } }",
            json!({ "k": too_many }),
        ),
        (
            "query($k: [String!]!) { usersByEmails(emails: $k) { id } }",
            json!({ "k": vec!["a@example.org"; MAX_LIMIT as usize + 1] }),
        ),
        (
            "query($k: ID!) { userByExternalId(externalId: $k) { id } }",
            json!({ "k": "12x" }),
        ),
        (
            "query($k: [ID!]!) { usersByExternalIds(externalIds: $k) { id } }",
            json!({ "k": ["1", "99999999999999999999"] }),
        ),
        (
            "query($k: String!) { userByEmail(email: $k) { id } }",
            json!({ "k": long_email }),
        ),
        (
            "query($k: [String!]!) { usersByEmails(emails: $k) { id } }",
            json!({ "k": ["ada@example.org", "a\u{0}b"] }),
        ),
        (
            "query($k: String!) { groupByExternalId(externalId: $k) { id } }",
            json!({ "k": long_key }),
        ),
    ];
    for (query, variables) in cases {
        let answer = server.run(query, variables).await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{query}: {answer:#}");
    }
    assert!(log.is_empty(), "{:#?}", log.all());

    // At the bounds: asked, and not found.
    let longest = format!("{}@example.org", "a".repeat(MAX_EMAIL_BYTES - 12));
    assert_eq!(longest.len(), MAX_EMAIL_BYTES);
    let data = server
        .data(
            "query($e: String!, $g: String!) { userByEmail(email: $e) { id } groupByExternalId(externalId: $g) { id } }",
            json!({ "e": longest, "g": "k".repeat(MAX_TEXT_BYTES) }),
        )
        .await;
    assert_eq!(
        data,
        json!({ "userByEmail": null, "groupByExternalId": null })
    );
    assert_eq!(log.len(), 2, "{:#?}", log.all());
    let empty = server
        .data("{ usersByEmails(emails: []) { id } }", json!({}))
        .await;
    assert_eq!(empty, json!({ "usersByEmails": [] }));
    assert_eq!(log.len(), 2, "an empty list asks nothing");
    server.stop().await;
}

backend_tests!(
    migrated: lookups_answer_in_order_byte_for_byte_with_one_statement_per_key_kind,
    a_row_found_by_key_is_then_read_by_id_without_a_statement,
    bad_keys_are_bad_user_input_without_a_statement,
);
