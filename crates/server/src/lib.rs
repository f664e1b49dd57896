//! Roster's GraphQL server over HTTP (axum on hyper), around the
//! `roster-graphql` schema: `POST /graphql`, GraphiQL at `GET /graphql`,
//! `GET /health` and `GET /metrics`, configured from the environment,
//! migrating and (when empty) seeding the database on start.
//!
//! Safe to expose: JWT bearer authentication with scopes, `application/json`
//! bodies only, a CORS allowlist and a `Host` check (no cross-site writes,
//! no DNS rebinding), header, body, idle and request timeouts, a connection
//! limit, security headers, and every refusal logged and counted.
//!
//! # Layout
//! - [`Config`]: every variable (`DATABASE_URL`, `ROSTER_LISTEN`,
//!   `ROSTER_AUTH`, …) with its default; [`HttpLimits`].
//! - [`connect`], [`prepare`]: the pool (production defaults, statement
//!   counting), migrations and demo data ([`seed`]).
//! - [`AppState`], [`router`], [`serve`], [`run`], [`run_until`]: the service;
//!   [`run_service`], [`prepare_with`]: a service's own schema and migrations
//!   on the same server.
//! - [`Auth`], [`AuthSettings`]: bearer tokens to a
//!   [`Caller`](roster_graphql::Caller); [`HostPolicy`]: the `Host` check.
//! - [`Metrics`]: what `/metrics` exports, [`RefusalReason`] included.
//! - Every request has an id ([`REQUEST_ID_HEADER`]: the client's if
//!   usable, else a new UUID) and an `http.request` span carrying it, the
//!   parent of the GraphQL operation, loader batch and statement spans.
//! - `telemetry` (feature `telemetry`, on by default): the log subscriber,
//!   text or JSON lines, and with the feature `otel` the OTLP trace
//!   export; `telemetry::init()` sets it up from the environment.
//!
//! ```no_run
//! # async fn f() -> Result<(), roster_server::ServerError> {
//! use roster_server::{Config, run};
//! run(Config::from_env()?).await
//! # }
//! ```

mod auth;
mod config;
pub mod consistency;
mod graphiql;
mod http;
mod listener;
mod metrics;
mod policy;
mod request_span;
pub mod seed;
#[cfg(feature = "telemetry")]
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use roster_store::Cluster;
use roster_store::{PoolSettings, pool};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::net::TcpListener;

pub use auth::{Auth, AuthError, AuthSettings, JwtKey, MIN_SECRET_BYTES};
pub use config::{
    Config, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_BODY_TIMEOUT, DEFAULT_CAUSAL_WAIT,
    DEFAULT_DATABASE_URL, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_SIZE, DEFAULT_REPLICA_CHECK_EVERY,
    DEFAULT_REPLICA_MAX_LAG, DEFAULT_REQUEST_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, HttpLimits,
};
pub use graphiql::{GRAPHIQL_VERSION, REACT_VERSION};
pub use http::{MAX_BODY_BYTES, router};
pub use metrics::{ErrorLabels, HttpLabels, Metrics, RefusalReason, method_label};
pub use policy::HostPolicy;
pub use request_span::{MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER, is_usable_request_id};

