//! Bad input and abusive requests: the documented error, and the server
//! keeps serving.

use roster_testkit::{TestDb, backend_tests};
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::{Server, error_code, start};

/// A query that must work after each bad one.
async fn still_serving(server: &Server) {
    let data = server.data("{ users(limit: 1) { id } }", json!({})).await;
    assert!(data["users"].is_array());
}

async fn a_bad_id_is_bad_user_input(db: &TestDb) {
    let server = start(db).await;
    let answer = server.run(r#"{ user(id: "abc") { id } }"#, json!({})).await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer:#}");
    // `user` is nullable: the field is null and the error keeps its code.
    assert!(answer["data"]["user"].is_null(), "{answer:#}");
    assert_eq!(answer["errors"][0]["path"], json!(["user"]));
    still_serving(&server).await;
}

async fn a_limit_out_of_range_is_bad_user_input(db: &TestDb) {
    let server = start(db).await;
    for query in [
        "{ users(limit: 100000) { id } }",
        "{ groups(limit: 0) { id } }",
        "{ groupTypes(skip: -1) { id } }",
    ] {
        let answer = server.run(query, json!({})).await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{query}: {answer:#}");
    }
    still_serving(&server).await;
}

async fn a_bad_datetime_is_bad_user_input(db: &TestDb) {
    let server = start(db).await;
    let literal = server
        .run(
            r#"mutation { userDelete(id: "1", lastchange: "yesterday") }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&literal), "BAD_USER_INPUT", "{literal:#}");
    let variable = server
        .run(
            "mutation($at: DateTime) { userDelete(id: \"1\", lastchange: $at) }",
            json!({ "at": "2026-13-45T99:00:00Z" }),
        )
        .await;
    assert_eq!(error_code(&variable), "BAD_USER_INPUT", "{variable:#}");
    still_serving(&server).await;
}

/// `{ users(limit: 1) { groups(limit: 1) { users(limit: 1) { … { id } } } } }`,
/// `levels` fields deep (one row per level: cheap, only deep).
fn nested(levels: usize) -> String {
    let mut query = String::from("id");
    for level in (1..levels).rev() {
        let field = match level {
            l if l % 2 == 0 => "groups(limit: 1)",
            _ => "users(limit: 1)",
        };
        query = format!("{field} {{ {query} }}");
    }
    format!("{{ {query} }}")
}

async fn a_query_nested_fifty_levels_is_refused(db: &TestDb) {
    let server = start(db).await;
    let answer = server.run(&nested(50), json!({})).await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer:#}");
    assert!(answer["data"].is_null(), "{answer:#}");
    // Twelve levels is the limit: thirteen is refused, twelve runs.
    let too_deep = server.run(&nested(13), json!({})).await;
    assert_eq!(error_code(&too_deep), "BAD_USER_INPUT", "{too_deep:#}");
    server.data(&nested(12), json!({})).await;
    still_serving(&server).await;
}

/// A 10 MB body is refused with 413 from its `Content-Length`, before it is
/// read. Sent over a raw socket: the server answers and closes while the
/// body is still being written, and an HTTP client that insists on writing
/// the whole body first (reqwest/hyper) reports the broken pipe instead of
/// the answer it already received.
async fn a_ten_megabyte_body_gets_413(db: &TestDb) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = start(db).await;
    let body_len = 10 * 1024 * 1024;
    let address = server.url("").trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
        );
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..body_len / chunk.len() {
            writer.write_all(&chunk).await?;
        }
        writer.flush().await
    });
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    // Until the server closes (or resets) the connection.
    while let Ok(n @ 1..) = reader.read(&mut buffer).await {
        answer.extend_from_slice(&buffer[..n]);
    }
    let _ = sender.await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    still_serving(&server).await;
}

async fn a_body_that_is_not_graphql_is_400(db: &TestDb) {
    let server = start(db).await;
    let response = server
        .client()
        .post(server.url("/graphql"))
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 400);
    let answer: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(error_code(&answer), "BAD_USER_INPUT");
    still_serving(&server).await;
}

async fn a_too_complex_query_is_refused(db: &TestDb) {
    let server = start(db).await;
    // 60 pages of 1000 users: complexity 60 000, over the limit of 50 000.
    let fields: Vec<String> = (0..60)
        .map(|i| format!("a{i}: users(limit: 1000) {{ id }}"))
        .collect();
    let answer = server
        .run(&format!("{{ {} }}", fields.join(" ")), json!({}))
        .await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer:#}");
    assert!(answer["data"].is_null(), "{answer:#}");
    still_serving(&server).await;
}

/// Text a backend cannot store (a NUL byte, on PostgreSQL) is bad input,
/// never an internal error.
async fn a_nul_byte_is_bad_input_where_it_cannot_be_stored(db: &TestDb) {
    let server = start(db).await;
    let answer = server
        .run(
            "mutation($u: UserInsert!) { userInsert(user: $u) { name } }",
            json!({ "u": { "name": "nul\u{0}byte" } }),
        )
        .await;
    match db.backend() {
        roster_testkit::Backend::Postgres => {
            assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer:#}")
        }
        _ => assert!(answer.get("errors").is_none(), "{answer:#}"),
    }
    still_serving(&server).await;
}

/// A database failure is `INTERNAL` with no SQL or internals in the answer.
async fn a_database_failure_is_internal_and_leaks_nothing(db: &TestDb) {
    let server = start(db).await;
    server
        .data(
            r#"mutation { userInsert(user: { name: "Ada" }) { id } }"#,
            json!({}),
        )
        .await;
    db.conn()
        .execute_unprepared("DROP TABLE users_groups")
        .await
        .expect("drop the memberships table");
    let answer = server
        .run("{ users(limit: 5) { name groups { name } } }", json!({}))
        .await;
    assert_eq!(error_code(&answer), "INTERNAL", "{answer:#}");
    assert_eq!(answer["errors"][0]["message"], "internal error");
    let text = answer.to_string().to_lowercase();
    for leak in ["select", "users_groups", "sqlx", "table"] {
        assert!(!text.contains(leak), "{leak} leaked: {answer:#}");
    }
    still_serving(&server).await;
}

backend_tests!(
    migrated: a_bad_id_is_bad_user_input,
    a_limit_out_of_range_is_bad_user_input,
    a_bad_datetime_is_bad_user_input,
    a_query_nested_fifty_levels_is_refused,
    a_ten_megabyte_body_gets_413,
    a_body_that_is_not_graphql_is_400,
    a_database_failure_is_internal_and_leaks_nothing,
    a_too_complex_query_is_refused,
    a_nul_byte_is_bad_input_where_it_cannot_be_stored,
);
