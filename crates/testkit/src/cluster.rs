//! The database clusters `scripts/cluster.sh` runs on loopback, for the
//! tests of replication, Galera and PgBouncer, and fresh databases on them.
//!
//! - [`pg_cluster`]: a PostgreSQL primary and its hot standbys
//!   (`ROSTER_TEST_PG_REPLICA`, required by the name `pg-replica`).
//! - [`galera`]: the nodes of a MariaDB Galera cluster
//!   (`ROSTER_TEST_GALERA`, `galera`).
//! - [`pgbouncer`]: PgBouncer in front of the PostgreSQL cluster's primary
//!   (`ROSTER_TEST_PGBOUNCER`, `pgbouncer`).
//! - [`ClusterDb`]: a fresh database on a cluster with one URL per node,
//!   dropped by a guard when the test ends (as [`TestDb`](crate::TestDb)).
//!
//! Each cluster is checked once per test binary and announced on stderr like
//! a backend (see [`discovery`](crate::discovery)): unset or unreachable, its
//! tests print a `SKIP` line and return, or panic when `ROSTER_TEST_REQUIRE`
//! lists its name.
//!
//! ```no_run
//! # async fn f() {
//! let Some(galera) = roster_testkit::cluster::galera("my_test").await else {
//!     return; // skipped
//! };
//! let db = galera.create_db("my_test").await;
//! db.migrate().await;
//! // one pool per node: db.url(0), db.url(1), db.url(2)
//! # }
//! ```

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use tokio::sync::OnceCell;

use crate::discovery::{Backend, admin_connect, announce, named_notice, required};
use crate::test_db::{
    drop_database, drop_detached, end_mysql_sessions, unique_name, with_database,
};

/// A PostgreSQL primary and its streaming replicas (hot standbys), by admin
/// URL (database `postgres`).
#[derive(Debug, Clone)]
pub struct PgCluster {
    /// The primary: tests create their databases here.
    pub primary: String,
    /// The replicas, in the variable's order. A delayed one tells itself
    /// apart by `SHOW recovery_min_apply_delay`.
    pub replicas: Vec<String>,
}

/// The nodes of a MariaDB Galera cluster, by admin URL (database `mysql`).
#[derive(Debug, Clone)]
pub struct GaleraCluster {
    /// Every node; databases are created through the first.
    pub nodes: Vec<String>,
}

/// PgBouncer in front of the PostgreSQL cluster's primary: a database
/// created on [`PgBouncer::cluster`] is reached through it by name.
#[derive(Debug, Clone)]
pub struct PgBouncer {
    /// PgBouncer's admin URL (database `postgres`).
    pub url: String,
    /// The cluster whose primary PgBouncer forwards to.
    pub cluster: PgCluster,
}

/// A cluster the tests look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PgReplica,
    Galera,
    PgBouncer,
}

impl Kind {
    /// Its name in `ROSTER_TEST_REQUIRE`.
    fn name(self) -> &'static str {
        match self {
            Kind::PgReplica => "pg-replica",
            Kind::Galera => "galera",
            Kind::PgBouncer => "pgbouncer",
        }
    }

    /// The variable holding its comma-separated URLs.
    fn var(self) -> &'static str {
        match self {
            Kind::PgReplica => "ROSTER_TEST_PG_REPLICA",
            Kind::Galera => "ROSTER_TEST_GALERA",
            Kind::PgBouncer => "ROSTER_TEST_PGBOUNCER",
        }
    }
}

static PG_REPLICA_FOUND: OnceCell<Result<Vec<String>, String>> = OnceCell::const_new();
static GALERA_FOUND: OnceCell<Result<Vec<String>, String>> = OnceCell::const_new();
static PGBOUNCER_FOUND: OnceCell<Result<Vec<String>, String>> = OnceCell::const_new();

/// The PostgreSQL cluster, or `None` (after a `SKIP` line naming `test`)
/// when it is not there.
///
/// # Panics
/// When it is unset or unreachable and `ROSTER_TEST_REQUIRE` lists
/// `pg-replica`.
pub async fn pg_cluster(test: &str) -> Option<PgCluster> {
    let urls = found(Kind::PgReplica, test).await?;
    Some(pg_cluster_of(urls))
}

/// The Galera cluster, or `None` (after a `SKIP` line) when it is not there.
///
/// # Panics
/// When it is unset or unreachable and `ROSTER_TEST_REQUIRE` lists `galera`.
pub async fn galera(test: &str) -> Option<GaleraCluster> {
    let nodes = found(Kind::Galera, test).await?;
    Some(GaleraCluster { nodes })
}

/// PgBouncer and the PostgreSQL cluster behind it, or `None` (after a `SKIP`
/// line) when either is not there.
///
/// # Panics
/// When PgBouncer or the cluster is unset or unreachable and
/// `ROSTER_TEST_REQUIRE` lists `pgbouncer`.
pub async fn pgbouncer(test: &str) -> Option<PgBouncer> {
    let mut urls = found(Kind::PgBouncer, test).await?;
    let url = urls.remove(0);
    Some(PgBouncer {
        url,
        cluster: pg_cluster_of(urls),
    })
}

