//! The GraphQL server through the fault proxy, on the pool the server
//! itself opens (`server::connect`: acquire timeout 5 s, no checkout ping).

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster::graphql::server::{AppState, Metrics, connect};
use roster_testkit::{FaultProxy, TestDb, backend_tests};
use serde_json::{Value, json};

use super::{recover, report, seed_users, within};
use crate::graphql::{Server, error_code};

/// The server's acquire timeout (`server::connect`).
const SERVER_ACQUIRE: Duration = Duration::from_secs(5);

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
        connect(&url, &metrics),
    )
    .await
    .expect("connect through the proxy");
    let server = Server::start(AppState::with_metrics(pool, metrics)).await;
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

/// A database restart (connections cut, new ones refused): requests answer
/// `INTERNAL` within the acquire timeout and `/health` says 503; once the
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
    assert_eq!(error_code(&answer), "INTERNAL");
    report("server", "a query during a restart answered INTERNAL", took);
    assert_eq!(health(&server).await, 503);

    proxy.pass();
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
        &format!("answered again after {failed} failed request(s)"),
        took,
    );
    assert_eq!(health(&server).await, 200);
    server.stop().await;
}

/// A stall: the server has no request timeout and its pool does not ping on
/// checkout, so a request waits for as long as the stall lasts (it is
/// answered once the database is back); `/health` answers 503 after its own
/// 3 s limit. Bounding request time is left to the deployment (see README).
async fn a_stall_holds_server_requests_until_the_database_answers(db: &TestDb) {
    let (proxy, server) = start(db).await;
    let server = Arc::new(server);
    proxy.stall();
    let pending = tokio::spawn({
        let server = Arc::clone(&server);
        async move { server.post(&user_query()).await }
    });
    let started = Instant::now();
    assert_eq!(health(&server).await, 503);
    report(
        "server",
        "/health answered 503 under a stall",
        started.elapsed(),
    );
    assert!(!pending.is_finished(), "the request waits out the stall");

    proxy.pass();
    let (status, answer) = within(SERVER_ACQUIRE, "the held request", pending)
        .await
        .expect("request task");
    assert_eq!(status, 200);
    assert!(answer.get("errors").is_none(), "{answer}");
    report(
        "server",
        "the held request answered after the stall",
        started.elapsed(),
    );
    assert_eq!(health(&server).await, 200);
}

backend_tests!(
    migrated on [postgres, mysql]: the_server_fails_fast_during_a_restart_and_recovers,
    a_stall_holds_server_requests_until_the_database_answers,
);
