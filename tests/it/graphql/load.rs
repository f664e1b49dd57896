//! The short version of the load test (`cargo bench --bench load` runs the
//! long one): 16 clients for 3 s against the server, every backend; only
//! `CONFLICT` errors, every stale update refused, and the database holds
//! exactly what the server said it wrote.

use std::time::Duration;

use roster::server::{AppState, seed};
use roster_testkit::{TestDb, backend_tests};

use super::Server;

// Shared with the bench, which uses parts this test does not.
#[allow(dead_code)]
#[path = "../../../benches/load/driver.rs"]
mod driver;

async fn a_short_load_run_loses_nothing(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    let before = driver::memberships(db.conn()).await.expect("count");
    let server = Server::start(AppState::new(db.conn().clone())).await;
    let options = driver::LoadOptions {
        clients: 16,
        duration: Duration::from_secs(3),
        seed: 7,
        reads_only: false,
        token: None,
    };
    let report = driver::run(&[server.url("")], &options).await.expect("run");
    println!(
        "{} requests in {:?} ({:.0}/s), errors {:?}",
        report.requests(),
        report.elapsed,
        report.throughput(),
        report.errors
    );
    for (kind, h) in &report.latency {
        println!(
            "  {kind}: {} requests, p50 {} µs, p99 {} µs",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99)
        );
    }
    assert_eq!(report.unexpected_errors(), 0, "{:?}", report.errors);
    let stale = report.latency.get("stale update").map_or(0, |h| h.len());
    assert!(stale > 0, "the mix sent stale updates");
    assert!(
        report.errors.get("CONFLICT").copied().unwrap_or(0) >= stale,
        "every stale update is a CONFLICT: {:?}",
        report.errors
    );
    assert!(!report.updates.is_empty(), "some fresh updates succeeded");
    assert!(!report.inserts.is_empty(), "some inserts");
    assert!(!report.memberships.is_empty(), "some memberships");
    let check = driver::check(db.conn(), &report, before)
        .await
        .expect("the database holds what the server answered");
    assert!(check.memberships_after > check.memberships_before);
}

backend_tests!(migrated: a_short_load_run_loses_nothing);
