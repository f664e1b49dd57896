//! How one chunk is written, per backend and mode.
//!
//! One statement where the database can count what it did by itself:
//! - PostgreSQL `Update`/`Ignore`: `INSERT … ON CONFLICT … DO UPDATE SET …,
//!   lastchange = GREATEST(EXCLUDED.lastchange, lastchange + 1 µs)` (or `DO
//!   NOTHING`) `RETURNING (xmax = 0)`, each returned row saying whether it
//!   was inserted, counted in the same statement (`WITH w AS (INSERT …)
//!   SELECT count(*) FILTER (…), count(*) FROM w`), so one row comes back;
//! - MySQL `Update` of a versioned table: `ON DUPLICATE KEY UPDATE`; the
//!   affected-rows count is 1 per insert and 2 per update (`lastchange`
//!   always changes), so both counts follow from it;
//! - SQLite `Ignore`: `ON CONFLICT DO NOTHING RETURNING 1`.
//!
//! Otherwise (SQLite `Update`, MySQL `Ignore`, every `UpdateIfUnchanged`)
//! the chunk first reads the stored rows of its keys with `FOR UPDATE`
//! (SQLite: the transaction holds the write lock from `BEGIN IMMEDIATE`),
//! decides row by row, then writes with one statement. A row another writer
//! inserted between the two statements makes the chunk fail with
//! [`Error::ConcurrentInsert`], which is retryable: the transaction runs
//! again.
//!
//! A PostgreSQL one-statement chunk's arrays are built by [`encode`], which
//! needs no connection: the stream builds the next chunk's while the
//! current one runs.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{self, Expr, ExprTrait, InsertStatement, Query, SimpleExpr, ValueTuple};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IdenStatic, ModelTrait, QueryFilter,
    QuerySelect, Statement, TransactionTrait,
};

use super::rows::{Batch, Key, Prepared, Row, key_of};
use super::unnest;
use roster_entity::StoreEntity;

use super::OnConflict;
use crate::error::{Error, Operation, Refusal, Result};
use crate::{Store, lastchange};

/// What a chunk did.
pub(super) struct Counts<M> {
    pub inserted: u64,
    pub updated: u64,
    pub ignored: u64,
    pub conflicts: Vec<M>,
}

/// What an existing row's columns become.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Left alone.
    Nothing,
    /// The given columns, and the version the row carries.
    Overwrite,
    /// The given columns, and the version bumped in SQL past the stored one.
    Bump,
}

/// How a chunk is written.
struct Plan {
    on_conflict: OnConflict,
    /// One statement, no read first.
    single: bool,
}

fn plan<E: StoreEntity>(prepared: &Prepared<E>, backend: DbBackend) -> Plan {
    let updatable = prepared.version.is_some() || data_columns(prepared).next().is_some();
    let on_conflict = match prepared.on_conflict {
        OnConflict::Update if !updatable => OnConflict::Ignore,
        other => other,
    };
    let single = match (backend, on_conflict) {
        (DbBackend::Postgres, OnConflict::Update | OnConflict::Ignore) => true,
        (DbBackend::MySql, OnConflict::Update) => prepared.version.is_some(),
        (DbBackend::Sqlite, OnConflict::Ignore) => true,
        _ => false,
    };
    Plan {
        on_conflict,
        single,
    }
}

/// The rows of `batch` in lock order: one order for every writer, fewer
/// deadlocks between chunks that overlap.
fn sorted<'a, E: StoreEntity>(prepared: &'a Prepared<E>, batch: &Batch) -> Vec<&'a Row> {
    let mut rows: Vec<&Row> = prepared.rows[batch.rows.clone()].iter().collect();
    rows.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    rows
}

/// What can be built of a chunk's statement before its transaction: on
/// PostgreSQL, when the chunk is one statement, its arrays (in lock
/// order). `None` otherwise.
pub(super) fn encode<E: StoreEntity>(
    prepared: &Prepared<E>,
    batch: &Batch,
    backend: DbBackend,
) -> Option<unnest::Arrays> {
    if !encodes(prepared, backend) {
        return None;
    }
    unnest::arrays(prepared, &sorted(prepared, batch))
}

/// Whether [`encode`] builds anything for this call's chunks.
pub(super) fn encodes<E: StoreEntity>(prepared: &Prepared<E>, backend: DbBackend) -> bool {
    backend == DbBackend::Postgres && plan(prepared, backend).single
}

