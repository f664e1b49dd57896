//! The benchmark's own database: created fresh, migrated with Roster's
//! migrations, seeded with a fixed data set (same seed, same rows, every run).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use roster::entity::{group, grouptype, user, users_groups};
use roster::migrations::Action;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait,
    QueryOrder, QuerySelect,
};

/// Group types, groups, users, memberships per user.
pub const GROUP_TYPES: usize = 20;
pub const GROUPS: usize = 500;
pub const USERS: usize = 10_000;
pub const MEMBERSHIPS_PER_USER: usize = 5;
/// Rows per bulk `INSERT`.
const CHUNK: usize = 1_000;
/// The data set's seed.
pub const SEED: u64 = 7;

/// The backends the benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
    MySql,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
            Backend::MySql => "MariaDB",
        }
    }
}

/// How the pool checks a connection out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolCheck {
    /// sqlx's and sea-orm's default: a ping on every checkout.
    PingEveryCheckout,
    /// `test_before_acquire(false)`: no ping.
    NoPing,
    /// `test_before_acquire_if_idle_for(30 s)`: ping only connections idle that long.
    PingIfIdle30s,
}

impl PoolCheck {
    pub fn label(self) -> &'static str {
        match self {
            PoolCheck::PingEveryCheckout => "default (ping every checkout)",
            PoolCheck::NoPing => "test_before_acquire(false)",
            PoolCheck::PingIfIdle30s => "test_before_acquire_if_idle_for(30 s)",
        }
    }
}

/// A seeded benchmark database.
pub struct BenchDb {
    pub backend: Backend,
    pub url: String,
    /// Every user id, ascending.
    pub user_ids: Vec<i64>,
    /// The server's version string.
    pub server_version: String,
    /// Keeps the SQLite file alive.
    _dir: Option<tempfile::TempDir>,
    admin_url: Option<String>,
}

/// A connection to the benchmark database that counts the statements sea-orm
/// issues (raw sqlx contenders count their own through [`Counter`]).
#[derive(Clone)]
pub struct Conn {
    pub db: DatabaseConnection,
    pub statements: Counter,
}

/// A shared statement counter.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const BENCH_DB: &str = "roster_bench";

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl BenchDb {
    /// Creates (or recreates) the benchmark database, migrates and seeds it.
    pub async fn create(backend: Backend) -> Result<BenchDb> {
        let (url, dir, admin_url) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("roster-bench-")
                    .tempdir()
                    .context("create a temporary directory")?;
                let path = dir.path().join("roster_bench.db");
                (
                    format!("sqlite://{}?mode=rwc", path.display()),
                    Some(dir),
                    None,
                )
            }
            Backend::Postgres | Backend::MySql => {
                let admin_url = match backend {
                    Backend::Postgres => env_or(
                        "ROSTER_TEST_POSTGRES",
                        "postgres://postgres@127.0.0.1:5432/postgres",
                    ),
                    _ => env_or("ROSTER_TEST_MYSQL", "mysql://root@127.0.0.1:3306/mysql"),
                };
                let admin = connect(&admin_url, PoolCheck::PingEveryCheckout).await?;
                let (drop, create) = match backend {
                    Backend::Postgres => (
                        format!("DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"),
                        format!("CREATE DATABASE {BENCH_DB}"),
                    ),
                    _ => (
                        format!("DROP DATABASE IF EXISTS {BENCH_DB}"),
                        format!(
                            "CREATE DATABASE {BENCH_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                        ),
                    ),
                };
                admin.execute_unprepared(&drop).await.context("drop")?;
                admin.execute_unprepared(&create).await.context("create")?;
                admin.close().await.ok();
                (with_database(&admin_url, BENCH_DB), None, Some(admin_url))
            }
        };
        roster::migrations::run(&url, Action::Up { steps: None })
            .await
            .with_context(|| format!("migrate {url}"))?;
        let db = connect(&url, PoolCheck::NoPing).await?;
        seed(&db).await?;
        let user_ids: Vec<i64> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .order_by_asc(user::Column::Id)
            .into_tuple()
            .all(&db)
            .await?;
        anyhow::ensure!(user_ids.len() == USERS, "seeded {} users", user_ids.len());
        let version_sql = match backend {
            Backend::Postgres => "SELECT version()",
            Backend::MySql => "SELECT VERSION()",
            Backend::Sqlite => "SELECT 'SQLite ' || sqlite_version()",
        };
        let server_version = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                version_sql,
            ))
            .await?
            .and_then(|row| row.try_get_by_index::<String>(0).ok())
            .unwrap_or_default();
        db.close().await.ok();
        Ok(BenchDb {
            backend,
            url,
            user_ids,
            server_version,
            _dir: dir,
            admin_url,
        })
    }

    /// A fresh pool to the database, counting statements.
    pub async fn conn(&self, check: PoolCheck) -> Result<Conn> {
        let mut db = connect(&self.url, check).await?;
        let statements = Counter::default();
        let sink = statements.clone();
        db.set_metric_callback(move |_| sink.add());
        Ok(Conn { db, statements })
    }

    /// Drops the server-side database (SQLite's file goes with `self`).
    pub async fn drop_database(self) -> Result<()> {
        if let Some(admin_url) = &self.admin_url {
            let admin = connect(admin_url, PoolCheck::PingEveryCheckout).await?;
            let sql = match self.backend {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS {BENCH_DB}"),
            };
            admin.execute_unprepared(&sql).await?;
            admin.close().await.ok();
        }
        Ok(())
    }
}

