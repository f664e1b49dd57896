//! A stalled database: accepted connections that answer nothing.

use std::time::{Duration, Instant};

use futures::future::join_all;
use roster::loader::{Error, LoaderOptions};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::{ConnAcquireErr, ConnectOptions, ConnectionTrait, Database, DbErr};

use super::{ACQUIRE, pool, recover, report, within};
use crate::fixtures;
use crate::loader::users_with;

/// The loaders' time limit in this test.
const LOAD_LIMIT: Duration = Duration::from_secs(1);

/// Under a stall, loads with a [`LoaderOptions::timeout`] fail with
/// `Error::Timeout` after that limit; a checkout from a pool that pings
/// connections (`test_before_acquire`) fails with the acquire timeout; a
/// statement on a pool that does not ping waits for the stall to end (the
/// caller must bound it). After `pass()`, both pools serve again.
async fn a_stall_times_out_loads_and_checkouts_then_recovers(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=100).await;
    let (proxy, url) = db.fault_proxy().await;
    let conn = pool(&url, 4).await;
    let pinging = within(ACQUIRE * 2, "connecting the pinging pool", async {
        let mut options = ConnectOptions::new(url.as_str());
        options
            .max_connections(2)
            .acquire_timeout(ACQUIRE)
            .test_before_acquire(true)
            .sqlx_logging(false);
        Database::connect(options).await.expect("connect")
    })
    .await;
    let loader = || users_with(&conn, LoaderOptions::new().timeout(LOAD_LIMIT));
    within(ACQUIRE * 2, "warm-up", loader().load(1))
        .await
        .expect("warm-up load");

    proxy.stall();
    let stalled = loader();
    let started = Instant::now();
    let results = within(
        LOAD_LIMIT + Duration::from_secs(3),
        "the stalled loads",
        join_all((1..=100).map(|id| stalled.load(id))),
    )
    .await;
    let took = started.elapsed();
    for result in results {
        assert!(
            matches!(
                result,
                Err(Error::Timeout {
                    limit: LOAD_LIMIT,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert!(
        took >= LOAD_LIMIT && took < LOAD_LIMIT + Duration::from_secs(1),
        "failed after the loader's limit, took {took:?}"
    );
    report("stall", "100 loads failed with Error::Timeout", took);

    let started = Instant::now();
    let checkout = within(
        ACQUIRE + Duration::from_secs(3),
        "a checkout with ping",
        pinging.execute_unprepared("SELECT 1"),
    )
    .await;
    let took = started.elapsed();
    assert!(
        matches!(
            checkout,
            Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
        ),
        "{checkout:?}"
    );
    assert!(took < ACQUIRE + Duration::from_secs(1), "took {took:?}");
    report(
        "stall",
        "a pinged checkout failed with the acquire timeout",
        took,
    );

    let unbounded =
        tokio::time::timeout(Duration::from_secs(1), conn.execute_unprepared("SELECT 1")).await;
    assert!(
        unbounded.is_err(),
        "without a ping or a limit, a statement waits out the stall: {unbounded:?}"
    );

    proxy.pass();
    let (failed, took, ()) = recover(8, ACQUIRE * 3, || async {
        let values = loader().load_many(&(1..=100).collect::<Vec<_>>()).await?;
        assert!(values.iter().all(Option::is_some));
        Ok::<_, Error>(())
    })
    .await;
    report(
        "stall",
        &format!("loads served again after {failed} failed attempt(s)"),
        took,
    );
    let (failed, took, _) =
        recover(4, ACQUIRE * 2, || pinging.execute_unprepared("SELECT 1")).await;
    report(
        "stall",
        &format!("the pinging pool served again after {failed} failed attempt(s)"),
        took,
    );
}

backend_tests!(migrated on [postgres, mysql]: a_stall_times_out_loads_and_checkouts_then_recovers);
