//! [`Cluster`]: a primary and its read replicas, as one handle shared by
//! every request of a process.
//!
//! - **Read routing.** Each request reads from one healthy replica, chosen
//!   round-robin ([`Cluster::read_route`]), until it writes; its writes and
//!   transactions, and every read after its first write, run on the
//!   primary. A replica is healthy while it answers, is still a replica,
//!   and lags the primary by at most
//!   [`PoolSettings::replica_max_lag`](crate::PoolSettings::replica_max_lag);
//!   a background task checks every
//!   [`replica_check_every`](crate::PoolSettings::replica_check_every). A
//!   read that fails because its replica went away runs again on the
//!   primary.
//! - **Causal reads.** [`Cluster::position`] is the primary's
//!   [`CommitPosition`] after a write; a later request given it reads from a
//!   replica that has applied it (waiting at most
//!   [`causal_wait`](crate::PoolSettings::causal_wait)) or else from the
//!   primary. Without a position, a read may be as old as the allowed lag.
//! - **Failover.** The primary URL may list several candidate hosts
//!   ([`candidate_urls`]); the primary is the one that takes writes. When it
//!   stops answering or turns read-only, the next check looks for the new
//!   one among the candidates and later requests write there.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use roster_store::{Cluster, PoolSettings};
//!
//! let settings = PoolSettings::default()
//!     .replicas(["postgres://app@db-replica-1/roster", "postgres://app@db-replica-2/roster"]);
//! let cluster = Cluster::connect("postgres://app@db-primary-1,db-primary-2/roster", &settings).await?;
//!
//! // One request that writes, then one that must see the write.
//! let store = cluster.store(None).await?;
//! // … store.insert(…) …
//! let position = cluster.position().await?; // hand it to the client
//!
//! let later = cluster.store(position.as_ref()).await?; // reads include the write
//! # let _ = later; Ok(()) }
//! ```

mod candidates;
mod health;
mod position;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use roster_loader::{LoaderMetrics, OnReplicaFailure, ReadRoute};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};

pub use candidates::candidate_urls;
pub use health::ReplicaStatus;
pub use position::{BadPosition, CommitPosition, MAX_TOKEN_BYTES};

use crate::{Loaders, PoolSettings, Store};
use health::{History, ReplicaState};

/// How long finding the primary may spend on one candidate host.
const PER_CANDIDATE: Duration = Duration::from_secs(2);

/// The longest a replica's pool waits for a connection: a replica that
/// cannot give one quickly is skipped for the primary, not waited for.
const REPLICA_ACQUIRE: Duration = Duration::from_secs(1);

/// Called on every pool the cluster opens (say, to count its statements).
pub type OnOpen = Arc<dyn Fn(&mut DatabaseConnection) + Send + Sync>;

/// Why a cluster could not be set up or a read could not be routed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A URL could not be read.
    #[error("bad database URL: {why}")]
    BadUrl {
        /// What is wrong with it.
        why: &'static str,
    },
    /// A pool could not be opened.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// `host:port` of the server.
        endpoint: String,
        /// The driver's error.
        #[source]
        source: DbErr,
    },
    /// No candidate host answered as a primary.
    #[error("no primary among the candidate hosts: {}", tried.join("; "))]
    NoPrimary {
        /// Each candidate with what it answered.
        tried: Vec<String>,
    },
    /// Several candidate hosts take writes: none is used, since writing to
    /// the wrong one would lose data. Turn the old primary into a replica
    /// (or stop it).
    #[error("several candidate hosts take writes ({}); refusing to choose", writable.join(", "))]
    SeveralPrimaries {
        /// `host:port` of each.
        writable: Vec<String>,
    },
    /// The replicas and the primary are not the same kind of database.
    #[error("replica {endpoint} is {replica:?}, the primary is {primary:?}")]
    MixedBackends {
        /// `host:port` of the replica.
        endpoint: String,
        /// The replica's backend.
        replica: DbBackend,
        /// The primary's backend.
        primary: DbBackend,
    },
    /// A commit position of another kind of database than this cluster's.
    #[error("a {given:?} commit position given to a {cluster:?} cluster")]
    WrongBackend {
        /// The position's backend.
        given: DbBackend,
        /// The cluster's backend.
        cluster: DbBackend,
    },
}

