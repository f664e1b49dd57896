//! Opening a connection pool with the settings a Roster service relies on:
//! its size, how long a request may wait for a connection, a time limit on
//! every statement the database runs, and a check that keeps a MySQL
//! connection whose statement was abandoned half-way out of the pool.
//!
//! ```no_run
//! # async fn f() -> Result<(), sea_orm::DbErr> {
//! use std::time::Duration;
//! use roster_store::{PoolSettings, Store, pool};
//!
//! let settings = PoolSettings::default().statement_timeout(Some(Duration::from_secs(5)));
//! let db = pool::connect("postgres://postgres@127.0.0.1/roster", &settings).await?;
//! let store = Store::new(db);
//! # Ok(()) }
//! ```

use std::time::Duration;

use sea_orm::sqlx::{self, Connection as _, Executor as _};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// How long the release check may take on MySQL before the connection is
/// closed instead of pooled.
const RELEASE_CHECK: Duration = Duration::from_secs(2);

/// The pool settings [`connect`] and [`connect_options`] apply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSettings {
    /// The most connections the pool opens (default 10). Every request that
    /// runs a statement holds one for the statement's duration; a
    /// transaction holds one until it ends.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before failing with a
    /// timeout error (default 5 s). sqlx's own default is 30 s, long enough
    /// for a client to give up first.
    pub acquire_timeout: Duration,
    /// A time limit on every statement, enforced by the database (default
    /// none): PostgreSQL `statement_timeout`, MariaDB `max_statement_time`,
    /// MySQL `max_execution_time` (reads only). A statement over the limit
    /// fails with [`Error::Timeout`](crate::Error::Timeout). SQLite has no
    /// such limit; its writers wait at most sqlx's 5 s busy timeout.
    pub statement_timeout: Option<Duration>,
    /// Ping a connection before handing it out only if it sat idle at least
    /// this long (default 30 s): a dead connection is found before a
    /// request uses it, at the cost of one round trip after idle periods
    /// only. `None` pings on every checkout (sqlx's default behaviour).
    pub ping_if_idle_for: Option<Duration>,
    /// Read replicas' URLs (default none; `ROSTER_REPLICA_URLS` in the
    /// server). A [`Cluster`](crate::Cluster) routes each request's reads
    /// to a healthy one until the request writes. Each gets a pool of
    /// these settings, except that it waits at most 1 s for a connection.
    pub replicas: Vec<String>,
    /// How far behind the primary a replica may be and still be read from
    /// (default 5 s; `ROSTER_REPLICA_MAX_LAG`). Reads without a commit
    /// position may be this old.
    pub replica_max_lag: Duration,
    /// How long a read given a commit position waits for a replica to
    /// apply it before reading from the primary instead (default 200 ms;
    /// `ROSTER_CAUSAL_WAIT`).
    pub causal_wait: Duration,
    /// How often the replicas' lag and the primary are checked (default
    /// 1 s). A replica that stopped is skipped from its next check on (or
    /// at once, by the request whose read it failed).
    pub replica_check_every: Duration,
}

impl PoolSettings {
    /// Sets [`max_connections`](Self::max_connections).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    pub fn acquire_timeout(mut self, limit: Duration) -> Self {
        self.acquire_timeout = limit;
        self
    }

    /// Sets [`statement_timeout`](Self::statement_timeout).
    pub fn statement_timeout(mut self, limit: Option<Duration>) -> Self {
        self.statement_timeout = limit;
        self
    }

    /// Sets [`ping_if_idle_for`](Self::ping_if_idle_for).
    pub fn ping_if_idle_for(mut self, idle: Option<Duration>) -> Self {
        self.ping_if_idle_for = idle;
        self
    }

    /// Sets [`replicas`](Self::replicas).
    pub fn replicas<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.replicas = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`replica_max_lag`](Self::replica_max_lag).
    pub fn replica_max_lag(mut self, lag: Duration) -> Self {
        self.replica_max_lag = lag;
        self
    }

    /// Sets [`causal_wait`](Self::causal_wait).
    pub fn causal_wait(mut self, wait: Duration) -> Self {
        self.causal_wait = wait;
        self
    }

    /// Sets [`replica_check_every`](Self::replica_check_every) (at least
    /// 10 ms).
    pub fn replica_check_every(mut self, every: Duration) -> Self {
        self.replica_check_every = every.max(Duration::from_millis(10));
        self
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: None,
            ping_if_idle_for: Some(Duration::from_secs(30)),
            replicas: Vec::new(),
            replica_max_lag: Duration::from_secs(5),
            causal_wait: Duration::from_millis(200),
            replica_check_every: Duration::from_secs(1),
        }
    }
}

