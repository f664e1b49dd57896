//! The contenders: ways a request can turn id lookups into rows. Each request
//! builds a fresh [`Session`] (a fresh loader and cache, where there is one)
//! over the same pool.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Result, anyhow};
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::future::try_join_all;
use roster::entity::user;
use roster::loader::{EntitySource, Loader, LoaderOptions, LoaderScope};
use sea_orm::sqlx::{self, AssertSqlSafe, Row as _};
use sea_orm::{ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter};

use crate::dataset::{Conn, Counter};

/// Every contender, in table order.
pub const ALL: [Contender; 8] = [
    Contender::Roster,
    Contender::RawSqlx,
    Contender::SeaOrmBatched,
    Contender::AsyncGraphql,
    Contender::AsyncGraphqlZeroDelay,
    Contender::DataloaderCrate,
    Contender::DataloaderCrateBatch1000,
    Contender::NaiveN1,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contender {
    /// Roster's `Loader` over an `EntitySource`, with a `LoaderScope`.
    Roster,
    /// One hand-written sqlx statement per request with the exact id set.
    RawSqlx,
    /// sea-orm's own `find().filter(id.is_in(..))`, one per request.
    SeaOrmBatched,
    /// async-graphql's `DataLoader` (default 1 ms delay, batches of 1,000).
    AsyncGraphql,
    /// async-graphql's `DataLoader` with `.delay(Duration::ZERO)`.
    AsyncGraphqlZeroDelay,
    /// The `dataloader` crate's cached loader, default settings (batches of 200).
    DataloaderCrate,
    /// The `dataloader` crate with `with_max_batch_size(1000)`.
    DataloaderCrateBatch1000,
    /// sea-orm `find_by_id` per load, concurrently over the pool.
    NaiveN1,
}

impl Contender {
    /// The short name `--only` takes.
    pub fn key(self) -> &'static str {
        match self {
            Contender::Roster => "roster",
            Contender::RawSqlx => "raw",
            Contender::SeaOrmBatched => "seaorm",
            Contender::AsyncGraphql => "agql",
            Contender::AsyncGraphqlZeroDelay => "agql0",
            Contender::DataloaderCrate => "dataloader",
            Contender::DataloaderCrateBatch1000 => "dataloader1000",
            Contender::NaiveN1 => "naive",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Contender::Roster => "roster Loader",
            Contender::RawSqlx => "raw sqlx (floor)",
            Contender::SeaOrmBatched => "sea-orm batched (ceiling)",
            Contender::AsyncGraphql => "async-graphql DataLoader",
            Contender::AsyncGraphqlZeroDelay => "async-graphql DataLoader, delay 0",
            Contender::DataloaderCrate => "dataloader crate",
            Contender::DataloaderCrateBatch1000 => "dataloader crate, batch 1000",
            Contender::NaiveN1 => "naive N+1 (find_by_id)",
        }
    }

    /// Whether it is a per-load loader (as opposed to one query per request).
    pub fn is_loader_peer(self) -> bool {
        matches!(
            self,
            Contender::AsyncGraphql
                | Contender::AsyncGraphqlZeroDelay
                | Contender::DataloaderCrate
                | Contender::DataloaderCrateBatch1000
        )
    }
}

/// The row type every contender produces.
pub type UserRow = user::Model;

/// async-graphql's loader over the same sea-orm query as `EntitySource`'s.
pub struct AgqlUsers {
    db: DatabaseConnection,
}