use roster_graphql::{Served, schema};
use roster_migrations::MigratorTrait;

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
    /// The primary or a replica could not be set up.
    #[error("setting up the database cluster failed")]
    Cluster(#[from] roster_store::ClusterError),
    /// Seeding the demo data failed.
    #[error("seeding the demo data failed")]
    Seed(#[source] DbErr),
    /// `ROSTER_AUTH` is unset and the server would listen on an address
    /// other machines can reach.
    #[error(
        "refusing to serve on {listen} without authentication: ROSTER_AUTH is unset, which is \
         allowed only on a loopback address; set ROSTER_AUTH=jwt (with ROSTER_JWT_SECRET or \
         ROSTER_JWT_PUBLIC_KEY), or ROSTER_AUTH=none to serve everyone deliberately"
    )]
    AuthUnset {
        /// The listen address.
        listen: SocketAddr,
    },
    /// Binding or serving the listening socket failed.
    #[error("serving HTTP failed")]
    Io(#[from] std::io::Error),
    /// Setting up the logs or the trace export, or sending spans, failed.
    #[error("telemetry: {step} failed")]
    Telemetry {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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

/// Opens the server's [`Cluster`] on `url` (one host, or candidate hosts
/// for the primary) and `settings.replicas`, counting every statement in
/// `metrics`.
pub async fn connect_cluster(
    url: &str,
    settings: &PoolSettings,
    metrics: &Arc<Metrics>,
) -> Result<Cluster, ServerError> {
    let counter = metrics.clone();
    let on_open: roster_store::cluster::OnOpen = Arc::new(move |db: &mut DatabaseConnection| {
        let counter = counter.clone();
        db.set_metric_callback(move |_| counter.sql_statement());
    });
    // Boxed: the cluster's setup is a deep future, and every binary that
    // awaits the server would otherwise carry its whole layout.
    Ok(Box::pin(Cluster::connect_with(url, settings, Some(on_open))).await?)
}

/// Finds the primary (`config.database_url` may list candidates), migrates
/// it (under the migration lock, so several servers can start together),
/// connects to the replicas, and seeds the demo data if the database is
/// empty.
pub async fn prepare(config: &Config) -> Result<AppState, ServerError> {
    prepare_with::<roster_migrations::Migrator>(config).await
}

/// [`prepare`] with the migrations of `M`: a service's migrator, Roster's
/// migrations followed by its own (see [`roster_migrations::run_migrator`]).
pub async fn prepare_with<M: MigratorTrait>(config: &Config) -> Result<AppState, ServerError> {
    let auth = Auth::new(&config.auth())?;
    let hosts = config
        .allowed_hosts
        .as_deref()
        .map(HostPolicy::list)
        .transpose()?;
    let metrics = Arc::new(Metrics::new());
    let cluster = connect_cluster(&config.database_url, &config.pool, &metrics).await?;
    let url = &cluster.primary_url();
    let report = roster_migrations::run_migrator::<M>(
        url,
        roster_migrations::Action::Up { steps: None },
        roster_migrations::runner::DEFAULT_LOCK_TIMEOUT,
    )
    .await?;
    for name in &report.applied {
        tracing::info!(migration = %name, "applied");
    }
    seed::seed_if_empty(url, &cluster.primary()).await?;
    let mut state = AppState::with_cluster(cluster, metrics)
        .with_request_timeout(config.request_timeout)
        .with_auth(auth)
        .with_cors_origins(config.cors_origins.clone())
        .with_graphiql(config.graphiql)
        .with_introspection(config.introspection)
        .with_limits(config.limits);
    if let Some(hosts) = hosts {
        state = state.with_allowed_hosts(hosts);
    }
    Ok(state)
}

/// What every request handler shares: the schema, the pool, the metrics,
/// and the server's settings (authentication, CORS, hosts, GraphiQL,
/// limits).
///
/// [`AppState::new`] is a server for loopback: authentication off, no
/// cross-origin callers, `Host` as [`HostPolicy::default_for`] the listen
/// address, GraphiQL and introspection on, default limits.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    request_timeout: Duration,
}

/// The settings part of [`AppState`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) auth: Auth,
    pub(crate) cors_origins: Vec<String>,
    /// `None`: [`HostPolicy::default_for`] the listen address.
    pub(crate) hosts: Option<HostPolicy>,
    pub(crate) graphiql: bool,
    pub(crate) introspection: bool,
    pub(crate) limits: HttpLimits,
}