async fn connect(url: &str, check: PoolCheck) -> Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .acquire_timeout(std::time::Duration::from_secs(10));
    match check {
        PoolCheck::PingEveryCheckout => {}
        PoolCheck::NoPing => {
            options.test_before_acquire(false);
        }
        PoolCheck::PingIfIdle30s => {
            options.test_before_acquire_if_idle_for(std::time::Duration::from_secs(30));
        }
    }
    Database::connect(options)
        .await
        .with_context(|| format!("connect to {url}"))
}

/// The fixed `lastchange` of every seeded row (whole microseconds).
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Seeds the data set in bulk inserts of [`CHUNK`] rows.
async fn seed(db: &DatabaseConnection) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let at = epoch();
    let types: Vec<_> = (0..GROUP_TYPES)
        .map(|i| grouptype::ActiveModel {
            id: NotSet,
            name: Set(Some(format!("type {i}"))),
            lastchange: Set(at),
        })
        .collect();
    grouptype::Entity::insert_many(types)
        .exec_without_returning(db)
        .await
        .context("seed grouptypes")?;
    let type_ids: Vec<i64> = ids_of::<grouptype::Entity>(db, grouptype::Column::Id).await?;

    for chunk in (0..GROUPS).collect::<Vec<_>>().chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|&i| group::ActiveModel {
                id: NotSet,
                name: Set(Some(format!("group {i}"))),
                lastchange: Set(at),
                entry_year_id: Set(Some(2000 + (i % 25) as i32)),
                external_id: Set(Some(format!("G{i:05}"))),
                grouptype_id: Set(Some(type_ids[i % type_ids.len()])),
            })
            .collect();
        group::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .context("seed groups")?;
    }
    let group_ids: Vec<i64> = ids_of::<group::Entity>(db, group::Column::Id).await?;

    for chunk in (0..USERS).collect::<Vec<_>>().chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|&i| user::ActiveModel {
                id: NotSet,
                name: Set(Some(format!("Name{i}"))),
                surname: Set(Some(format!("Surname{}", rng.random_range(0..5_000)))),
                email: Set(Some(format!("user{i}@example.org"))),
                lastchange: Set(at),
                external_id: Set(Some(1_000_000 + i as i64)),
            })
            .collect();
        user::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .context("seed users")?;
    }
    let user_ids: Vec<i64> = ids_of::<user::Entity>(db, user::Column::Id).await?;

    let mut memberships = Vec::with_capacity(USERS * MEMBERSHIPS_PER_USER);
    for &user_id in &user_ids {
        let mut groups = group_ids.clone();
        let (picked, _) = groups.partial_shuffle(&mut rng, MEMBERSHIPS_PER_USER);
        for &group_id in picked.iter() {
            memberships.push((user_id, group_id));
        }
    }
    for chunk in memberships.chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|&(user_id, group_id)| users_groups::ActiveModel {
                id: NotSet,
                user_id: Set(user_id),
                group_id: Set(group_id),
            })
            .collect();
        users_groups::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .context("seed users_groups")?;
    }
    match db.get_database_backend() {
        DbBackend::Postgres => db.execute_unprepared("ANALYZE").await.map(drop)?,
        DbBackend::Sqlite => db.execute_unprepared("ANALYZE").await.map(drop)?,
        _ => db
            .execute_unprepared("ANALYZE TABLE users, `groups`, grouptypes, users_groups")
            .await
            .map(drop)?,
    }
    Ok(())
}

async fn ids_of<E: EntityTrait>(db: &DatabaseConnection, id: E::Column) -> Result<Vec<i64>> {
    Ok(E::find()
        .select_only()
        .column(id)
        .order_by_asc(id)
        .into_tuple()
        .all(db)
        .await?)
}
