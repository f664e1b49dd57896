//! The HTTP server: `POST /graphql`, GraphiQL at `GET /graphql`,
//! `GET /health` and `GET /metrics`, configured from the environment,
//! migrating and (when empty) seeding the database on start.
//!
//! # Layout
//! - [`Config`]: `DATABASE_URL` and `ROSTER_LISTEN`.
//! - [`connect`], [`prepare`]: the pool (production defaults, statement
//!   counting), migrations and demo data ([`seed`]).
//! - [`AppState`], [`router`], [`serve`], [`run`]: the axum service.
//! - [`Metrics`]: what `/metrics` exports.
//!
//! ```no_run
//! # async fn f() -> Result<(), roster_graphql::server::ServerError> {
//! use roster_graphql::server::{Config, run};
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

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use tokio::net::TcpListener;

pub use http::{MAX_BODY_BYTES, router};
pub use metrics::{HttpLabels, Metrics};

use crate::{RosterSchema, schema};

/// `DATABASE_URL` when unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://roster.db?mode=rwc";
/// `ROSTER_LISTEN` when unset.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// An environment variable has a value the server cannot use.
    #[error("{var}={value:?} is not a socket address such as {DEFAULT_LISTEN}")]
    Config {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it did not parse.
        #[source]
        source: std::net::AddrParseError,
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
}

impl Config {
    /// Reads `DATABASE_URL` and `ROSTER_LISTEN`, with their defaults.
    pub fn from_env() -> Result<Self, ServerError> {
        Self::from_vars(
            std::env::var("DATABASE_URL").ok(),
            std::env::var("ROSTER_LISTEN").ok(),
        )
    }

    fn from_vars(
        database_url: Option<String>,
        listen: Option<String>,
    ) -> Result<Self, ServerError> {
        let listen = listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        Ok(Self {
            database_url: database_url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            listen: listen.parse().map_err(|source| ServerError::Config {
                var: "ROSTER_LISTEN",
                value: listen.clone(),
                source,
            })?,
        })
    }
}

/// Opens the server's pool on `url`, counting every statement in `metrics`.
///
/// Pool choices: `test_before_acquire(false)` skips sqlx's ping on every
/// checkout (a round trip per request saved); a connection that died is
/// found by the statement that uses it (an `INTERNAL` error for that
/// request, and sqlx drops the connection), and `GET /health` reports an
/// unreachable database. `acquire_timeout` of 5 s makes a saturated or
/// unreachable database fail requests (and `/health`) quickly instead of
/// queueing them for sqlx's default 30 s.
pub async fn connect(url: &str, metrics: &Arc<Metrics>) -> Result<DatabaseConnection, ServerError> {
    let mut options = ConnectOptions::new(url);
    options
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    let mut db = Database::connect(options)
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
    let db = connect(url, &metrics).await?;
    seed::seed_if_empty(url, &db).await?;
    Ok(AppState::with_metrics(db, metrics))
}

/// What every request handler shares: the schema, the pool and the metrics.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
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
        }
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

    #[test]
    fn config_defaults_and_bad_listen_address() {
        let config = Config::from_vars(None, None).expect("defaults");
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert!(matches!(
            Config::from_vars(None, Some("localhost".into())),
            Err(ServerError::Config {
                var: "ROSTER_LISTEN",
                ..
            })
        ));
    }
}