fn pg_cluster_of(mut urls: Vec<String>) -> PgCluster {
    let primary = urls.remove(0);
    PgCluster {
        primary,
        replicas: urls,
    }
}

/// `kind`'s URLs if it is there; `None` after a `SKIP` line if not.
async fn found(kind: Kind, test: &str) -> Option<Vec<String>> {
    match availability(kind).await {
        Ok(urls) => Some(urls),
        Err(e) if required(kind.name()) => panic!(
            "{} is required (ROSTER_TEST_REQUIRE) but not available ({}): {e}",
            kind.name(),
            kind.var()
        ),
        Err(_) => {
            announce(&format!(
                "roster-testkit: SKIP {test}: {} unavailable\n",
                kind.name()
            ));
            None
        }
    }
}

/// Checks `kind` once per test binary and announces the outcome. PgBouncer's
/// URLs are its own followed by the PostgreSQL cluster's.
async fn availability(kind: Kind) -> Result<Vec<String>, String> {
    let cell = match kind {
        Kind::PgReplica => &PG_REPLICA_FOUND,
        Kind::Galera => &GALERA_FOUND,
        Kind::PgBouncer => &PGBOUNCER_FOUND,
    };
    cell.get_or_init(|| async move {
        let value = std::env::var(kind.var()).unwrap_or_default();
        let result = check(kind, &value).await;
        let at = if value.is_empty() {
            kind.var().to_owned()
        } else {
            value
        };
        let shown = result.as_ref().map(|_| ()).map_err(Clone::clone);
        announce(&format!(
            "{}\n",
            named_notice(kind.name(), &at, &shown, required(kind.name()))
        ));
        result
    })
    .await
    .clone()
}

/// Connects to every URL of `value` and checks its role.
async fn check(kind: Kind, value: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err("unset; `scripts/cluster.sh env` prints it".into());
    }
    match kind {
        Kind::PgReplica => {
            if urls.len() < 2 {
                return Err("a primary and at least one replica are needed".into());
            }
            for (i, url) in urls.iter().enumerate() {
                let conn = admin_connect(url)
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let standby = scalar::<bool>(&conn, "SELECT pg_is_in_recovery()").await?;
                let _ = conn.close().await;
                if standby != (i > 0) {
                    let role = if i == 0 { "primary" } else { "replica" };
                    return Err(format!("{url} is listed as a {role} but is not one"));
                }
            }
            Ok(urls)
        }
        Kind::Galera => {
            for url in &urls {
                let conn = admin_connect(url)
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let size = scalar::<String>(
                    &conn,
                    "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                     WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE'",
                )
                .await?;
                let _ = conn.close().await;
                if size != urls.len().to_string() {
                    return Err(format!(
                        "{url}: wsrep_cluster_size is {size}, not {}",
                        urls.len()
                    ));
                }
            }
            Ok(urls)
        }
        Kind::PgBouncer => {
            if urls.len() != 1 {
                return Err(format!("{} holds one URL", kind.var()));
            }
            // Simple-protocol statements only: this is a pool through
            // PgBouncer, where the test is what sqlx's prepared ones do.
            let conn = admin_connect(&urls[0])
                .await
                .map_err(|e| format!("{}: {e}", urls[0]))?;
            let _ = conn.close().await;
            let cluster = Box::pin(availability(Kind::PgReplica))
                .await
                .map_err(|e| format!("the PostgreSQL cluster behind it: {e}"))?;
            Ok(urls.into_iter().chain(cluster).collect())
        }
    }
}

/// The first column of the first row of `sql`.
async fn scalar<T: sea_orm::TryGetable>(
    conn: &sea_orm::DatabaseConnection,
    sql: &str,
) -> Result<T, String> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .map_err(|e| format!("{sql}: {e}"))?
        .ok_or_else(|| format!("{sql}: no row"))?;
    row.try_get_by_index(0).map_err(|e| format!("{sql}: {e}"))
}

impl PgCluster {
    /// A fresh database, created on the primary (the replicas get it when
    /// they replay the primary's WAL: see [`ClusterDb::wait_for_database_on`]).
    ///
    /// # Panics
    /// If the database cannot be created.
    pub async fn create_db(&self, test: &str) -> ClusterDb {
        let nodes = std::iter::once(&self.primary).chain(&self.replicas);
        ClusterDb::create(Backend::Postgres, nodes.cloned().collect(), test).await
    }
}

impl GaleraCluster {
    /// A fresh database, created through the first node; Galera replicates
    /// the `CREATE DATABASE` to the others before it returns.
    ///
    /// # Panics
    /// If the database cannot be created.
    pub async fn create_db(&self, test: &str) -> ClusterDb {
        ClusterDb::create(Backend::MySql, self.nodes.clone(), test).await
    }
}