/// Writes `batch` with `tx`, a store inside the chunk's transaction;
/// `encoded` is what [`encode`] built of it, if anything.
pub(super) async fn write<E: StoreEntity>(
    tx: &Store,
    prepared: &Prepared<E>,
    batch: &Batch,
    encoded: Option<&unnest::Arrays>,
    now: DateTime<Utc>,
) -> Result<Counts<E::Model>> {
    let backend = tx.backend();
    let Plan {
        on_conflict,
        single,
    } = plan(prepared, backend);
    let action = if on_conflict == OnConflict::Ignore {
        Action::Nothing
    } else {
        Action::Bump
    };
    if single && backend == DbBackend::Postgres {
        let total = batch.rows.len() as u64;
        let versions = match prepared.version {
            Some(_) => unnest::Versions::Same(now),
            None => unnest::Versions::None,
        };
        let built;
        let arrays = match encoded {
            Some(arrays) => Some(arrays),
            None => {
                built = encode(prepared, batch, backend);
                built.as_ref()
            }
        };
        let (inserted, written) = match arrays {
            Some(arrays) => pg_unnest(tx, prepared, arrays, versions, action).await?,
            None => {
                let stamp = prepared.version.map(|_| now);
                let rows: Vec<_> = sorted(prepared, batch)
                    .into_iter()
                    .map(|r| (r, stamp))
                    .collect();
                pg_values(tx, prepared, &rows, action).await?
            }
        };
        return Ok(Counts {
            inserted,
            updated: written - inserted,
            ignored: total - written,
            conflicts: Vec::new(),
        });
    }
    let rows = sorted(prepared, batch);
    if single {
        let stamp = prepared.version.map(|_| now);
        let versioned: Vec<_> = rows.iter().map(|r| (*r, stamp)).collect();
        return write_all::<E>(tx, prepared, &versioned, action).await;
    }
    read_then_write::<E>(tx, prepared, &rows, on_conflict, now).await
}

/// The one-statement plans of MySQL and SQLite.
async fn write_all<E: StoreEntity>(
    tx: &Store,
    prepared: &Prepared<E>,
    rows: &[(&Row, Option<DateTime<Utc>>)],
    action: Action,
) -> Result<Counts<E::Model>> {
    let backend = tx.backend();
    let conn = tx.connection();
    let mut insert = insert_statement(prepared, rows, backend, action)?;
    let total = rows.len() as u64;
    let err = |e| Error::from_db(Operation::Upsert, E::TABLE, e);
    let (inserted, updated) = match backend {
        DbBackend::MySql => {
            let affected = conn.execute(&insert).await.map_err(err)?.rows_affected();
            match action {
                // 1 per insert, 2 per update.
                Action::Bump | Action::Overwrite => {
                    let updated = affected.saturating_sub(total);
                    (total - updated, updated)
                }
                Action::Nothing => (affected, 0),
            }
        }
        _ => {
            insert.returning(Query::returning().expr(Expr::cust("1")));
            let returned = conn.query_all(&insert).await.map_err(err)?;
            (returned.len() as u64, 0)
        }
    };
    Ok(Counts {
        inserted,
        updated,
        ignored: total - inserted - updated,
        conflicts: Vec::new(),
    })
}

/// The plan that reads the stored rows first (locked), then writes.
async fn read_then_write<E: StoreEntity>(
    tx: &Store,
    prepared: &Prepared<E>,
    rows: &[&Row],
    on_conflict: OnConflict,
    now: DateTime<Utc>,
) -> Result<Counts<E::Model>> {
    let backend = tx.backend();
    let conn = tx.connection();
    let err = |e| Error::from_db(Operation::Upsert, E::TABLE, e);
    let mut select = E::find().filter(key_condition(prepared, rows));
    if backend != DbBackend::Sqlite {
        select = select.lock_exclusive();
    }
    let stored: std::collections::HashMap<Key, E::Model> = select
        .all(&conn)
        .await
        .map_err(err)?
        .into_iter()
        .map(|m| (stored_key(prepared, &m), m))
        .collect();

    let mut counts = Counts {
        inserted: 0,
        updated: 0,
        ignored: 0,
        conflicts: Vec::new(),
    };
    let mut writes: Vec<(&Row, Option<DateTime<Utc>>)> = Vec::with_capacity(rows.len());
    let versioned = prepared.version.is_some();
    for row in rows {
        let version = |expected: Option<DateTime<Utc>>| {
            versioned.then(|| expected.map_or(now, |e| lastchange::next(e, now)))
        };
        match (stored.get(&row.key), on_conflict) {
            (None, _) => {
                counts.inserted += 1;
                writes.push((row, version(row.expected)));
            }
            (Some(_), OnConflict::Ignore) => counts.ignored += 1,
            (Some(model), OnConflict::UpdateIfUnchanged) => {
                let current = E::version_of(model);
                if current.is_some() && current == row.expected.map(lastchange::truncate_to_micros)
                {
                    counts.updated += 1;
                    writes.push((row, version(current)));
                } else {
                    counts.conflicts.push(model.clone());
                }
            }
            (Some(model), _) => {
                counts.updated += 1;
                writes.push((row, version(E::version_of(model))));
            }
        }
    }
    if writes.is_empty() {
        return Ok(counts);
    }
    let action = if on_conflict == OnConflict::Ignore {
        Action::Nothing
    } else {
        Action::Overwrite
    };
    // A row inserted by another writer since the read: run the chunk again.
    let raced = match backend {
        DbBackend::Postgres => {
            let (inserted, _) = pg_write(tx, prepared, &writes, action).await?;
            inserted != counts.inserted
        }
        DbBackend::MySql => {
            let insert = insert_statement(prepared, &writes, backend, action)?;
            let affected = conn.execute(&insert).await.map_err(err)?.rows_affected();
            // Versioned rows always change: 1 per insert, 2 per update.
            versioned && affected != counts.inserted + 2 * counts.updated
        }
        // SQLite: the write lock is held since BEGIN IMMEDIATE.
        _ => {
            let insert = insert_statement(prepared, &writes, backend, action)?;
            conn.execute(&insert).await.map_err(err)?;
            false
        }
    };
    if raced {
        return Err(Error::ConcurrentInsert { table: E::TABLE });
    }
    Ok(counts)
}

