//! [`Config`]: the server's settings, read from the environment
//! ([`Config::from_env`]), with their defaults.

use std::net::SocketAddr;
use std::time::Duration;

use roster_store::PoolSettings;

use crate::ServerError;
use crate::auth::{AuthSettings, JwtKey};

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
/// `ROSTER_HEADER_TIMEOUT` when unset.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `ROSTER_BODY_TIMEOUT` when unset.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// `ROSTER_IDLE_TIMEOUT` when unset.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `ROSTER_MAX_CONNECTIONS` when unset.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// `ROSTER_REPLICA_MAX_LAG` when unset.
pub const DEFAULT_REPLICA_MAX_LAG: Duration = Duration::from_secs(5);
/// `ROSTER_CAUSAL_WAIT` when unset.
pub const DEFAULT_CAUSAL_WAIT: Duration = Duration::from_millis(200);
/// `ROSTER_REPLICA_CHECK_EVERY` when unset.
pub const DEFAULT_REPLICA_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The HTTP connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The head of a request (request line and headers) must arrive in
    /// full within this time, counted from when the connection opened or
    /// its previous answer was sent; otherwise the connection is closed.
    /// So it is also how long an idle keep-alive connection stays open
    /// (`ROSTER_HEADER_TIMEOUT`, default [`DEFAULT_HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
    /// A request's body must arrive in full within this time after its
    /// head; otherwise the answer is 408 and the connection is closed
    /// (`ROSTER_BODY_TIMEOUT`, default [`DEFAULT_BODY_TIMEOUT`]). The
    /// request time limit covers the body too.
    pub body_timeout: Duration,
    /// A connection whose answer is being sent but moves no byte for this
    /// long (a client that stops reading it) is closed
    /// (`ROSTER_IDLE_TIMEOUT`, default [`DEFAULT_IDLE_TIMEOUT`]). A
    /// connection waiting for its next request is the header timeout's.
    pub idle_timeout: Duration,
    /// The most connections open at once (`ROSTER_MAX_CONNECTIONS`, default
    /// [`DEFAULT_MAX_CONNECTIONS`]). At the limit, a new connection closes
    /// the connection that has been idle the longest (no request in flight:
    /// a keep-alive connection or one still sending its headers); if every
    /// connection has a request in flight, the new one is answered 503.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
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
    /// `0` turns it off); read replicas: `ROSTER_REPLICA_URLS`
    /// (comma-separated, default none), `ROSTER_REPLICA_MAX_LAG` (default
    /// [`DEFAULT_REPLICA_MAX_LAG`]), `ROSTER_CAUSAL_WAIT` (default
    /// [`DEFAULT_CAUSAL_WAIT`]) and `ROSTER_REPLICA_CHECK_EVERY` (default
    /// [`DEFAULT_REPLICA_CHECK_EVERY`]). `DATABASE_URL` may list several
    /// candidate hosts for the primary (`postgres://u@db1,db2/roster`).
    pub pool: PoolSettings,
    /// The most one HTTP request to `/graphql` may take, from its head to
    /// its answer, body reading and all its operations included
    /// (`ROSTER_REQUEST_TIMEOUT`, default [`DEFAULT_REQUEST_TIMEOUT`]); a
    /// request over it is answered 504.
    pub request_timeout: Duration,
    /// Authentication (`ROSTER_AUTH`): `None` when unset, which
    /// [`run`](crate::run) accepts only on a loopback address (it means
    /// [`AuthSettings::None`] there).
    pub auth: Option<AuthSettings>,
    /// Origins whose pages may call `/graphql` (`ROSTER_CORS_ORIGINS`,
    /// comma-separated, such as `https://app.example.org`; default none).
    pub cors_origins: Vec<String>,
    /// The `Host` names requests may carry (`ROSTER_ALLOWED_HOSTS`,
    /// comma-separated; `*` allows any). `None`: the listen address and
    /// `localhost` (see [`crate::HostPolicy`]).
    pub allowed_hosts: Option<Vec<String>>,
    /// Whether `GET /graphql` serves GraphiQL (`ROSTER_GRAPHIQL=on|off`;
    /// default on for a loopback listen address, off otherwise).
    pub graphiql: bool,
    /// Whether introspection queries are answered
    /// (`ROSTER_INTROSPECTION=on|off`; default: as GraphiQL).
    pub introspection: bool,
    /// Timeouts and the connection limit.
    pub limits: HttpLimits,
}

