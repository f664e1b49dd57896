//! `ROSTER_AUTH=jwt`: 401 for no, malformed or expired tokens (with
//! `WWW-Authenticate: Bearer`), `FORBIDDEN` and nothing written for a
//! missing scope, with real tokens signed HS256, RS256 and ES256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use roster::server::{AppState, Auth, AuthSettings, JwtKey};
use roster_testkit::{TestDb, backend_tests};
use serde_json::{Value, json};

use super::{INSERT, users};
use crate::graphql::{Server, error_code};

const SECRET: &str = "roster-test-secret-of-at-least-32-bytes!";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

/// Claims for `sub` with `scope`, expiring in `ttl` seconds (negative: past).
fn claims(scope: &str, ttl: i64) -> Value {
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).expect("time");
    json!({ "sub": "alice", "scope": scope, "exp": now + ttl, "iat": now,
            "iss": "https://issuer.test", "aud": "roster" })
}

fn sign(algorithm: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).expect("sign")
}

fn pem(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).expect("test key")
}

/// A key kind: the server's settings and a signer of tokens it accepts.
struct Kind {
    settings: AuthSettings,
    algorithm: Algorithm,
    key: EncodingKey,
}

fn hs256() -> Kind {
    Kind {
        settings: AuthSettings::Jwt {
            key: JwtKey::Secret(SECRET.into()),
            issuer: Some("https://issuer.test".into()),
            audience: Some("roster".into()),
        },
        algorithm: Algorithm::HS256,
        key: EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
    }
}

fn public_key(name: &str, algorithm: Algorithm, key: EncodingKey) -> Kind {
    Kind {
        settings: AuthSettings::Jwt {
            key: JwtKey::PublicKeyPem {
                path: format!("{KEYS}/{name}"),
                pem: pem(name),
            },
            issuer: Some("https://issuer.test".into()),
            audience: Some("roster".into()),
        },
        algorithm,
        key,
    }
}

fn rs256() -> Kind {
    let key = EncodingKey::from_rsa_pem(pem("rs256-private.pem").as_bytes()).expect("RSA key");
    public_key("rs256-public.pem", Algorithm::RS256, key)
}

fn es256() -> Kind {
    let key = EncodingKey::from_ec_pem(pem("es256-private.pem").as_bytes()).expect("EC key");
    public_key("es256-public.pem", Algorithm::ES256, key)
}

async fn start(db: &TestDb, kind: &Kind) -> Server {
    let auth = Auth::new(&kind.settings).expect("auth settings");
    Server::start(AppState::new(db.conn().clone()).with_auth(auth)).await
}

/// POSTs `query` with `authorization` (if any): status, headers, answer.
async fn post(
    server: &Server,
    authorization: Option<&str>,
    query: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .client()
        .post(server.url("/graphql"))
        .json(&json!({ "query": query }));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("POST /graphql");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.expect("JSON"))
}

/// Every way to be unauthenticated gets 401 + `WWW-Authenticate: Bearer`
/// + `UNAUTHENTICATED`, and writes nothing.
async fn refuses_missing_malformed_and_expired_tokens(kind: Kind, db: &TestDb) {
    let server = start(db, &kind).await;
    let before = users(db).await;
    let other = EncodingKey::from_secret(b"some-other-secret-nobody-configured!!").expect("key");
    let mut wrong_issuer = claims("roster:write", 600);
    wrong_issuer["iss"] = "https://evil.test".into();
    let mut wrong_audience = claims("roster:write", 600);
    wrong_audience["aud"] = "another-api".into();
    let expired = sign(kind.algorithm, &kind.key, &claims("roster:write", -3600));
    let cases = [
        ("no token", None),
        ("basic auth", Some("Basic YWxpY2U6c2VjcmV0".to_owned())),
        ("garbage", Some("Bearer not-a-jwt".to_owned())),
        ("expired", Some(format!("Bearer {expired}"))),
        (
            "wrong key",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, &other, &claims("roster:write", 600))
            )),
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                sign(kind.algorithm, &kind.key, &wrong_issuer)
            )),
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                sign(kind.algorithm, &kind.key, &wrong_audience)
            )),
        ),
    ];
    for (case, authorization) in &cases {
        let (status, headers, answer) = post(&server, authorization.as_deref(), INSERT).await;
        assert_eq!(status, 401, "{case}: {answer}");
        let challenge = headers["www-authenticate"].to_str().expect("ascii");
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
        assert_eq!(error_code(&answer), "UNAUTHENTICATED", "{case}");
    }
    assert_eq!(users(db).await, before, "nothing written");
    assert_eq!(
        server
            .metric("roster_requests_refused_total{reason=\"unauthenticated\"}")
            .await,
        Some(cases.len() as u64)
    );
}

