//! The request id: the client's when usable, a new UUID v4 when absent or
//! hostile, always in the answer, refusals included.

use reqwest::header::HeaderValue;
use roster::server::{MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER};
use roster_testkit::{TestDb, backend_tests};
use serde_json::json;

use super::{is_uuid_v4, post_with_id};
use crate::graphql::start;

const QUERY: &str = "{ users(limit: 1) { id } }";

/// A usable id comes back as it was sent; none sent, one is made.
async fn a_sane_id_is_echoed_and_a_missing_one_made(db: &TestDb) {
    let server = start(db).await;
    let body = json!({ "query": QUERY });
    let longest = "x".repeat(MAX_REQUEST_ID_LEN);
    for id in [
        "client-id-1",
        "01HZX3K5W7:span/7~a.b_c",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        longest.as_str(),
    ] {
        let (status, echoed) = post_with_id(&server, Some(id), &body).await;
        assert_eq!(status, 200);
        assert_eq!(echoed, id);
    }
    let (first, second) = (
        post_with_id(&server, None, &body).await.1,
        post_with_id(&server, None, &body).await.1,
    );
    assert!(is_uuid_v4(&first), "{first}");
    assert!(is_uuid_v4(&second), "{second}");
    assert_ne!(first, second, "each request gets its own id");
}

/// Overlong ids, spaces, control characters, bytes beyond ASCII and an id
/// sent twice are replaced, never echoed.
async fn a_hostile_id_is_replaced(db: &TestDb) {
    let server = start(db).await;
    let body = json!({ "query": QUERY });
    let overlong = "x".repeat(MAX_REQUEST_ID_LEN + 1);
    let hostile: [(&str, &[u8]); 5] = [
        ("overlong", overlong.as_bytes()),
        ("a space", b"id with spaces"),
        ("a tab", b"id\twith\ttabs"),
        ("beyond ASCII", "caf\u{e9}-\u{1F600}".as_bytes()),
        ("a quote and a tab", b"\"}\t{\"x\":1"),
    ];
    for (case, bytes) in hostile {
        let value = HeaderValue::from_bytes(bytes).expect("a value HTTP/1.1 carries");
        let response = server
            .client()
            .post(server.url("/graphql"))
            .header(REQUEST_ID_HEADER, value)
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 200, "{case}");
        let echoed = response.headers()[REQUEST_ID_HEADER]
            .to_str()
            .expect("visible ASCII");
        assert!(is_uuid_v4(echoed), "{case}: {echoed}");
    }
    let response = server
        .client()
        .post(server.url("/graphql"))
        .header(REQUEST_ID_HEADER, "first")
        .header(REQUEST_ID_HEADER, "second")
        .json(&body)
        .send()
        .await
        .expect("POST");
    let ids: Vec<_> = response
        .headers()
        .get_all(REQUEST_ID_HEADER)
        .iter()
        .collect();
    assert_eq!(ids.len(), 1, "one id in the answer: {ids:?}");
    assert!(
        is_uuid_v4(ids[0].to_str().expect("ascii")),
        "an id sent twice is replaced: {ids:?}"
    );
}

/// Refusals and unknown routes carry the id too.
async fn refusals_carry_the_id(db: &TestDb) {
    let server = start(db).await;
    let refused = server
        .client()
        .post(server.url("/graphql"))
        .header(REQUEST_ID_HEADER, "refused-1")
        .header("content-type", "text/plain")
        .body(json!({ "query": QUERY }).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status().as_u16(), 415);
    assert_eq!(refused.headers()[REQUEST_ID_HEADER], "refused-1");
    let missing = server
        .client()
        .get(server.url("/nothing/here"))
        .header(REQUEST_ID_HEADER, "missing-1")
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(missing.headers()[REQUEST_ID_HEADER], "missing-1");
    let health = server
        .client()
        .get(server.url("/health"))
        .send()
        .await
        .expect("GET /health");
    let id = health.headers()[REQUEST_ID_HEADER].to_str().expect("ascii");
    assert!(is_uuid_v4(id), "{id}");
}

backend_tests!(
    migrated: a_sane_id_is_echoed_and_a_missing_one_made,
    a_hostile_id_is_replaced,
    refusals_carry_the_id,
);