impl async_graphql::dataloader::Loader<i64> for AgqlUsers {
    type Value = UserRow;
    type Error = std::sync::Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, UserRow>, Self::Error> {
        let rows = user::Entity::find()
            .filter(user::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(std::sync::Arc::new)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// The `dataloader` crate's batch function, same query. Its API cannot
/// return an error: a failed batch panics (answers are `Option<UserRow>`).
#[derive(Clone)]
pub struct DlUsers {
    db: DatabaseConnection,
}

impl dataloader::BatchFn<i64, Option<UserRow>> for DlUsers {
    async fn load(&mut self, keys: &[i64]) -> HashMap<i64, Option<UserRow>> {
        let rows = user::Entity::find()
            .filter(user::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .expect("dataloader crate batch: the query failed");
        let mut found: HashMap<i64, Option<UserRow>> = keys.iter().map(|&k| (k, None)).collect();
        for row in rows {
            found.insert(row.id, Some(row));
        }
        found
    }
}

type AgqlLoader =
    async_graphql::dataloader::DataLoader<AgqlUsers, async_graphql::dataloader::HashMapCache>;
type DlLoader = dataloader::cached::Loader<i64, Option<UserRow>, DlUsers>;

/// One request's state for one contender.
pub enum Session {
    Roster(Loader<UserRow>),
    Raw(Raw),
    Batched(Conn),
    Agql(AgqlLoader),
    Dl(DlLoader),
    Naive(Conn),
}

impl Session {
    /// A fresh session (new loader, empty cache) for one request.
    pub fn new(contender: Contender, conn: &Conn) -> Session {
        let db = conn.db.clone();
        match contender {
            Contender::Roster => Session::Roster(Loader::with_options(
                EntitySource::<user::Entity>::new(db),
                LoaderOptions::default().scope(LoaderScope::new()),
            )),
            Contender::RawSqlx => Session::Raw(Raw::new(conn)),
            Contender::SeaOrmBatched => Session::Batched(conn.clone()),
            Contender::AsyncGraphql | Contender::AsyncGraphqlZeroDelay => {
                let loader = async_graphql::dataloader::DataLoader::with_cache(
                    AgqlUsers { db },
                    tokio::spawn,
                    async_graphql::dataloader::HashMapCache::default(),
                );
                Session::Agql(if contender == Contender::AsyncGraphqlZeroDelay {
                    loader.delay(Duration::ZERO)
                } else {
                    loader
                })
            }
            Contender::DataloaderCrate => Session::Dl(DlLoader::new(DlUsers { db })),
            Contender::DataloaderCrateBatch1000 => {
                Session::Dl(DlLoader::new(DlUsers { db }).with_max_batch_size(1000))
            }
            Contender::NaiveN1 => Session::Naive(conn.clone()),
        }
    }

    /// One load, as a resolver would issue it: whether it found its row.
    /// Each contender answers in its own API's form (Roster with a shared
    /// `Arc` of the row, the others with a row of their own).
    pub async fn load(&self, id: i64) -> Result<bool> {
        Ok(match self {
            Session::Roster(loader) => loader.load(id).await?.is_some(),
            Session::Raw(raw) => raw.fetch(&[id]).await?.pop().is_some(),
            Session::Batched(conn) => user::Entity::find()
                .filter(user::Column::Id.is_in([id]))
                .all(&conn.db)
                .await?
                .pop()
                .is_some(),
            Session::Agql(loader) => loader
                .load_one(id)
                .await
                .map_err(|e| anyhow!("{e}"))?
                .is_some(),
            Session::Dl(loader) => loader.try_load(id).await?.is_some(),
            Session::Naive(conn) => user::Entity::find_by_id(id).one(&conn.db).await?.is_some(),
        })
    }

    /// All of a request's loads, issued concurrently (loaders), or answered
    /// from one query over the distinct ids (raw, sea-orm batched, each
    /// load then getting its own copy of its row, as a resolver would).
    /// Returns how many loads found their row.
    pub async fn load_all(&self, ids: &[i64]) -> Result<usize> {
        fn found<T>(answers: &[Option<T>]) -> usize {
            answers.iter().flatten().count()
        }
        match self {
            Session::Raw(_) | Session::Batched(_) => {
                let distinct: Vec<i64> = {
                    let mut seen = HashSet::with_capacity(ids.len());
                    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
                };
                let rows = match self {
                    Session::Raw(raw) => raw.fetch(&distinct).await?,
                    Session::Batched(conn) => {
                        user::Entity::find()
                            .filter(user::Column::Id.is_in(distinct))
                            .all(&conn.db)
                            .await?
                    }
                    _ => unreachable!("matched above"),
                };
                let by_id: HashMap<i64, UserRow> = rows.into_iter().map(|r| (r.id, r)).collect();
                let answers: Vec<Option<UserRow>> =
                    ids.iter().map(|id| by_id.get(id).cloned()).collect();
                Ok(found(&answers))
            }
            // Each loader's own future type: a join over `Session::load`
            // futures would make every load as large as the largest
            // contender's future.
            Session::Roster(loader) => Ok(found(
                &try_join_all(ids.iter().map(|&id| loader.load(id))).await?,
            )),
            Session::Agql(loader) => {
                let answers = try_join_all(ids.iter().map(|&id| loader.load_one(id)))
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                Ok(found(&answers))
            }
            Session::Dl(loader) => Ok(found(
                &try_join_all(ids.iter().map(|&id| loader.try_load(id))).await?,
            )),
            Session::Naive(conn) => Ok(found(
                &try_join_all(
                    ids.iter()
                        .map(|&id| user::Entity::find_by_id(id).one(&conn.db)),
                )
                .await?,
            )),
        }
    }
}

/// The floor: sqlx on sea-orm's own pool, one hand-written statement.
pub struct Raw {
    pool: RawPool,
    statements: Counter,
}

enum RawPool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

const COLUMNS: &str = r#"id, name, surname, email, lastchange, "externalId""#;
const MYSQL_COLUMNS: &str = "id, name, surname, email, lastchange, `externalId`";

impl Raw {
    fn new(conn: &Conn) -> Raw {
        let pool = match conn.db.get_database_backend() {
            DbBackend::Postgres => {
                RawPool::Postgres(conn.db.get_postgres_connection_pool().clone())
            }
            DbBackend::MySql => RawPool::MySql(conn.db.get_mysql_connection_pool().clone()),
            _ => RawPool::Sqlite(conn.db.get_sqlite_connection_pool().clone()),
        };
        Raw {
            pool,
            statements: conn.statements.clone(),
        }
    }

    /// `WHERE id = ANY($1)` on PostgreSQL, an exact `IN (?, …)` elsewhere.
    pub async fn fetch(&self, ids: &[i64]) -> Result<Vec<UserRow>> {
        self.statements.add();
        let placeholders = || vec!["?"; ids.len()].join(", ");
        match &self.pool {
            RawPool::Postgres(pool) => {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM users WHERE id = ANY($1)"
                )))
                .bind(ids)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(UserRow {
                            id: r.try_get(0)?,
                            name: r.try_get(1)?,
                            surname: r.try_get(2)?,
                            email: r.try_get(3)?,
                            lastchange: r.try_get(4)?,
                            external_id: r.try_get(5)?,
                        })
                    })
                    .collect()
            }
            RawPool::MySql(pool) => {
                let sql = format!(
                    "SELECT {MYSQL_COLUMNS} FROM users WHERE id IN ({})",
                    placeholders()
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for id in ids {
                    query = query.bind(id);
                }
                let rows = query.fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(UserRow {
                            id: r.try_get(0)?,
                            name: r.try_get(1)?,
                            surname: r.try_get(2)?,
                            email: r.try_get(3)?,
                            lastchange: r.try_get::<NaiveDateTime, _>(4)?.and_utc(),
                            external_id: r.try_get(5)?,
                        })
                    })
                    .collect()
            }
            RawPool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM users WHERE id IN ({})",
                    placeholders()
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for id in ids {
                    query = query.bind(id);
                }
                let rows = query.fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(UserRow {
                            id: r.try_get(0)?,
                            name: r.try_get(1)?,
                            surname: r.try_get(2)?,
                            email: r.try_get(3)?,
                            lastchange: r.try_get::<DateTime<Utc>, _>(4)?,
                            external_id: r.try_get(5)?,
                        })
                    })
                    .collect()
            }
        }
    }
}