struct Shared {
    schema: Arc<dyn Served>,
    cluster: Cluster,
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
        Self::with_cluster(Cluster::single(db), metrics)
    }

    /// A state over `cluster` (a primary and its read replicas) recording
    /// into `metrics`: each request reads from a healthy replica until it
    /// writes, and honours the commit position a client sends back
    /// (`x-roster-after`).
    pub fn with_cluster(cluster: Cluster, metrics: Arc<Metrics>) -> Self {
        metrics.watch(&cluster);
        Self {
            shared: Arc::new(Shared {
                schema: Arc::new(schema()),
                cluster,
                metrics,
            }),
            settings: Arc::new(Settings {
                auth: Auth::None,
                cors_origins: Vec::new(),
                hosts: None,
                graphiql: true,
                introspection: true,
                limits: HttpLimits::default(),
            }),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    fn with_settings(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// The same state checking callers with `auth`.
    pub fn with_auth(self, auth: Auth) -> Self {
        self.with_settings(|s| s.auth = auth)
    }

    /// The same state letting pages from `origins` (such as
    /// `https://app.example.org`) call `/graphql` (CORS).
    pub fn with_cors_origins(self, origins: Vec<String>) -> Self {
        self.with_settings(|s| s.cors_origins = origins)
    }

    /// The same state serving only requests whose `Host` `hosts` allows.
    pub fn with_allowed_hosts(self, hosts: HostPolicy) -> Self {
        self.with_settings(|s| s.hosts = Some(hosts))
    }

    /// The same state with GraphiQL on or off.
    pub fn with_graphiql(self, on: bool) -> Self {
        self.with_settings(|s| s.graphiql = on)
    }

    /// The same state answering introspection queries or not.
    pub fn with_introspection(self, on: bool) -> Self {
        self.with_settings(|s| s.introspection = on)
    }

    /// The same state with `limits` on its connections.
    pub fn with_limits(self, limits: HttpLimits) -> Self {
        self.with_settings(|s| s.limits = limits)
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
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

    /// The schema this state serves.
    pub fn schema(&self) -> &dyn Served {
        &*self.shared.schema
    }

    /// The same state serving `schema` in place of Roster's own: a
    /// service's schema built with [`roster_graphql::build_schema`], which
    /// merges its objects into Roster's.
    pub fn with_schema(mut self, schema: impl Served) -> Self {
        let shared = Shared {
            schema: Arc::new(schema),
            cluster: self.shared.cluster.clone(),
            metrics: self.shared.metrics.clone(),
        };
        self.shared = Arc::new(shared);
        self
    }

    /// The primary's pool now.
    pub fn db(&self) -> DatabaseConnection {
        self.shared.cluster.primary()
    }

    /// The primary and its replicas.
    pub fn cluster(&self) -> &Cluster {
        &self.shared.cluster
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes
/// the requests in flight and returns.
///
/// Unless the state has its own [`HostPolicy`], requests must name the
/// listener's address or `localhost` in `Host`.
pub async fn serve(
    listener: TcpListener,
    mut state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if state.settings.hosts.is_none() {
        state = state.with_allowed_hosts(HostPolicy::default_for(listener.local_addr()?));
    }
    let metrics = state.metrics().clone();
    let limits = state.settings.limits;
    listener::serve(listener, router(state), metrics, limits, shutdown).await?;
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

/// Checks the configuration ([`Config::check`]: no unauthenticated server
/// on a non-loopback address), prepares the database ([`prepare`]), listens
/// on `config.listen` and serves until Ctrl-C or SIGTERM
/// ([`shutdown_signal`]).
pub async fn run(config: Config) -> Result<(), ServerError> {
    run_until(config, shutdown_signal()).await
}

/// [`run`], serving until `shutdown` completes instead of until a signal
/// (an embedding program, or a test, that must not take over Ctrl-C).
pub async fn run_until(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_service::<roster_migrations::Migrator>(config, schema(), shutdown).await
}

/// [`run_until`] for a service built on Roster: its schema (built with
/// [`roster_graphql::build_schema`], merging its objects into Roster's) and
/// its migrator `M` (Roster's migrations, then its own), with everything
/// else (configuration, limits, authentication, metrics) as Roster's own
/// server has it.
pub async fn run_service<M: MigratorTrait>(
    config: Config,
    schema: impl Served,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.check()?;
    let state = prepare_with::<M>(&config).await?.with_schema(schema);
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let auth = match config.auth() {
        AuthSettings::None => "none",
        AuthSettings::Jwt { .. } => "jwt",
    };
    tracing::info!(
        database = %roster_migrations::runner::redact(&config.database_url),
        auth,
        "listening on http://{addr}"
    );
    if config.graphiql {
        tracing::info!("GraphiQL at http://{addr}/graphql");
    }
    if addr.ip().is_unspecified() && config.allowed_hosts.is_none() {
        tracing::warn!(
            "listening on every address, but only requests for localhost or {} are served: \
             set ROSTER_ALLOWED_HOSTS to the names clients use",
            addr.ip()
        );
    }
    serve(listener, state, shutdown).await
}