impl PgBouncer {
    /// The URL of `db` (made by [`PgCluster::create_db`] on
    /// [`PgBouncer::cluster`]) through PgBouncer.
    pub fn url_of(&self, db: &ClusterDb) -> String {
        with_database(&self.url, db.name())
    }
}

/// A fresh database on a cluster, named `rt_<test>_<random>`, with one URL
/// per node (node 0 is where it was created: the primary, or Galera's
/// first node). Dropped when it goes out of scope, after the connections
/// still using it on any node are ended.
#[derive(Debug)]
pub struct ClusterDb {
    backend: Backend,
    name: String,
    /// Every node's admin URL, node 0 first.
    admin_urls: Vec<String>,
    urls: Vec<String>,
}

/// How often the waits of [`ClusterDb`] look again.
const POLL: Duration = Duration::from_millis(50);

impl ClusterDb {
    async fn create(backend: Backend, admin_urls: Vec<String>, test: &str) -> ClusterDb {
        let name = unique_name(test);
        let admin = admin_connect(&admin_urls[0])
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", admin_urls[0]));
        let create = match backend {
            Backend::MySql => {
                format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            }
            _ => format!("CREATE DATABASE \"{name}\""),
        };
        admin
            .execute_unprepared(&create)
            .await
            .unwrap_or_else(|e| panic!("{create}: {e}"));
        let _ = admin.close().await;
        let urls = admin_urls
            .iter()
            .map(|url| with_database(url, &name))
            .collect();
        ClusterDb {
            backend,
            name,
            admin_urls,
            urls,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL on every node, node 0 (primary, first Galera node) first.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Its URL on node `node`.
    ///
    /// # Panics
    /// If the cluster has no such node.
    pub fn url(&self, node: usize) -> &str {
        &self.urls[node]
    }

    /// Applies Roster's migrations through node 0.
    ///
    /// # Panics
    /// If a migration fails.
    pub async fn migrate(&self) {
        let action = roster_migrations::Action::Up { steps: None };
        if let Err(e) = roster_migrations::run(&self.urls[0], action).await {
            panic!("migrate {}: {e:?}", self.urls[0]);
        }
    }

    /// Waits until node `node` has this database (a PostgreSQL replica has
    /// replayed its `CREATE DATABASE`; a delayed one only after its delay).
    ///
    /// # Panics
    /// If it does not within `timeout`.
    pub async fn wait_for_database_on(&self, node: usize, timeout: Duration) {
        let sql = match self.backend {
            Backend::MySql => {
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?"
            }
            _ => "SELECT COUNT(*) FROM pg_database WHERE datname = $1",
        };
        let statement = Statement::from_sql_and_values(
            self.backend.db_backend(),
            sql,
            [self.name.clone().into()],
        );
        let url = &self.admin_urls[node];
        let admin = admin_connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = admin
                .query_one_raw(statement.clone())
                .await
                .ok()
                .flatten()
                .and_then(|row| row.try_get_by_index::<i64>(0).ok());
            if found == Some(1) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not appear on {url} within {timeout:?}",
                self.name
            );
            tokio::time::sleep(POLL).await;
        }
        let _ = admin.close().await;
    }

    /// PostgreSQL: waits until replica `node` has replayed everything the
    /// primary had written when called (this database's schema and rows
    /// included).
    ///
    /// # Panics
    /// On Galera (whose nodes apply in step), or if the replica does not
    /// catch up within `timeout`.
    pub async fn wait_for_replay_on(&self, node: usize, timeout: Duration) {
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "only PostgreSQL replicas replay"
        );
        let primary = admin_connect(&self.admin_urls[0])
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.admin_urls[0]));
        let lsn: String = scalar(&primary, "SELECT pg_current_wal_lsn()::text")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = primary.close().await;
        let url = &self.admin_urls[node];
        let replica = admin_connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        let caught_up =
            format!("SELECT COALESCE(pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn, false)");
        let deadline = tokio::time::Instant::now() + timeout;
        while !scalar::<bool>(&replica, &caught_up)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url} did not replay up to {lsn} within {timeout:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        let _ = replica.close().await;
    }
}

impl Drop for ClusterDb {
    fn drop(&mut self) {
        let (backend, name, admin_urls) =
            (self.backend, self.name.clone(), self.admin_urls.clone());
        drop_detached(&self.name, async move {
            if backend == Backend::MySql {
                // Every Galera node's sessions in the database end first:
                // one left inside a transaction would hold the metadata
                // lock the replicated DROP waits for on its node.
                for url in &admin_urls[1..] {
                    let admin = admin_connect(url).await?;
                    end_mysql_sessions(&admin, &name).await?;
                    let _ = admin.close().await;
                }
            }
            drop_database(backend, &admin_urls[0], &name).await
        });
    }
}