/// Runs a PostgreSQL write of `rows` with their versions: the `unnest`
/// form when every column has an array type, else a `VALUES` list.
/// Returns (rows inserted, rows written).
async fn pg_write<E: StoreEntity>(
    tx: &Store,
    prepared: &Prepared<E>,
    rows: &[(&Row, Option<DateTime<Utc>>)],
    action: Action,
) -> Result<(u64, u64)> {
    let plain: Vec<&Row> = rows.iter().map(|(r, _)| *r).collect();
    match unnest::arrays(prepared, &plain) {
        Some(arrays) => {
            let versions = match prepared.version {
                Some(_) => unnest::Versions::Each(
                    rows.iter().map(|(_, v)| v.unwrap_or_default()).collect(),
                ),
                None => unnest::Versions::None,
            };
            pg_unnest(tx, prepared, &arrays, versions, action).await
        }
        None => pg_values(tx, prepared, rows, action).await,
    }
}

/// Runs the `unnest` form of a PostgreSQL write.
async fn pg_unnest<E: StoreEntity>(
    tx: &Store,
    prepared: &Prepared<E>,
    arrays: &unnest::Arrays,
    versions: unnest::Versions,
    action: Action,
) -> Result<(u64, u64)> {
    let on_existing = match action {
        Action::Nothing => unnest::OnExisting::Nothing,
        Action::Overwrite => unnest::OnExisting::Overwrite,
        Action::Bump => unnest::OnExisting::Bump,
    };
    let table = E::default().table_name().to_owned();
    let statement = unnest::statement(prepared, arrays, versions, on_existing, &table);
    pg_counts::<E>(tx, statement).await
}

/// Runs the `VALUES` form of a PostgreSQL write, for columns without an
/// array mapping.
async fn pg_values<E: StoreEntity>(
    tx: &Store,
    prepared: &Prepared<E>,
    rows: &[(&Row, Option<DateTime<Utc>>)],
    action: Action,
) -> Result<(u64, u64)> {
    let mut insert = insert_statement(prepared, rows, DbBackend::Postgres, action)?;
    insert.returning(Query::returning().expr(Expr::cust("(xmax = 0) AS \"inserted\"")));
    let (sql, values) = insert.build(sea_query::PostgresQueryBuilder);
    let sql = format!("WITH \"w\" AS ({sql}) {}", unnest::COUNT);
    pg_counts::<E>(
        tx,
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values),
    )
    .await
}

/// Runs a statement that returns (rows inserted, rows written).
async fn pg_counts<E: StoreEntity>(tx: &Store, statement: Statement) -> Result<(u64, u64)> {
    let err = |e| Error::from_db(Operation::Upsert, E::TABLE, e);
    let row = tx
        .connection()
        .query_one_raw(statement)
        .await
        .map_err(err)?
        .ok_or_else(|| {
            err(DbErr::RecordNotFound(
                "the upsert returned no counts".into(),
            ))
        })?;
    let inserted: i64 = row.try_get_by_index(0).map_err(err)?;
    let written: i64 = row.try_get_by_index(1).map_err(err)?;
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    Ok((count(inserted), count(written)))
}