/// sea-orm connect options for `url` with `settings` applied.
///
/// On MySQL/MariaDB this also installs a release check: a connection given
/// back to the pool must finish reading the replies it still owes within 2 s
/// (no round trip when it owes none) or it is closed. sqlx-mysql
/// 0.9 can lose track of a connection's protocol state when a statement's
/// future is dropped half-way (a cancelled request, an aborted task); such a
/// connection would otherwise wait forever for a reply that never comes, and
/// the pool would lose it (or hand it out to hang the next request).
pub fn connect_options(url: &str, settings: &PoolSettings) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .sqlx_logging(false);
    match settings.ping_if_idle_for {
        Some(idle) => options
            .test_before_acquire(false)
            .test_before_acquire_if_idle_for(idle),
        None => options.test_before_acquire(true),
    };
    let limit = settings.statement_timeout;
    if let Some(limit) = limit {
        let ms = limit.as_millis().max(1);
        options.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms)]));
    }
    options.map_sqlx_mysql_pool_opts(move |pool| {
        pool.after_release(|conn, _| {
            Box::pin(async move {
                // `flush` reads whatever replies the connection still owes
                // (no round trip when it owes none; sqlx pings right after
                // this check anyway). A connection that lost its place in a
                // packet never finishes: bound it and drop the socket.
                match tokio::time::timeout(RELEASE_CHECK, conn.flush()).await {
                    Ok(Ok(())) => Ok(true),
                    Ok(Err(e)) => Err(e),
                    // An error (not `false`) so sqlx drops the socket
                    // without a goodbye that could wait as well.
                    Err(_) => Err(sqlx::Error::Protocol(
                        "the connection was still waiting for a reply when released; closed".into(),
                    )),
                }
            })
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if let Some(limit) = limit {
                    set_mysql_statement_timeout(conn, limit).await?;
                }
                Ok(())
            })
        })
    });
    options
}

/// Opens a pool on `url` with `settings` (see [`connect_options`]).
pub async fn connect(url: &str, settings: &PoolSettings) -> Result<DatabaseConnection, DbErr> {
    Database::connect(connect_options(url, settings)).await
}

/// MariaDB: `max_statement_time` (seconds, every statement); MySQL, which
/// lacks it: `max_execution_time` (milliseconds, `SELECT` only).
async fn set_mysql_statement_timeout(
    conn: &mut sqlx::MySqlConnection,
    limit: Duration,
) -> Result<(), sqlx::Error> {
    let mariadb = format!(
        "SET SESSION max_statement_time = {}",
        limit.as_secs_f64().max(0.001)
    );
    match conn.execute(sqlx::AssertSqlSafe(mariadb)).await {
        Ok(_) => Ok(()),
        // ER_UNKNOWN_SYSTEM_VARIABLE: not MariaDB.
        Err(sqlx::Error::Database(e)) if is_unknown_var(&*e) => {
            let mysql = format!(
                "SET SESSION max_execution_time = {}",
                limit.as_millis().max(1)
            );
            conn.execute(sqlx::AssertSqlSafe(mysql)).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

fn is_unknown_var(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|e| e.number() == 1193)
}