/// Where a request's reads were routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The primary: no healthy replica, none had reached the position asked
    /// for in time, or the cluster has no replicas.
    Primary,
    /// The replica at this index of
    /// [`PoolSettings::replicas`](crate::PoolSettings::replicas).
    Replica(usize),
}

impl ReadFrom {
    /// `"primary"` or `"replica"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Replica(_) => "replica",
        }
    }
}

/// A request's read route and where it points.
#[derive(Debug, Clone)]
pub struct ReadTarget {
    /// Hand it to [`Loaders::routed`].
    pub route: ReadRoute,
    /// Where reads go (until the request writes).
    pub from: ReadFrom,
}

impl ReadTarget {
    /// A [`Store`] for the request: reads through this route (with loaders
    /// of its own), writes to the route's primary.
    pub fn into_store(self) -> Store {
        let primary = self.route.primary_connection().clone();
        let loaders = Loaders::routed(self.route, Arc::new(LoaderMetrics::new()));
        Store::with_loaders(primary, loaders)
    }
}

/// A primary and its read replicas, with their health. Cheap to clone;
/// share one per process. See the [module documentation](self).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    backend: DbBackend,
    /// Single-host URLs the primary may be at.
    candidates: Vec<String>,
    primary: RwLock<Primary>,
    replicas: Vec<Replica>,
    /// Round-robin position.
    next: AtomicUsize,
    /// The primary answered that it keeps no commit positions.
    no_positions: AtomicBool,
    history: Mutex<History>,
    settings: PoolSettings,
    on_open: Option<OnOpen>,
    checker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Primary {
    db: DatabaseConnection,
    /// Index in `candidates`.
    at: usize,
}

struct Replica {
    endpoint: String,
    db: DatabaseConnection,
    state: Mutex<ReplicaState>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .checker
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl Cluster {
    /// Connects to the primary at `url` (one host, or several candidates:
    /// [`candidate_urls`]) and to the replicas of `settings`, checks the
    /// replicas once, and starts checking them in the background (this
    /// needs a Tokio runtime). A replica that is down is not an error: it
    /// is skipped until it answers.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, ClusterError> {
        Self::connect_with(url, settings, None).await
    }

    /// [`connect`](Self::connect), calling `on_open` on every pool opened
    /// (now and after a failover).
    pub async fn connect_with(
        url: &str,
        settings: &PoolSettings,
        on_open: Option<OnOpen>,
    ) -> Result<Self, ClusterError> {
        let settings = &bounded(settings);
        let candidates = candidate_urls(url)?;
        let (at, mut primary) = if candidates.len() == 1 {
            let db = open(&candidates[0], settings, false)
                .await
                .map_err(|source| ClusterError::Connect {
                    endpoint: endpoint(&candidates[0]),
                    source,
                })?;
            (0, db)
        } else {
            candidates::find_primary(&candidates, settings, PER_CANDIDATE).await?
        };
        if let Some(hook) = &on_open {
            hook(&mut primary);
        }
        let backend = primary.get_database_backend();
        let mut replicas = Vec::with_capacity(settings.replicas.len());
        for url in &settings.replicas {
            let mut db =
                open(url, settings, true)
                    .await
                    .map_err(|source| ClusterError::Connect {
                        endpoint: endpoint(url),
                        source,
                    })?;
            if db.get_database_backend() != backend {
                return Err(ClusterError::MixedBackends {
                    endpoint: endpoint(url),
                    replica: db.get_database_backend(),
                    primary: backend,
                });
            }
            if let Some(hook) = &on_open {
                hook(&mut db);
            }
            replicas.push(Replica {
                endpoint: endpoint(url),
                db,
                state: Mutex::new(ReplicaState::unchecked()),
            });
        }
        let cluster = Self {
            inner: Arc::new(Inner {
                backend,
                candidates,
                primary: RwLock::new(Primary { db: primary, at }),
                replicas,
                next: AtomicUsize::new(0),
                no_positions: AtomicBool::new(false),
                history: Mutex::new(History::default()),
                settings: settings.clone(),
                on_open,
                checker: Mutex::new(None),
            }),
        };
        if cluster.watched() {
            cluster.check_now().await;
            let task = tokio::spawn(health::watch(
                Arc::downgrade(&cluster.inner),
                settings.replica_check_every,
            ));
            *cluster
                .inner
                .checker
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(task);
        }
        Ok(cluster)
    }