/// Finds the row of `batch` the database refuses, by bisecting it with
/// savepoints in a transaction that is rolled back. Returns its position in
/// the caller's input.
pub(super) async fn find_bad_row<E: StoreEntity>(
    db: &DatabaseConnection,
    prepared: &Prepared<E>,
    batch: &Batch,
    now: DateTime<Utc>,
) -> Option<usize> {
    let backend = db.get_database_backend();
    let rows: Vec<(&Row, Option<DateTime<Utc>>)> = prepared.rows[batch.rows.clone()]
        .iter()
        .map(|r| (r, prepared.version.map(|_| now)))
        .collect();
    let fails = async |slice: &[(&Row, Option<DateTime<Utc>>)],
                       txn: &sea_orm::DatabaseTransaction| {
        let Ok(insert) = insert_statement(prepared, slice, backend, Action::Overwrite) else {
            return Some(true);
        };
        let savepoint = txn.begin().await.ok()?;
        let failed = savepoint.execute(&insert).await.is_err();
        savepoint.rollback().await.ok()?;
        Some(failed)
    };
    let txn = db.begin().await.ok()?;
    let (mut lo, mut hi) = (0, rows.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fails(&rows[lo..mid], &txn).await? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let found = hi > lo && fails(&rows[lo..hi], &txn).await?;
    txn.rollback().await.ok()?;
    found.then(|| prepared.positions[batch.rows.start + lo])
}

fn data_columns<E: StoreEntity>(prepared: &Prepared<E>) -> impl Iterator<Item = E::Column> + '_ {
    prepared.columns.iter().copied().filter(|c| {
        !prepared
            .key_columns
            .iter()
            .any(|k| k.as_str() == c.as_str())
    })
}

fn insert_statement<E: StoreEntity>(
    prepared: &Prepared<E>,
    rows: &[(&Row, Option<DateTime<Utc>>)],
    backend: DbBackend,
    action: Action,
) -> Result<InsertStatement> {
    let mut columns = prepared.columns.clone();
    columns.extend(prepared.version);
    let mut insert = Query::insert();
    insert.into_table(E::default()).columns(columns);
    for (row, version) in rows {
        let mut values: Vec<SimpleExpr> = row.values.iter().cloned().map(Expr::val).collect();
        if let Some(version) = version {
            values.push(lastchange::value(backend, *version));
        }
        insert
            .values(values)
            .map_err(|e| Error::refused(E::TABLE, Refusal::unbuildable(e)))?;
    }
    insert.on_conflict(on_conflict_clause(prepared, backend, action));
    Ok(insert)
}

fn on_conflict_clause<E: StoreEntity>(
    prepared: &Prepared<E>,
    backend: DbBackend,
    action: Action,
) -> sea_query::OnConflict {
    let mut clause = sea_query::OnConflict::columns(prepared.key_columns.clone());
    let data: Vec<E::Column> = data_columns(prepared).collect();
    let version = prepared.version;
    if action == Action::Nothing || (data.is_empty() && version.is_none()) {
        if backend == DbBackend::MySql {
            clause.do_nothing_on(prepared.key_columns.clone());
        } else {
            clause.do_nothing();
        }
        return clause;
    }
    match (action, version) {
        (Action::Bump, Some(v)) => {
            clause.update_columns(data);
            clause.value(v, Expr::cust(bump_sql::<E>(backend, v.as_str())));
        }
        (_, Some(v)) => {
            clause.update_columns(data.into_iter().chain([v]));
        }
        (_, None) => {
            clause.update_columns(data);
        }
    }
    clause
}

/// `max(new, stored + 1 µs)` for the version column, in the backend's SQL.
fn bump_sql<E: StoreEntity>(backend: DbBackend, column: &str) -> String {
    let table = E::default().table_name().to_owned();
    match backend {
        DbBackend::MySql => {
            format!("GREATEST(VALUES(`{column}`), `{column}` + INTERVAL 1 MICROSECOND)")
        }
        _ => format!(
            r#"GREATEST("excluded"."{column}", "{table}"."{column}" + INTERVAL '1 microsecond')"#
        ),
    }
}

fn key_condition<E: StoreEntity>(prepared: &Prepared<E>, rows: &[&Row]) -> SimpleExpr {
    let index: Vec<usize> = prepared
        .key_columns
        .iter()
        .filter_map(|k| {
            prepared
                .columns
                .iter()
                .position(|c| c.as_str() == k.as_str())
        })
        .collect();
    if let [only] = index[..] {
        let column = prepared.columns[only];
        return Expr::col(column).is_in(rows.iter().map(|r| r.values[only].clone()));
    }
    Expr::tuple(index.iter().map(|i| Expr::col(prepared.columns[*i]))).in_tuples(
        rows.iter()
            .map(|r| ValueTuple::Many(index.iter().map(|i| r.values[*i].clone()).collect())),
    )
}

/// The key of a stored row, made as [`Row::key`] is.
fn stored_key<E: StoreEntity>(prepared: &Prepared<E>, model: &E::Model) -> Key {
    let key: Vec<sea_orm::Value> = prepared.key_columns.iter().map(|c| model.get(*c)).collect();
    key_of(key.iter())
}
