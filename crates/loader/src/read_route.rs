//! [`ReadRoute`]: where one request's reads run. A request served next to
//! read replicas reads from the replica chosen for it until it writes;
//! from then on (and whenever the replica fails mid-request) it reads from
//! the primary, so the request keeps reading its own writes.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{DatabaseConnection, DbBackend, DbErr};

use crate::db_error;

/// Called when a replica failed a read: its health state should know.
pub type OnReplicaFailure = Arc<dyn Fn(&DbErr) + Send + Sync>;

/// Where a request's reads run: the primary, or a replica until the request
/// writes ([`pin_to_primary`](Self::pin_to_primary)).
///
/// Cheap to clone; clones share the pin. A plain `DatabaseConnection`
/// converts into a route that always reads from it, so every source that
/// takes a route also takes a connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let primary = sea_orm::Database::connect("sqlite::memory:").await?;
/// # let replica = sea_orm::Database::connect("sqlite::memory:").await?;
/// use roster_loader::ReadRoute;
///
/// let route = ReadRoute::replica(primary, replica, None);
/// assert!(route.on_replica());
/// route.wrote(); // the request wrote: read your writes
/// assert!(!route.on_replica());
/// assert!(route.written());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReadRoute {
    inner: Arc<Inner>,
}

struct Inner {
    primary: DatabaseConnection,
    replica: Option<DatabaseConnection>,
    pinned: AtomicBool,
    written: AtomicBool,
    on_failure: Option<OnReplicaFailure>,
}

impl ReadRoute {
    /// Reads from `primary` only.
    pub fn primary(primary: DatabaseConnection) -> Self {
        Self::new(primary, None, None)
    }

    /// Reads from `replica` until the route is pinned to `primary`. A read
    /// the replica fails for want of a connection (it is down or
    /// unreachable) pins the route and runs again on the primary, after
    /// telling `on_failure`.
    pub fn replica(
        primary: DatabaseConnection,
        replica: DatabaseConnection,
        on_failure: Option<OnReplicaFailure>,
    ) -> Self {
        Self::new(primary, Some(replica), on_failure)
    }

    fn new(
        primary: DatabaseConnection,
        replica: Option<DatabaseConnection>,
        on_failure: Option<OnReplicaFailure>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                primary,
                replica,
                pinned: AtomicBool::new(false),
                written: AtomicBool::new(false),
                on_failure,
            }),
        }
    }

    /// The connection reads run on now.
    pub fn connection(&self) -> &DatabaseConnection {
        match &self.inner.replica {
            Some(replica) if !self.inner.pinned.load(Ordering::Acquire) => replica,
            _ => &self.inner.primary,
        }
    }

    /// The primary's connection (writes and transactions).
    pub fn primary_connection(&self) -> &DatabaseConnection {
        &self.inner.primary
    }

    /// Whether reads run on a replica now.
    pub fn on_replica(&self) -> bool {
        self.inner.replica.is_some() && !self.inner.pinned.load(Ordering::Acquire)
    }

    /// From now on, this route's reads (and its clones') run on the primary.
    pub fn pin_to_primary(&self) {
        self.inner.pinned.store(true, Ordering::Release);
    }

    /// The request wrote: reads run on the primary from now on, and
    /// [`written`](Self::written) says so.
    pub fn wrote(&self) {
        self.inner.written.store(true, Ordering::Release);
        self.pin_to_primary();
    }

    /// Whether the request has written (see [`wrote`](Self::wrote)).
    pub fn written(&self) -> bool {
        self.inner.written.load(Ordering::Acquire)
    }

    /// The backend (the same for the primary and its replicas).
    pub fn backend(&self) -> DbBackend {
        self.inner.primary.get_database_backend()
    }

    /// Runs the read `query` where reads run now. If it failed on a replica
    /// because the replica could not be reached or refused work for now (it
    /// is shutting down, starting up, or a Galera node out of sync), pins
    /// the route and runs it once more on the primary; if the replica cancelled it (a conflict
    /// with recovery, a serialization failure), runs it on the primary.
    pub async fn read<'a, T, F, Fut>(&'a self, query: F) -> Result<T, DbErr>
    where
        F: Fn(&'a DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<T, DbErr>> + 'a,
    {
        let on_replica = self.on_replica();
        match query(self.connection()).await {
            Err(err)
                if on_replica
                    && (db_error::is_unreachable(&err) || db_error::is_refused_for_now(&err)) =>
            {
                if let Some(report) = &self.inner.on_failure {
                    report(&err);
                }
                tracing::warn!(error = %err, "replica unreachable; reading from the primary");
                self.pin_to_primary();
                query(&self.inner.primary).await
            }
            // A hot standby cancels a query that conflicts with the WAL it
            // replays (40001): this read runs on the primary instead.
            Err(err) if on_replica && db_error::is_transient(&err) => {
                tracing::debug!(error = %err, "read cancelled on the replica; reading from the primary");
                query(&self.inner.primary).await
            }
            result => result,
        }
    }
}

impl From<DatabaseConnection> for ReadRoute {
    fn from(db: DatabaseConnection) -> Self {
        Self::primary(db)
    }
}

impl From<&DatabaseConnection> for ReadRoute {
    fn from(db: &DatabaseConnection) -> Self {
        Self::primary(db.clone())
    }
}

impl fmt::Debug for ReadRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadRoute")
            .field("backend", &self.backend())
            .field("has_replica", &self.inner.replica.is_some())
            .field("on_replica", &self.on_replica())
            .finish()
    }
}