    /// A cluster of one server, `db`, with no replicas and nothing checked
    /// in the background.
    pub fn single(db: DatabaseConnection) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend: db.get_database_backend(),
                candidates: Vec::new(),
                primary: RwLock::new(Primary { db, at: 0 }),
                replicas: Vec::new(),
                next: AtomicUsize::new(0),
                no_positions: AtomicBool::new(false),
                history: Mutex::new(History::default()),
                settings: PoolSettings::default(),
                on_open: None,
                checker: Mutex::new(None),
            }),
        }
    }

    /// Whether anything needs checking: replicas, or candidates to fail
    /// over to.
    fn watched(&self) -> bool {
        !self.inner.replicas.is_empty() || self.inner.candidates.len() > 1
    }

    /// The primary's pool now (after a failover, the new primary's).
    pub fn primary(&self) -> DatabaseConnection {
        self.inner
            .primary
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .db
            .clone()
    }

    /// The URL of the primary now: one of the candidates, with its
    /// credentials (do not log it), e.g. to run migrations there.
    pub fn primary_url(&self) -> String {
        let at = self
            .inner
            .primary
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .at;
        self.inner.candidates.get(at).cloned().unwrap_or_default()
    }

    /// `host:port` of the primary now.
    pub fn primary_endpoint(&self) -> String {
        let at = self
            .inner
            .primary
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .at;
        self.inner
            .candidates
            .get(at)
            .map(|url| endpoint(url))
            .unwrap_or_default()
    }

    /// The database backend.
    pub fn backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// Whether the cluster has read replicas.
    pub fn has_replicas(&self) -> bool {
        !self.inner.replicas.is_empty()
    }

    /// Each replica's health as last checked.
    pub fn replicas(&self) -> Vec<ReplicaStatus> {
        self.inner
            .replicas
            .iter()
            .map(|r| r.state().status(&r.endpoint))
            .collect()
    }

    /// The primary's commit position now: every write acknowledged so far
    /// is at or before it. `None` on a database without one (SQLite,
    /// MariaDB without a binary log); once a primary has answered that it
    /// has none, it is not asked again.
    pub async fn position(&self) -> Result<Option<CommitPosition>, DbErr> {
        if self.inner.backend == DbBackend::Sqlite
            || self.inner.no_positions.load(Ordering::Relaxed)
        {
            return Ok(None);
        }
        let position = CommitPosition::of_primary(&self.primary()).await?;
        if position.is_none() {
            self.inner.no_positions.store(true, Ordering::Relaxed);
        }
        Ok(position)
    }

    /// Where a request's reads should run: a healthy replica (round-robin)
    /// that has applied `after`, if given, waiting at most
    /// [`causal_wait`](crate::PoolSettings::causal_wait) for one to get
    /// there; else the primary.
    pub async fn read_route(
        &self,
        after: Option<&CommitPosition>,
    ) -> Result<ReadTarget, ClusterError> {
        if let Some(position) = after
            && position.backend() != self.inner.backend
        {
            return Err(ClusterError::WrongBackend {
                given: position.backend(),
                cluster: self.inner.backend,
            });
        }
        let primary = self.primary();
        let chosen = match after {
            None => self.healthy().into_iter().next(),
            Some(position) => self.caught_up(position).await,
        };
        Ok(match chosen {
            Some(i) => {
                let weak = Arc::downgrade(&self.inner);
                let on_failure: OnReplicaFailure = Arc::new(move |err: &DbErr| {
                    if let Some(inner) = weak.upgrade() {
                        inner.replicas[i].state().failed(err.to_string());
                    }
                });
                ReadTarget {
                    route: ReadRoute::replica(
                        primary,
                        self.inner.replicas[i].db.clone(),
                        Some(on_failure),
                    ),
                    from: ReadFrom::Replica(i),
                }
            }
            None => ReadTarget {
                route: ReadRoute::primary(primary),
                from: ReadFrom::Primary,
            },
        })
    }

    /// A [`Store`] for one request: its reads routed by
    /// [`read_route`](Self::read_route), its writes to the primary.
    pub async fn store(&self, after: Option<&CommitPosition>) -> Result<Store, ClusterError> {
        Ok(self.read_route(after).await?.into_store())
    }

    /// A handle that does not keep the cluster (its pools and its checks)
    /// alive: for what outlives requests, such as metrics.
    pub fn downgrade(&self) -> WeakCluster {
        WeakCluster(Arc::downgrade(&self.inner))
    }

    /// Checks the primary and every replica now (the background task does
    /// this every [`replica_check_every`](crate::PoolSettings::replica_check_every)).
    pub async fn check_now(&self) {
        health::check(&self.inner).await;
    }

    /// The healthy replicas, starting at the next in round-robin order.
    fn healthy(&self) -> Vec<usize> {
        let count = self.inner.replicas.len();
        if count == 0 {
            return Vec::new();
        }
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|k| (start + k) % count)
            .filter(|&i| {
                self.inner.replicas[i]
                    .state()
                    .usable(self.inner.settings.replica_max_lag)
            })
            .collect()
    }

    /// A healthy replica that has applied `position`: one already known to
    /// have, else the first to get there within the causal wait.
    async fn caught_up(&self, position: &CommitPosition) -> Option<usize> {
        let healthy = self.healthy();
        let known = healthy.iter().copied().find(|&i| {
            self.inner.replicas[i]
                .state()
                .position
                .as_ref()
                .is_some_and(|at| at.reached(position))
        });
        if known.is_some() {
            return known;
        }
        let &first = healthy.first()?;
        let deadline = Instant::now()
            .checked_add(self.inner.settings.causal_wait)
            .unwrap_or_else(Instant::now);
        let replica = &self.inner.replicas[first];
        let mut pause = Duration::from_millis(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let asked = tokio::time::timeout(left, CommitPosition::of_replica(&replica.db)).await;
            match asked {
                Ok(Ok(Some(at))) if at.reached(position) => {
                    replica.state().position = Some(at);
                    return Some(first);
                }
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("backend", &self.inner.backend)
            .field("primary", &self.primary_endpoint())
            .field("replicas", &self.replicas())
            .finish()
    }
}

impl Replica {
    fn state(&self) -> std::sync::MutexGuard<'_, ReplicaState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`Cluster`] that is not kept alive by this handle.
#[derive(Clone, Debug, Default)]
pub struct WeakCluster(std::sync::Weak<Inner>);

impl WeakCluster {
    /// The cluster, if anything else still holds it.
    pub fn upgrade(&self) -> Option<Cluster> {
        self.0.upgrade().map(|inner| Cluster { inner })
    }
}

/// The longest causal wait and allowed lag taken (a minute: anything
/// longer is a mistake, and would overflow a deadline if huge).
const LONGEST: Duration = Duration::from_secs(60);

/// `settings` with the cluster's durations within bounds: checks at least
/// every 10 ms, a causal wait and an allowed lag of at most a minute.
fn bounded(settings: &PoolSettings) -> PoolSettings {
    let mut settings = settings.clone();
    settings.replica_check_every = settings
        .replica_check_every
        .clamp(Duration::from_millis(10), LONGEST);
    settings.causal_wait = settings.causal_wait.min(LONGEST);
    settings.replica_max_lag = settings.replica_max_lag.min(LONGEST);
    settings
}

/// Opens a pool on `url` with `settings`; `replica` pools connect lazily
/// (a replica that is down must not stop the server from starting) and
/// wait at most [`REPLICA_ACQUIRE`] for a connection.
async fn open(
    url: &str,
    settings: &PoolSettings,
    replica: bool,
) -> Result<DatabaseConnection, DbErr> {
    let mut options: ConnectOptions = crate::pool::connect_options(url, settings);
    if replica {
        options
            .connect_lazy(true)
            .acquire_timeout(settings.acquire_timeout.min(REPLICA_ACQUIRE));
    }
    Database::connect(options).await
}

/// `host[:port]` of `url`, without credentials: how a server is named in
/// errors, logs and metrics.
pub(crate) fn endpoint(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}
