//! Roster's GraphQL server over HTTP (axum), around the `roster-graphql`
//! schema: `POST /graphql`, GraphiQL at `GET /graphql`,
//! `GET /health` and `GET /metrics`, configured from the environment,
//! migrating and (when empty) seeding the database on start.
//!
//! # Layout
//! - [`Config`]: `DATABASE_URL`, `ROSTER_LISTEN`, the pool size and the
//!   time limits (`ROSTER_POOL_SIZE`, `ROSTER_ACQUIRE_TIMEOUT`,
//!   `ROSTER_STATEMENT_TIMEOUT`, `ROSTER_REQUEST_TIMEOUT`).
//! - [`connect`], [`prepare`]: the pool (production defaults, statement
//!   counting), migrations and demo data ([`seed`]).
//! - [`AppState`], [`router`], [`serve`], [`run`]: the axum service.
//! - [`Metrics`]: what `/metrics` exports.
//!
//! ```no_run
//! # async fn f() -> Result<(), roster_server::ServerError> {
//! use roster_server::{Config, run};
//! run(Config::from_env()?).await
//! # }
//! ```

mod http;
mod metrics;
pub mod seed;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use roster_store::{PoolSettings, pool};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::net::TcpListener;

pub use http::{MAX_BODY_BYTES, router};
pub use metrics::{ErrorLabels, HttpLabels, Metrics};

use roster_graphql::{RosterSchema, schema};

/// `DATABASE_URL` when unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://roster.db?mode=rwc";
/// `ROSTER_LISTEN` when unset.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// `ROSTER_POOL_SIZE` when unset.
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// `ROSTER_ACQUIRE_TIMEOUT` when unset.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// `ROSTER_STATEMENT_TIMEOUT` when unset.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// `ROSTER_REQUEST_TIMEOUT` when unset.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// An environment variable has a value the server cannot use.
    #[error("{var}={value:?} is not {expected}")]
    Config {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it should look like.
        expected: &'static str,
        /// Why it did not parse.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Migrating (or taking the migration lock) failed.
    #[error("migrating the database failed")]
    Migrate(#[from] roster_migrations::Error),
    /// The database could not be reached.
    #[error("connecting to {url} failed")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The error.
        #[source]
        source: DbErr,
    },
    /// Seeding the demo data failed.
    #[error("seeding the demo data failed")]
    Seed(#[source] DbErr),
    /// Binding or serving the listening socket failed.
    #[error("serving HTTP failed")]
    Io(#[from] std::io::Error),
}

/// The server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The database (`DATABASE_URL`, default [`DEFAULT_DATABASE_URL`]).
    pub database_url: String,
    /// Where to listen (`ROSTER_LISTEN`, default [`DEFAULT_LISTEN`]).
    pub listen: SocketAddr,
    /// The pool: `ROSTER_POOL_SIZE` (default [`DEFAULT_POOL_SIZE`]),
    /// `ROSTER_ACQUIRE_TIMEOUT` (default [`DEFAULT_ACQUIRE_TIMEOUT`]) and
    /// `ROSTER_STATEMENT_TIMEOUT` (default [`DEFAULT_STATEMENT_TIMEOUT`];
    /// `0` turns it off).
    pub pool: PoolSettings,
    /// The most one HTTP request to `/graphql` may take, all its operations
    /// together (`ROSTER_REQUEST_TIMEOUT`, default
    /// [`DEFAULT_REQUEST_TIMEOUT`]); a request over it is answered 504.
    pub request_timeout: Duration,
}

impl Config {
    /// The configuration for `database_url` with every other setting at its
    /// default.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            pool: PoolSettings::default()
                .max_connections(DEFAULT_POOL_SIZE)
                .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
                .statement_timeout(Some(DEFAULT_STATEMENT_TIMEOUT)),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Reads the configuration from the environment, with the defaults
    /// above. Durations are written like `500ms`, `5s` or `2m`.
    pub fn from_env() -> Result<Self, ServerError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ServerError> {
        let listen = var("ROSTER_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen.parse().map_err(|e| ServerError::Config {
            var: "ROSTER_LISTEN",
            value: listen.clone(),
            expected: "a socket address such as 127.0.0.1:8000",
            source: Box::new(e),
        })?;
        let duration = |name: &'static str, default: Duration| -> Result<Duration, ServerError> {
            match var(name) {
                None => Ok(default),
                Some(value) => {
                    humantime::parse_duration(value.trim()).map_err(|e| ServerError::Config {
                        var: name,
                        value,
                        expected: "a duration such as 500ms, 5s or 2m",
                        source: Box::new(e),
                    })
                }
            }
        };
        let pool_size = match var("ROSTER_POOL_SIZE") {
            None => DEFAULT_POOL_SIZE,
            Some(value) => match value.trim().parse::<u32>() {
                Ok(n) if n > 0 => n,
                Ok(_) => {
                    return Err(ServerError::Config {
                        var: "ROSTER_POOL_SIZE",
                        value,
                        expected: "a number of connections of at least 1",
                        source: "0 connections".into(),
                    });
                }
                Err(e) => {
                    return Err(ServerError::Config {
                        var: "ROSTER_POOL_SIZE",
                        value,
                        expected: "a number of connections of at least 1",
                        source: Box::new(e),
                    });
                }
            },
        };
        let statement = duration("ROSTER_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT)?;
        let defaults =
            Self::new(var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()));
        Ok(Self {
            listen,
            pool: defaults
                .pool
                .clone()
                .max_connections(pool_size)
                .acquire_timeout(duration("ROSTER_ACQUIRE_TIMEOUT", DEFAULT_ACQUIRE_TIMEOUT)?)
                .statement_timeout((!statement.is_zero()).then_some(statement)),
            request_timeout: duration("ROSTER_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)?,
            ..defaults
        })
    }
}