impl Config {
    /// The configuration for `database_url` with every other setting at its
    /// default (listening on loopback, so authentication off, GraphiQL and
    /// introspection on).
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            pool: PoolSettings::default()
                .max_connections(DEFAULT_POOL_SIZE)
                .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
                .statement_timeout(Some(DEFAULT_STATEMENT_TIMEOUT)),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            auth: None,
            cors_origins: Vec::new(),
            allowed_hosts: None,
            graphiql: true,
            introspection: true,
            limits: HttpLimits::default(),
        }
    }

    /// Reads the configuration from the environment, with the defaults
    /// above. Durations are written like `500ms`, `5s` or `2m`.
    pub fn from_env() -> Result<Self, ServerError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading each variable through `var`
    /// (`None`: unset).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ServerError> {
        let listen = var("ROSTER_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen.parse().map_err(|e| ServerError::Config {
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
        let positive = |name: &'static str, default: usize| -> Result<usize, ServerError> {
            let expected = "a whole number of at least 1";
            match var(name) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    Ok(_) => Err(ServerError::Config {
                        var: name,
                        value,
                        expected,
                        source: "zero".into(),
                    }),
                    Err(e) => Err(ServerError::Config {
                        var: name,
                        value,
                        expected,
                        source: Box::new(e),
                    }),
                },
            }
        };
        let switch = |name: &'static str, default: bool| -> Result<bool, ServerError> {
            match var(name).as_deref().map(str::trim) {
                None => Ok(default),
                Some("on" | "true" | "1") => Ok(true),
                Some("off" | "false" | "0") => Ok(false),
                Some(other) => Err(ServerError::Config {
                    var: name,
                    value: other.to_owned(),
                    expected: "on or off",
                    source: "unknown switch value".into(),
                }),
            }
        };
        let pool_size = positive("ROSTER_POOL_SIZE", DEFAULT_POOL_SIZE as usize)?;
        let pool_size = u32::try_from(pool_size).map_err(|e| ServerError::Config {
            var: "ROSTER_POOL_SIZE",
            value: pool_size.to_string(),
            expected: "a number of connections of at least 1",
            source: Box::new(e),
        })?;
        let statement = duration("ROSTER_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT)?;
        let graphiql = switch("ROSTER_GRAPHIQL", listen.ip().is_loopback())?;
        let defaults =
            Self::new(var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()));
        Ok(Self {
            listen,
            pool: defaults
                .pool
                .clone()
                .max_connections(pool_size)
                .acquire_timeout(duration("ROSTER_ACQUIRE_TIMEOUT", DEFAULT_ACQUIRE_TIMEOUT)?)
                .statement_timeout((!statement.is_zero()).then_some(statement))
                .replicas(list(var("ROSTER_REPLICA_URLS")))
                .replica_max_lag(duration("ROSTER_REPLICA_MAX_LAG", DEFAULT_REPLICA_MAX_LAG)?)
                .causal_wait(duration("ROSTER_CAUSAL_WAIT", DEFAULT_CAUSAL_WAIT)?)
                .replica_check_every(duration(
                    "ROSTER_REPLICA_CHECK_EVERY",
                    DEFAULT_REPLICA_CHECK_EVERY,
                )?),
            request_timeout: duration("ROSTER_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)?,
            auth: auth_from(&var)?,
            cors_origins: list(var("ROSTER_CORS_ORIGINS"))
                .into_iter()
                .map(|origin| crate::policy::check_origin(&origin).map(|()| origin))
                .collect::<Result<_, _>>()?,
            allowed_hosts: var("ROSTER_ALLOWED_HOSTS").map(|hosts| list(Some(hosts))),
            graphiql,
            introspection: switch("ROSTER_INTROSPECTION", graphiql)?,
            limits: HttpLimits {
                header_timeout: duration("ROSTER_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT)?,
                body_timeout: duration("ROSTER_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)?,
                idle_timeout: duration("ROSTER_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT)?,
                max_connections: positive("ROSTER_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)?,
            },
            ..defaults
        })
    }

    /// Refuses to serve with authentication unset on an address other
    /// people can reach: `ROSTER_AUTH` must then be set, to `jwt` or,
    /// deliberately, to `none`.
    pub fn check(&self) -> Result<(), ServerError> {
        if self.auth.is_none() && !self.listen.ip().is_loopback() {
            return Err(ServerError::AuthUnset {
                listen: self.listen,
            });
        }
        Ok(())
    }

    /// The authentication in force: `ROSTER_AUTH`, or `none` when unset.
    pub fn auth(&self) -> AuthSettings {
        self.auth.clone().unwrap_or(AuthSettings::None)
    }
}

/// A comma-separated list, blanks dropped.
fn list(value: Option<String>) -> Vec<String> {
    value
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `ROSTER_AUTH` and the `ROSTER_JWT_*` variables.
fn auth_from(var: &impl Fn(&str) -> Option<String>) -> Result<Option<AuthSettings>, ServerError> {
    let bad =
        |var: &'static str, value: String, expected: &'static str, why: &str| ServerError::Config {
            var,
            value,
            expected,
            source: why.to_owned().into(),
        };
    let mode = var("ROSTER_AUTH").map(|m| m.trim().to_owned());
    match mode.as_deref() {
        None => Ok(None),
        Some("none") => Ok(Some(AuthSettings::None)),
        Some("jwt") => {
            let secret = var("ROSTER_JWT_SECRET").filter(|s| !s.is_empty());
            let public_key = var("ROSTER_JWT_PUBLIC_KEY").filter(|s| !s.is_empty());
            let key = match (secret, public_key) {
                (Some(secret), None) => JwtKey::Secret(secret),
                (None, Some(path)) => {
                    let pem = std::fs::read_to_string(&path).map_err(|e| ServerError::Config {
                        var: "ROSTER_JWT_PUBLIC_KEY",
                        value: path.clone(),
                        expected: "the path of a readable PEM file",
                        source: Box::new(e),
                    })?;
                    JwtKey::PublicKeyPem { path, pem }
                }
                (Some(_), Some(path)) => {
                    return Err(bad(
                        "ROSTER_JWT_PUBLIC_KEY",
                        path,
                        "unset when ROSTER_JWT_SECRET is set",
                        "ROSTER_AUTH=jwt takes one key: a secret (HS256) or a public key (RS256/ES256)",
                    ));
                }
                (None, None) => {
                    return Err(bad(
                        "ROSTER_AUTH",
                        "jwt".into(),
                        "jwt with ROSTER_JWT_SECRET or ROSTER_JWT_PUBLIC_KEY set",
                        "no key to check tokens with",
                    ));
                }
            };
            let settings = AuthSettings::Jwt {
                key,
                issuer: var("ROSTER_JWT_ISSUER").filter(|s| !s.is_empty()),
                audience: var("ROSTER_JWT_AUDIENCE").filter(|s| !s.is_empty()),
            };
            // Fails here, naming the variable, rather than at the first request.
            crate::auth::Auth::new(&settings)?;
            Ok(Some(settings))
        }
        Some(other) => Err(bad(
            "ROSTER_AUTH",
            other.to_owned(),
            "none or jwt",
            "unknown authentication mode",
        )),
    }
}

#[cfg(test)]
mod tests;
