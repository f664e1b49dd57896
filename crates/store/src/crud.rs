//! Reads and writes of one entity: `get`, `insert`, `update`, `delete`,
//! `filter`, `page`, `select`, `stream`; any [`StoreEntity`], with
//! optimistic concurrency where it is [`Versioned`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use roster_entity::{StoreEntity, Versioned};
use roster_loader::Loader;
use sea_orm::sea_query::{Expr, Query, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, Condition, ConnectionTrait, DbBackend,
    FromQueryResult, IdenStatic, Iterable, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, TransactionTrait,
};

use crate::error::{Conflict, Error, Operation, Refusal, Result};
use crate::{Store, lastchange};

/// The largest page [`Store::page`] returns.
pub const MAX_PAGE: u64 = 10_000;

/// How many times a single write outside a transaction runs after the
/// database rolled it back on a retryable error.
const ALONE_RETRIES: u32 = 4;

impl Store {
    /// The request's loader of `E`'s rows by id (made on first use); the
    /// store keeps it current with its writes.
    ///
    /// The loaders read through the pool, never inside a transaction: on a
    /// store bound to one, use [`get`](Self::get) (which reads in the
    /// transaction) to see the transaction's own writes; the loaders see
    /// them once it commits.
    pub fn loader<E: StoreEntity>(&self) -> Loader<E::Model> {
        self.loaders.by_id::<E>()
    }

    /// The row with this id, or `None`. Outside a transaction this goes
    /// through the request's loader (batched with concurrent calls, cached);
    /// inside one it reads in the transaction.
    pub async fn get<E>(&self, id: i64) -> Result<Option<E::Model>>
    where
        E: StoreEntity,
    {
        if self.tx.is_none() {
            return Ok(self.loader::<E>().load(id).await?.map(Arc::unwrap_or_clone));
        }
        find_by_id::<E, _>(&self.connection(), id)
            .await
            .map_err(|e| Error::from_db(Operation::Get, E::TABLE, e))
    }

    /// Inserts a row and returns it as stored (id and `lastchange` set).
    ///
    /// Columns left `NotSet` take their defaults (the id from the sequence
    /// or auto-increment). On a versioned table `lastchange` is always the
    /// current time, truncated to microseconds.
    ///
    /// Outside a transaction, an insert the database rolled back on a
    /// retryable error runs again, a few times, as for [`Store::update`].
    pub async fn insert<E>(&self, row: E::ActiveModel) -> Result<E::Model>
    where
        E: StoreEntity,
    {
        if self.backend() == DbBackend::MySql {
            // Its INSERT commits before the row is read back: only the
            // INSERT is run again (inside `insert_once`).
            return self.insert_once::<E>(row).await;
        }
        self.alone_retried(|| self.insert_once::<E>(row.clone()))
            .await
    }