/// A valid token: its scopes decide. A read-only token cannot write (403,
/// `FORBIDDEN`, no row), a write-only token cannot read, a token with both
/// does both; in a batch, only the operations lacking a scope are refused.
async fn scopes_decide_what_a_valid_token_may_do(kind: Kind, db: &TestDb) {
    let server = start(db, &kind).await;
    let token = |scope: &str| {
        format!(
            "Bearer {}",
            sign(kind.algorithm, &kind.key, &claims(scope, 600))
        )
    };
    let before = users(db).await;

    let (status, _, answer) = post(&server, Some(&token("roster:read")), INSERT).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(error_code(&answer), "FORBIDDEN");
    assert!(answer["data"].is_null(), "{answer}");
    assert_eq!(users(db).await, before, "a read-only token wrote");

    let (status, _, answer) = post(&server, Some(&token("openid")), "{ users { id } }").await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(error_code(&answer), "FORBIDDEN");

    let (status, _, answer) = post(&server, Some(&token("roster:write")), INSERT).await;
    assert_eq!((status, answer.get("errors")), (200, None), "{answer}");
    assert_eq!(users(db).await, before + 1);

    let (status, _, answer) = post(
        &server,
        Some(&token("roster:read roster:write")),
        "{ users { id } }",
    )
    .await;
    assert_eq!((status, answer.get("errors")), (200, None), "{answer}");

    // A batch: the query runs, the mutation is refused, nothing written.
    let response = server
        .client()
        .post(server.url("/graphql"))
        .header("authorization", token("roster:read"))
        .json(&json!([{ "query": "{ users { id } }" }, { "query": INSERT }]))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.expect("JSON");
    assert!(answer[0].get("errors").is_none(), "{answer}");
    assert_eq!(error_code(&answer[1]), "FORBIDDEN", "{answer}");
    assert_eq!(users(db).await, before + 1);

    // With several operations in the document, the one named decides.
    let both = format!(
        "query Read {{ users {{ id }} }} {}",
        INSERT.replacen("mutation", "mutation Write", 1)
    );
    let response = server
        .client()
        .post(server.url("/graphql"))
        .header("authorization", token("roster:read"))
        .json(&json!({ "query": both, "operationName": "Write" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(users(db).await, before + 1);
    assert_eq!(
        server
            .metric("roster_requests_refused_total{reason=\"forbidden\"}")
            .await,
        Some(4)
    );
}

async fn hs256_tokens(db: &TestDb) {
    refuses_missing_malformed_and_expired_tokens(hs256(), db).await;
    scopes_decide_what_a_valid_token_may_do(hs256(), db).await;
}

async fn rs256_tokens(db: &TestDb) {
    refuses_missing_malformed_and_expired_tokens(rs256(), db).await;
    scopes_decide_what_a_valid_token_may_do(rs256(), db).await;
}

async fn es256_tokens(db: &TestDb) {
    refuses_missing_malformed_and_expired_tokens(es256(), db).await;
    scopes_decide_what_a_valid_token_may_do(es256(), db).await;
}

/// The algorithm is the server's choice, not the token's: an HS256 token
/// signed with the RSA public key as its secret (the classic confusion)
/// and an unsigned `alg: none` token are refused.
async fn the_token_cannot_choose_its_algorithm(db: &TestDb) {
    let kind = rs256();
    let server = start(db, &kind).await;
    let public = pem("rs256-public.pem");
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(public.as_bytes()).expect("key"),
        &claims("roster:write", 600),
    );
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("roster:write", 600).to_string().as_bytes())
    );
    for token in [confused, unsigned] {
        let (status, _, answer) = post(&server, Some(&format!("Bearer {token}")), INSERT).await;
        assert_eq!(status, 401, "{answer}");
    }
    assert_eq!(users(db).await, 0);
}

/// `ROSTER_AUTH=none` (the default on loopback) serves everyone, as before.
async fn without_auth_everyone_may_write(db: &TestDb) {
    let server = crate::graphql::start(db).await;
    let (status, _, answer) = post(&server, None, INSERT).await;
    assert_eq!((status, answer.get("errors")), (200, None), "{answer}");
    assert_eq!(users(db).await, 1);
    assert_eq!(
        server
            .metric("roster_requests_refused_total{reason=\"unauthenticated\"}")
            .await
            .unwrap_or(0),
        0
    );
}

backend_tests!(
    migrated: hs256_tokens,
    rs256_tokens,
    es256_tokens,
    the_token_cannot_choose_its_algorithm,
    without_auth_everyone_may_write,
);
