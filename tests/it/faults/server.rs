//! The GraphQL server through the fault proxy, on the pool the server
//! itself opens (`server::connect` with the default `PoolSettings`:
//! acquire timeout 5 s, ping only after 30 s idle), with a 1 s request
//! time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster::server::{AppState, Metrics, connect};
use roster::store::PoolSettings;
use roster_testkit::{FaultProxy, TestDb, backend_tests};
use serde_json::{Value, json};

use super::{recover, report, seed_users, within};
use crate::graphql::{Server, error_code};

/// The server's acquire timeout (`PoolSettings::default`).
const SERVER_ACQUIRE: Duration = Duration::from_secs(5);
/// The request time limit these tests give the server.
const REQUEST_LIMIT: Duration = Duration::from_secs(1);

fn user_query() -> Value {
    json!({ "query": "query($id: ID!) { user(id: $id) { name } }", "variables": { "id": "1" } })
}

async fn start(db: &TestDb) -> (FaultProxy, Server) {
    seed_users(db, 10).await;
    let (proxy, url) = db.fault_proxy().await;
    let metrics = Arc::new(Metrics::new());
    let pool = within(
        SERVER_ACQUIRE * 2,
        "the server's pool",
        connect(&url, &PoolSettings::default(), &metrics),
    )
    .await
    .expect("connect through the proxy");
    let state = AppState::with_metrics(pool, metrics).with_request_timeout(REQUEST_LIMIT);
    let server = Server::start(state).await;
    within(
        SERVER_ACQUIRE,
        "a first query",
        server.data(
            "query($id: ID!) { user(id: $id) { name } }",
            json!({ "id": "1" }),
        ),
    )
    .await;
    (proxy, server)
}

async fn health(server: &Server) -> u16 {
    within(Duration::from_secs(10), "GET /health", async {
        server
            .client()
            .get(server.url("/health"))
            .send()
            .await
            .expect("GET /health")
            .status()
            .as_u16()
    })
    .await
}

/// After a fault ends: the same server answers a query again (within a few
/// tries) and `/health` says 200.
async fn answers_again(server: &Server, after: &str) {
    let (failed, took, _) = recover(10, SERVER_ACQUIRE * 2, || async {
        let (_, answer) = server.post(&user_query()).await;
        match answer.get("errors") {
            None => Ok(answer),
            Some(errors) => Err(errors.clone()),
        }
    })
    .await;
    report(
        "server",
        &format!("answered again after {after} ({failed} failed request(s))"),
        took,
    );
    assert_eq!(health(server).await, 200);
}

/// A database restart (connections cut, new ones refused): requests answer
/// `UNAVAILABLE` (retryable) within the acquire timeout and `/health` says 503; once the
/// database is back, the same server answers again, nothing restarted.
async fn the_server_fails_fast_during_a_restart_and_recovers(db: &TestDb) {
    let (proxy, server) = start(db).await;
    proxy.refuse();
    proxy.cut();
    let started = Instant::now();
    let (status, answer) = within(
        SERVER_ACQUIRE + Duration::from_secs(3),
        "a query during the restart",
        server.post(&user_query()),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(error_code(&answer), "UNAVAILABLE");
    report(
        "server",
        "a query during a restart answered UNAVAILABLE",
        took,
    );
    assert_eq!(health(&server).await, 503);

    proxy.pass();
    answers_again(&server, "the restart").await;
    server.stop().await;
}

/// A stall (the database accepts and answers nothing): a request is
/// answered 504 with `INTERNAL` at the request time limit, `/health` 503
/// after its own 3 s limit; once the database answers again, so does the
/// server, nothing restarted.
async fn a_stall_fails_server_requests_at_the_request_limit(db: &TestDb) {
    let (proxy, server) = start(db).await;
    proxy.stall();
    let started = Instant::now();
    let (status, answer) = within(
        REQUEST_LIMIT * 5,
        "a query during the stall",
        server.post(&user_query()),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{answer}");
    assert_eq!(error_code(&answer), "INTERNAL");
    assert!(
        took >= REQUEST_LIMIT && took < REQUEST_LIMIT * 3,
        "answered after {took:?}, the limit is {REQUEST_LIMIT:?}"
    );
    report("server", "a query during a stall answered 504", took);
    assert_eq!(health(&server).await, 503);
    assert_eq!(
        server.metric("roster_request_timeouts_total").await,
        Some(1)
    );

    proxy.pass();
    answers_again(&server, "the stall").await;
}

backend_tests!(
    migrated on [postgres, mysql]: the_server_fails_fast_during_a_restart_and_recovers,
    a_stall_fails_server_requests_at_the_request_limit,
);
