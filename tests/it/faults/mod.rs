//! Network faults between Roster and the database, injected by
//! `roster_testkit::FaultProxy` on PostgreSQL and MariaDB: connections cut
//! under load, a stalled server, an exhausted pool, a transaction cut
//! mid-way. Every wait is under `tokio::time::timeout`, so a hang fails the
//! test instead of hanging it.

mod cut;
mod pool;
mod server;
mod stall;

use std::future::Future;
use std::time::{Duration, Instant};

use roster_testkit::{Backend, TestDb};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::fixtures;

/// The pools' acquire (and connect) timeout.
pub const ACQUIRE: Duration = Duration::from_secs(2);

/// A pool on `url` configured like the server's (`test_before_acquire`
/// off), but with `max` connections and [`ACQUIRE`] as acquire timeout.
pub async fn pool(url: &str, max: u32) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max)
        .min_connections(0)
        .connect_timeout(ACQUIRE)
        .acquire_timeout(ACQUIRE)
        .test_before_acquire(false)
        .sqlx_logging(false);
    within(ACQUIRE * 2, "connecting through the proxy", async {
        Database::connect(options)
            .await
            .expect("connect through the proxy")
    })
    .await
}

/// Users `1..=n`, with PostgreSQL's id sequence moved past them so that
/// later inserts do not collide.
pub async fn seed_users(db: &TestDb, n: i64) {
    fixtures::seed_users(db.conn(), 1..=n).await;
    if db.backend() == Backend::Postgres {
        db.conn()
            .execute_unprepared("SELECT setval('all_id_seq', (SELECT MAX(id) FROM users))")
            .await
            .expect("move the id sequence");
    }
}

/// Awaits `work`, failing the test if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, work: F) -> F::Output {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {limit:?}"))
}

/// Repeats `attempt` until it succeeds, at most `max` times (each attempt
/// bounded by `limit`); returns how many attempts failed and the time to
/// success. Used to measure recovery after a fault.
pub async fn recover<F, Fut, T, E>(max: u32, limit: Duration, mut attempt: F) -> (u32, Duration, T)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let started = Instant::now();
    let mut failed = 0;
    loop {
        match within(limit, "a recovery attempt", attempt()).await {
            Ok(value) => return (failed, started.elapsed(), value),
            Err(e) if failed + 1 < max => {
                eprintln!("recovery attempt {} failed: {e:?}", failed + 1);
                failed += 1;
            }
            Err(e) => panic!("no recovery after {max} attempts: {e:?}"),
        }
    }
}

/// Prints a measured duration for the run's log (`--nocapture`).
pub fn report(test: &str, what: &str, took: Duration) {
    eprintln!("faults::{test}: {what} in {took:?}");
}