/// Opens the server's pool on `url` with `settings` (see
/// [`roster_store::pool`]), counting every statement in `metrics`.
///
/// A connection is pinged before use only after 30 s idle
/// ([`PoolSettings::ping_if_idle_for`]): a connection that died while busy
/// is found by the statement that uses it (an `INTERNAL` error for that
/// request, and sqlx drops the connection), and `GET /health` reports an
/// unreachable database. The acquire timeout (5 s by default) makes a
/// saturated or unreachable database fail requests quickly instead of
/// queueing them for sqlx's default 30 s.
pub async fn connect(
    url: &str,
    settings: &PoolSettings,
    metrics: &Arc<Metrics>,
) -> Result<DatabaseConnection, ServerError> {
    let mut db = pool::connect(url, settings)
        .await
        .map_err(|source| ServerError::Connect {
            url: roster_migrations::runner::redact(url),
            source,
        })?;
    let counter = metrics.clone();
    db.set_metric_callback(move |_| counter.sql_statement());
    Ok(db)
}

/// Migrates the database at `config.database_url` (under the migration
/// lock, so replicas can start together), connects, and seeds the demo data
/// if the database is empty.
pub async fn prepare(config: &Config) -> Result<AppState, ServerError> {
    let url = &config.database_url;
    let report = roster_migrations::run(url, roster_migrations::Action::Up { steps: None }).await?;
    for name in &report.applied {
        tracing::info!(migration = %name, "applied");
    }
    let metrics = Arc::new(Metrics::new());
    let db = connect(url, &config.pool, &metrics).await?;
    seed::seed_if_empty(url, &db).await?;
    Ok(AppState::with_metrics(db, metrics).with_request_timeout(config.request_timeout))
}

/// What every request handler shares: the schema, the pool and the metrics.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
    request_timeout: Duration,
}

struct Shared {
    schema: RosterSchema,
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
}

impl AppState {
    /// A state over `db` with fresh metrics. Statements are counted in
    /// `/metrics` only if `db` came from [`connect`] with these metrics; use
    /// [`AppState::with_metrics`] for that.
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_metrics(db, Arc::new(Metrics::new()))
    }

    /// A state over `db` recording into `metrics`.
    pub fn with_metrics(db: DatabaseConnection, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                schema: schema(),
                db,
                metrics,
            }),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// The same state with `limit` as the time limit of one `/graphql`
    /// request (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// The time limit of one `/graphql` request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The schema.
    pub fn schema(&self) -> &RosterSchema {
        &self.shared.schema
    }

    /// The pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.shared.db
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes
/// the requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// Prepares the database ([`prepare`]), listens on `config.listen` and
/// serves until Ctrl-C.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let state = prepare(&config).await?;
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        database = %roster_migrations::runner::redact(&config.database_url),
        "GraphiQL at http://{addr}/graphql"
    );
    serve(listener, state, shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ServerError> {
        Config::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn config_defaults() {
        let config = config(&[]).expect("defaults");
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.pool.max_connections, DEFAULT_POOL_SIZE);
        assert_eq!(config.pool.acquire_timeout, DEFAULT_ACQUIRE_TIMEOUT);
        assert_eq!(
            config.pool.statement_timeout,
            Some(DEFAULT_STATEMENT_TIMEOUT)
        );
        assert_eq!(config.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(config, Config::new(DEFAULT_DATABASE_URL));
    }

    #[test]
    fn config_reads_sizes_and_durations() {
        let config = config(&[
            ("ROSTER_POOL_SIZE", "32"),
            ("ROSTER_ACQUIRE_TIMEOUT", "750ms"),
            ("ROSTER_STATEMENT_TIMEOUT", "0s"),
            ("ROSTER_REQUEST_TIMEOUT", "2m"),
        ])
        .expect("valid");
        assert_eq!(config.pool.max_connections, 32);
        assert_eq!(config.pool.acquire_timeout, Duration::from_millis(750));
        assert_eq!(config.pool.statement_timeout, None, "0 turns it off");
        assert_eq!(config.request_timeout, Duration::from_secs(120));
    }

    #[test]
    fn config_names_the_bad_variable() {
        for (var, value) in [
            ("ROSTER_LISTEN", "localhost"),
            ("ROSTER_POOL_SIZE", "0"),
            ("ROSTER_POOL_SIZE", "many"),
            ("ROSTER_REQUEST_TIMEOUT", "30"),
            ("ROSTER_STATEMENT_TIMEOUT", "soon"),
        ] {
            match config(&[(var, value)]) {
                Err(e @ ServerError::Config { var: bad, .. }) => {
                    assert_eq!(bad, var);
                    assert!(e.to_string().contains(value), "{e}");
                }
                other => panic!("{var}={value}: {other:?}"),
            }
        }
    }
}