    async fn insert_once<E>(&self, row: E::ActiveModel) -> Result<E::Model>
    where
        E: StoreEntity,
    {
        self.check_writable(E::TABLE)?;
        let backend = self.backend();
        let now = lastchange::truncate_to_micros(Utc::now());
        let lastchange_name = E::version_column().map(|c| c.as_str());
        let mut columns = Vec::new();
        let mut values: Vec<SimpleExpr> = Vec::new();
        for column in E::Column::iter() {
            if Some(column.as_str()) == lastchange_name {
                columns.push(column);
                values.push(lastchange::value(backend, now));
            } else if let ActiveValue::Set(v) | ActiveValue::Unchanged(v) = row.get(column) {
                columns.push(column);
                values.push(Expr::val(v));
            }
        }
        let mut insert = Query::insert();
        insert
            .into_table(E::default())
            .columns(columns)
            .values(values)
            .map_err(|e| Error::refused(E::TABLE, Refusal::unbuildable(e)))?;
        let insert_err = |e| Error::from_db(Operation::Insert, E::TABLE, e);
        let model = if backend == DbBackend::MySql {
            let conn = self.connection();
            let result = self
                .alone_retried(|| async { conn.execute(&insert).await.map_err(insert_err) })
                .await?;
            let id = match row.get(E::id_column()) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => id_from_value(v),
                ActiveValue::NotSet => i64::try_from(result.last_insert_id()).ok(),
            };
            let id = id.ok_or(Error::refused(E::TABLE, Refusal::NoUsableId))?;
            // Outside a transaction the row is stored by now: a failure to
            // read it back must not look like a write to retry.
            let read_back_err = |e| match self.tx {
                Some(_) => insert_err(e),
                None => Error::WriteUnknown {
                    operation: Operation::Insert,
                    table: E::TABLE,
                    source: e,
                },
            };
            find_by_id::<E, _>(&conn, id)
                .await
                .map_err(read_back_err)?
                .ok_or(Error::NotFound {
                    table: E::TABLE,
                    id,
                })?
        } else {
            insert.returning_all();
            // Read to the end, not just the first row: on SQLite an
            // autocommit statement commits when it is stepped past its last
            // row, and a commit that fails (the database busy) must fail the
            // insert, not vanish with a dropped cursor.
            let row = self
                .connection()
                .query_all(&insert)
                .await
                .map_err(insert_err)?
                .into_iter()
                .next()
                .ok_or(Error::refused(E::TABLE, Refusal::NoRowReturned))?;
            E::Model::from_query_result(&row, "").map_err(insert_err)?
        };
        let cached = model.clone();
        self.after_write(move |loaders| loaders.wrote::<E>(Ok(&cached)));
        Ok(model)
    }

    /// Updates the row `id` if its `lastchange` is still `expected`, in one
    /// atomic statement (`UPDATE … WHERE id = ? AND lastchange = ?`), and
    /// returns the row as stored.
    ///
    /// Only the `Set` fields of `changes` are written; the others stay.
    /// `lastchange` becomes `max(now, expected + 1 µs)`. If no row matched,
    /// the row is read again: [`Error::NotFound`] if it is gone,
    /// [`Error::Conflict`] with the stored row if it changed.
    ///
    /// Outside a transaction, a statement the database rolled back on a
    /// retryable error (a deadlock, a serialization failure, a Galera
    /// certification failure: [`Error::is_retryable`]) runs again, a few
    /// times: the repeat writes, or finds the row that won and answers
    /// [`Error::Conflict`].
    pub async fn update<E>(
        &self,
        id: i64,
        expected: DateTime<Utc>,
        changes: E::ActiveModel,
    ) -> Result<E::Model>
    where
        E: Versioned,
    {
        self.alone_retried(|| self.update_once::<E>(id, expected, changes.clone()))
            .await
    }

    async fn update_once<E>(
        &self,
        id: i64,
        expected: DateTime<Utc>,
        changes: E::ActiveModel,
    ) -> Result<E::Model>
    where
        E: Versioned,
    {
        self.check_writable(E::TABLE)?;
        // `Versioned` is derived only for a table with a version column.
        let version =
            E::version_column().ok_or_else(|| Error::refused(E::TABLE, Refusal::NotVersioned))?;
        let backend = self.backend();
        let expected = lastchange::truncate_to_micros(expected);
        let new = lastchange::next(expected, Utc::now());
        let mut update = E::update_many();
        for column in E::Column::iter() {
            let ActiveValue::Set(value) = changes.get(column) else {
                continue;
            };
            if column.as_str() == version.as_str() {
                return Err(Error::refused(E::TABLE, Refusal::LastchangeSet));
            }
            if column.as_str() == E::id_column().as_str() {
                if id_from_value(value) != Some(id) {
                    return Err(Error::refused(E::TABLE, Refusal::IdChanged { id }));
                }
                continue;
            }
            update = update.col_expr(column, Expr::val(value));
        }
        let update = update
            .col_expr(version, lastchange::value(backend, new))
            .filter(E::id_column().eq(id))
            .filter(lastchange::equals(backend, version, expected));
        let update_err = |e| Error::from_db(Operation::Update, E::TABLE, e);

        let updated = if backend == DbBackend::MySql {
            // No UPDATE … RETURNING: update and read back in one transaction,
            // so the row returned is the row this update wrote. (sqlx sets
            // CLIENT_FOUND_ROWS: `rows_affected` counts matched rows, so an
            // update that writes identical values still counts.)
            match &self.tx {
                Some(_) => {
                    let conn = self.connection();
                    if update.exec(&conn).await.map_err(update_err)?.rows_affected == 0 {
                        None
                    } else {
                        find_by_id::<E, _>(&conn, id).await.map_err(update_err)?
                    }
                }
                None => {
                    let txn = self.db.begin().await.map_err(update_err)?;
                    let found = if update.exec(&txn).await.map_err(update_err)?.rows_affected == 0 {
                        None
                    } else {
                        find_by_id::<E, _>(&txn, id).await.map_err(update_err)?
                    };
                    txn.commit().await.map_err(update_err)?;
                    found
                }
            }
        } else {
            update
                .exec_with_returning(&self.connection())
                .await
                .map_err(update_err)?
                .into_iter()
                .next()
        };

        let Some(model) = updated else {
            return Err(self.mismatch::<E>(id, expected, Operation::Update).await);
        };
        let cached = model.clone();
        self.after_write(move |loaders| loaders.wrote::<E>(Ok(&cached)));
        Ok(model)
    }

    /// Deletes the row `id`; with `expected`, only if its `lastchange` is
    /// still that (one atomic statement, like [`Store::update`]).
    ///
    /// [`Error::NotFound`] if there is no such row, [`Error::Conflict`] if it
    /// changed, [`Error::Invalid`] if other rows still reference it (a group
    /// type that groups use). A user's or group's memberships go with it.
    /// An `expected` version on a table without one is refused
    /// ([`Refusal::NotVersioned`]).
    ///
    /// Outside a transaction, a delete the database rolled back on a
    /// retryable error runs again, a few times, as for [`Store::update`].
    pub async fn delete<E>(&self, id: i64, expected: Option<DateTime<Utc>>) -> Result<()>
    where
        E: StoreEntity,
    {
        self.alone_retried(|| self.delete_once::<E>(id, expected))
            .await
    }

    async fn delete_once<E>(&self, id: i64, expected: Option<DateTime<Utc>>) -> Result<()>
    where
        E: StoreEntity,
    {
        self.check_writable(E::TABLE)?;
        let backend = self.backend();
        let expected = expected.map(lastchange::truncate_to_micros);
        let mut delete = E::delete_many().filter(E::id_column().eq(id));
        if let Some(expected) = expected {
            let Some(column) = E::version_column() else {
                return Err(Error::refused(E::TABLE, Refusal::NotVersioned));
            };
            delete = delete.filter(lastchange::equals(backend, column, expected));
        }
        let deleted = delete
            .exec(&self.connection())
            .await
            .map_err(|e| Error::from_db(Operation::Delete, E::TABLE, e))?
            .rows_affected;
        if deleted == 0 {
            return Err(match expected {
                Some(expected) => self.mismatch::<E>(id, expected, Operation::Delete).await,
                None => Error::NotFound {
                    table: E::TABLE,
                    id,
                },
            });
        }
        self.after_write(move |loaders| loaders.wrote::<E>(Err(id)));
        Ok(())
    }

    /// Deletes every row of `E` matching `condition`, in one statement,
    /// and returns how many went. No version is checked (use
    /// [`delete`](Self::delete) for that); like any deletion it empties the
    /// request's caches, since a cascade can reach other tables.
    ///
    /// ```
    /// # async fn f(store: roster_store::Store) -> roster_store::Result<()> {
    /// use roster_entity::users_groups;
    /// use sea_orm::{ColumnTrait, Condition};
    /// let left = store
    ///     .delete_where::<users_groups::Entity>(Condition::all().add(users_groups::Column::UserId.eq(7)))
    ///     .await?;
    /// # let _ = left; Ok(()) }
    /// ```
    pub async fn delete_where<E>(&self, condition: Condition) -> Result<u64>
    where
        E: StoreEntity,
    {
        self.check_writable(E::TABLE)?;
        let deleted = E::delete_many()
            .filter(condition)
            .exec(&self.connection())
            .await
            .map_err(|e| Error::from_db(Operation::Delete, E::TABLE, e))?
            .rows_affected;
        if deleted > 0 {
            self.after_write(|loaders| loaders.clear_all());
        }
        Ok(deleted)
    }

    /// Rows matching `condition`, ordered by id; the loader is primed with
    /// them.
    ///
    /// ```
    /// # async fn f(store: roster_store::Store) -> roster_store::Result<()> {
    /// use roster_entity::user;
    /// use sea_orm::{ColumnTrait, Condition};
    /// let smiths = store
    ///     .filter::<user::Entity>(Condition::all().add(user::Column::Surname.eq("Smith")))
    ///     .await?;
    /// # let _ = smiths; Ok(()) }
    /// ```
    pub async fn filter<E>(&self, condition: Condition) -> Result<Vec<E::Model>>
    where
        E: StoreEntity,
    {
        self.select::<E>(
            E::find()
                .filter(condition)
                .order_by(E::id_column(), Order::Asc),
        )
        .await
    }

    /// How many rows match `condition` (one `SELECT COUNT(*)`).
    pub async fn count<E>(&self, condition: Condition) -> Result<u64>
    where
        E: StoreEntity,
    {
        let select = E::find().filter(condition);
        let counted = match &self.tx {
            Some(state) => select.count(&state.txn).await,
            None => {
                let route = self.loaders.route();
                route.read(|db| select.clone().count(db)).await
            }
        };
        counted.map_err(|e| Error::from_db(Operation::Select, E::TABLE, e))
    }

    /// `limit` rows after skipping `skip`, ordered by id (a stable order);
    /// `limit` above [`MAX_PAGE`] is refused as [`Error::Invalid`].
    pub async fn page<E>(&self, skip: u64, limit: u64) -> Result<Vec<E::Model>>
    where
        E: StoreEntity,
    {
        if limit > MAX_PAGE {
            return Err(Error::refused(
                E::TABLE,
                Refusal::PageTooLarge {
                    limit,
                    max: MAX_PAGE,
                },
            ));
        }
        let select = E::find()
            .order_by(E::id_column(), Order::Asc)
            .offset(skip)
            .limit(limit);
        self.select::<E>(select).await
    }

    /// Runs any select of `E` and primes the request's loader with the rows
    /// it returns, so later `load`s of them issue no query.
    pub async fn select<E>(&self, select: Select<E>) -> Result<Vec<E::Model>>
    where
        E: StoreEntity,
    {
        let rows = match &self.tx {
            Some(state) => select.all(&state.txn).await,
            None => {
                let route = self.loaders.route();
                route.read(|db| select.clone().all(db)).await
            }
        }
        .map_err(|e| Error::from_db(Operation::Select, E::TABLE, e))?;
        if self.tx.is_none() {
            let loader = self.loader::<E>();
            for row in &rows {
                loader.prime(E::id_of(row), Some(Arc::new(row.clone())));
            }
        }
        Ok(rows)
    }

    /// Streams the rows matching `condition`, ordered by id, without holding
    /// them all in memory (nor in the loader cache). The stream holds a
    /// connection (or the transaction) until it is dropped.
    pub async fn stream<E>(
        &self,
        condition: Condition,
    ) -> Result<impl Stream<Item = Result<E::Model>> + Send + '_>
    where
        E: StoreEntity,
    {
        let select = E::find()
            .filter(condition)
            .order_by(E::id_column(), Order::Asc);
        let stream_err = |e| Error::from_db(Operation::Stream, E::TABLE, e);
        let stream = match &self.tx {
            Some(state) => select.stream(&state.txn).await.map_err(stream_err)?.boxed(),
            None => select
                .stream(self.loaders.route().connection())
                .await
                .map_err(stream_err)?
                .boxed(),
        };
        Ok(stream.map_err(stream_err))
    }

    /// Runs the single write `attempt`; outside a transaction, again (up to
    /// [`ALONE_RETRIES`] times, after a short random pause) while the
    /// database rolled it back on a retryable error: a deadlock, a
    /// serialization failure, a busy SQLite, a Galera certification
    /// failure. The statement did nothing then, so running it again is
    /// safe. [`Error::Unavailable`] is left to the caller: the server
    /// will not be back within a few milliseconds.
    async fn alone_retried<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        if self.tx.is_some() {
            return attempt().await;
        }
        let mut retries = 0;
        loop {
            match attempt().await {
                Err(e)
                    if retries < ALONE_RETRIES
                        && e.is_retryable()
                        && !matches!(e, Error::Unavailable { .. }) =>
                {
                    retries += 1;
                    tracing::debug!(error = %e, retries, "a single write was rolled back; running it again");
                    let pause = rand::random_range(1..=5 * u64::from(retries));
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// After a checked write matched no row: `NotFound` or `Conflict`.
    async fn mismatch<E>(&self, id: i64, expected: DateTime<Utc>, operation: Operation) -> Error
    where
        E: StoreEntity,
    {
        match find_by_id::<E, _>(&self.connection(), id).await {
            Err(e) => Error::from_db(operation, E::TABLE, e),
            Ok(None) => {
                self.after_write(move |loaders| loaders.wrote::<E>(Err(id)));
                Error::NotFound {
                    table: E::TABLE,
                    id,
                }
            }
            Ok(Some(current)) => {
                let stored = E::version_of(&current).unwrap_or(expected);
                let cached = current.clone();
                self.after_write(move |loaders| loaders.wrote::<E>(Ok(&cached)));
                Error::Conflict(Box::new(Conflict::new(
                    E::TABLE,
                    id,
                    expected,
                    stored,
                    current,
                )))
            }
        }
    }
}

async fn find_by_id<E, C>(
    conn: &C,
    id: i64,
) -> std::result::Result<Option<E::Model>, sea_orm::DbErr>
where
    E: StoreEntity,
    C: ConnectionTrait,
{
    E::find().filter(E::id_column().eq(id)).one(conn).await
}

fn id_from_value(value: sea_orm::Value) -> Option<i64> {
    match value {
        sea_orm::Value::BigInt(Some(v)) => Some(v),
        sea_orm::Value::Int(Some(v)) => Some(v.into()),
        sea_orm::Value::BigUnsigned(Some(v)) => i64::try_from(v).ok(),
        sea_orm::Value::Unsigned(Some(v)) => Some(v.into()),
        _ => None,
    }
}
