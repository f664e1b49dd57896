//! Test support for Roster: write one async test body, run it against SQLite,
//! PostgreSQL and MySQL/MariaDB, each time in a fresh database of its own that
//! is dropped afterwards, so tests run in parallel.
//!
//! # Layout
//! - [`Backend`]: the three backends and their admin URLs.
//! - [`discovery`]: which backends are reachable, and `ROSTER_TEST_REQUIRE`.
//! - [`TestDb`]: a fresh database, dropped by a guard when the test ends.
//! - [`FaultProxy`]: a loopback TCP proxy that passes, cuts, refuses or
//!   stalls a test's database connections ([`TestDb::fault_proxy`]).
//! - [`StatementLog`]: the statements a connection issued, to count queries.
//! - [`backend_tests!`]: stamps one `#[tokio::test]` per backend for a body.
//! - [`memory_db`]: a migrated in-memory SQLite database, for doc-tests.
//! - [`cluster`]: the PostgreSQL replication, Galera and PgBouncer clusters
//!   of `scripts/cluster.sh`, and fresh databases on them.
//!
//! # Environment
//! - `ROSTER_TEST_POSTGRES`, `ROSTER_TEST_MYSQL`: admin URLs (defaults
//!   `postgres://postgres@127.0.0.1:5432/postgres` and
//!   `mysql://root@127.0.0.1:3306/mysql`), tried once with a short timeout.
//! - `ROSTER_TEST_REQUIRE=postgres,mysql`: an unreachable listed backend
//!   fails its tests instead of skipping them. SQLite always runs. Other
//!   names list tools tests need (`chromium`: see [`discovery::required`])
//!   and the clusters (`pg-replica`, `galera`, `pgbouncer`).
//! - `ROSTER_TEST_PG_REPLICA`, `ROSTER_TEST_GALERA`, `ROSTER_TEST_PGBOUNCER`:
//!   the clusters' URLs (see [`cluster`]; `scripts/cluster.sh env` prints them).
//!
//! Each backend's availability is printed once per test binary, and each
//! skipped test prints a `SKIP` line, so the output says which backends ran.
//!
//! # Example
//! ```no_run
//! use roster_testkit::{TestDb, backend_tests};
//! use sea_orm::ConnectionTrait;
//!
//! async fn select_one(db: &TestDb) {
//!     db.conn().execute_unprepared("SELECT 1").await.unwrap();
//! }
//!
//! backend_tests!(select_one);
//! ```

pub mod cluster;
pub mod discovery;
mod fault_proxy;
mod statement_log;
mod test_db;

pub use discovery::Backend;
pub use fault_proxy::{FaultMode, FaultProxy};
pub use statement_log::StatementLog;
pub use test_db::TestDb;

/// A migrated in-memory SQLite database: the setup the documentation's
/// examples hide. sea-orm gives an SQLite pool one connection, so every
/// statement sees the same database; it is gone when the pool is dropped.
///
/// # Panics
/// If SQLite cannot be opened or migrated: the example cannot run.
pub async fn memory_db() -> sea_orm::DatabaseConnection {
    use sea_orm_migration::MigratorTrait;
    let db = sea_orm::Database::connect(
        sea_orm::ConnectOptions::new("sqlite::memory:")
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .expect("open an in-memory SQLite database");
    roster_migrations::Migrator::up(&db, None)
        .await
        .expect("migrate the in-memory database");
    db
}

/// Runs `body` against a fresh database on `backend`; `test` names the test
/// in the database name and in skip messages.
///
/// Skips (with a `SKIP` line on stderr) when the backend is unreachable and
/// not required; panics when it is required.
pub async fn run(backend: Backend, test: &str, body: impl AsyncFnOnce(&TestDb)) {
    if !discovery::should_run(backend, test).await {
        return;
    }
    let db = TestDb::create(backend, test).await;
    body(&db).await;
    db.close().await;
}

/// Like [`run`], but the database already has Roster's schema (all
/// migrations applied).
pub async fn run_migrated(backend: Backend, test: &str, body: impl AsyncFnOnce(&TestDb)) {
    run(backend, test, async |db: &TestDb| {
        db.migrate().await;
        body(db).await;
    })
    .await;
}

/// Stamps out one `#[tokio::test]` per backend for each test body.
///
/// `backend_tests!(a, b)` makes `a::sqlite`, `a::postgres`, `a::mysql`, ...
/// for `async fn a(db: &TestDb)` in the calling module. Variants:
/// - `backend_tests!(on [postgres]: a, b)` limits the backends;
/// - `backend_tests!(migrated: a, b)` and `backend_tests!(migrated on [..]: a)`
///   run the bodies on a database that already has Roster's schema;
/// - `backend_tests!(current_thread migrated: a)` runs them on tokio's
///   current-thread runtime instead of the default two-worker multi-thread one.
#[macro_export]
macro_rules! backend_tests {
    (migrated on $backends:tt: $($body:ident),+ $(,)?) => {
        $( $crate::backend_tests!(@one run_migrated $backends $body (flavor = "multi_thread", worker_threads = 2)); )+
    };
    (migrated: $($body:ident),+ $(,)?) => {
        $crate::backend_tests!(migrated on [sqlite, postgres, mysql]: $($body),+);
    };
    (current_thread migrated: $($body:ident),+ $(,)?) => {
        $( $crate::backend_tests!(@one run_migrated [sqlite, postgres, mysql] $body (flavor = "current_thread")); )+
    };
    (on $backends:tt: $($body:ident),+ $(,)?) => {
        $( $crate::backend_tests!(@one run $backends $body (flavor = "multi_thread", worker_threads = 2)); )+
    };
    (@one $runner:ident [$($backend:ident),+] $body:ident $flavor:tt) => {
        mod $body {
            $(
                #[tokio::test $flavor]
                async fn $backend() {
                    $crate::$runner(
                        $crate::Backend::from_name(stringify!($backend)),
                        concat!(module_path!(), "::", stringify!($backend)),
                        super::$body,
                    )
                    .await;
                }
            )+
        }
    };
    ($($body:ident),+ $(,)?) => {
        $crate::backend_tests!(on [sqlite, postgres, mysql]: $($body),+);
    };
}
