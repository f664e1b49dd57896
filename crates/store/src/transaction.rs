//! [`Store::transaction`]: run a closure in a transaction, retried with
//! jittered exponential backoff on serialization failures and deadlocks
//! (nested in a transaction, in a savepoint); [`TxOptions`]: isolation
//! level, read-only, PostgreSQL's `DEFERRABLE`, the [`RetryPolicy`]; and
//! [`Store::advisory_lock`] for critical sections across processes.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng;
use sea_orm::sqlx::{self, Connection as _};
use sea_orm::{
    AccessMode, ConnectionTrait, DbBackend, IsolationLevel, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use roster_loader::db_error;

use crate::Store;
use crate::error::{Error, Operation, Refusal, Result};
use crate::store::{Effect, TxState};

/// How [`Store::transaction`] runs its closure.
///
/// ```
/// use roster_store::{IsolationLevel, TxOptions};
/// let opts = TxOptions::new().isolation(IsolationLevel::Serializable).max_attempts(10);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TxOptions {
    /// The isolation level; `None` is the backend's default (ignored on
    /// SQLite, whose transactions are serializable).
    pub isolation: Option<IsolationLevel>,
    /// A read-only transaction: the database refuses writes on PostgreSQL
    /// and MySQL; on every backend the store's own writes fail with
    /// [`Error::ReadOnly`].
    pub read_only: bool,
    /// PostgreSQL's `DEFERRABLE` (see [`TxOptions::deferrable`]); has an
    /// effect only with `read_only` and [`IsolationLevel::Serializable`] on
    /// PostgreSQL.
    pub deferrable: bool,
    /// When and how often to retry.
    pub retry: RetryPolicy,
}

impl TxOptions {
    /// Read-write, the backend's isolation level, the default retry policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the isolation level.
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Makes the transaction read-only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Makes a serializable read-only transaction on PostgreSQL
    /// `DEFERRABLE`: for long consistent reads (reports, exports). Its first
    /// statement may wait until no concurrent serializable read-write
    /// transaction can make its snapshot inconsistent; after that it runs
    /// with no risk of a serialization failure and without the bookkeeping
    /// of serializable isolation.
    ///
    /// Has an effect only together with [`read_only`](Self::read_only) and
    /// [`IsolationLevel::Serializable`], on PostgreSQL (the transaction then
    /// starts with `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY,
    /// DEFERRABLE`); ignored otherwise, on MySQL and SQLite, and in a nested
    /// transaction (a savepoint keeps its parent's mode).
    ///
    /// ```
    /// use roster_store::{IsolationLevel, TxOptions};
    /// let report = TxOptions::new()
    ///     .isolation(IsolationLevel::Serializable)
    ///     .read_only()
    ///     .deferrable();
    /// # let _ = report;
    /// ```
    pub fn deferrable(mut self) -> Self {
        self.deferrable = true;
        self
    }

    /// Whether `DEFERRABLE` applies on `backend` (see
    /// [`TxOptions::deferrable`]).
    fn pg_deferrable(&self, backend: DbBackend) -> bool {
        backend == DbBackend::Postgres
            && self.deferrable
            && self.read_only
            && self.isolation == Some(IsolationLevel::Serializable)
    }

    /// Runs the closure at most `attempts` times (1: never retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_attempts = attempts.max(1);
        self
    }

    /// Uses `retry` as the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// Retries of a transaction that failed with a serialization failure or a
/// deadlock ([`Error::is_retryable`]): after attempt `n` the store waits a
/// random time between half and all of `min(max_delay, base_delay * 2^(n-1))`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// How many times the closure may run in all (default 8).
    pub max_attempts: u32,
    /// The first backoff (default 5 ms).
    pub base_delay: Duration,
    /// The longest backoff (default 500 ms).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based), with jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let ceiling = exp.min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
    }
}

impl Store {
    /// Runs `work` in a transaction and commits it; retries the whole
    /// transaction when it fails with a retryable error
    /// ([`Error::is_retryable`]: a serialization failure or deadlock,
    /// PostgreSQL 40001, 40P01, MySQL 1213, 1205, SQLite busy; an advisory
    /// lock not granted in time), whether raised by a statement or by
    /// `COMMIT`.
    ///
    /// `work` receives a `Store` bound to the transaction (cheap to clone;
    /// do not keep a clone beyond the closure). Its cache effects reach the
    /// request's loaders only when the transaction commits; an attempt that
    /// rolls back leaves the caches as they were. `work` may run several
    /// times, so it should do nothing outside the database that it cannot
    /// repeat. An error returned by `work` rolls back and is returned
    /// (retried only if it is itself retryable).
    ///
    /// Called on a store already in a transaction, it runs `work` once (no
    /// retry: the enclosing transaction is what retries) in a savepoint.
    /// If `work` fails, the savepoint is rolled back: its writes, its cache
    /// effects and the advisory locks it took are undone, the enclosing
    /// transaction goes on (on PostgreSQL too, after a failed statement)
    /// and may still commit its own writes. If it succeeds, its effects and
    /// locks become the enclosing transaction's and last until that one
    /// ends. `options` other than the retry policy are ignored there.
    ///
    /// SQLite read-write transactions start with `BEGIN IMMEDIATE`, so
    /// writers queue on the busy timeout instead of failing at their first
    /// write; a writer still locked out after it (`SQLITE_BUSY`, at `BEGIN`
    /// or at `COMMIT` while a reader holds the database) is retried like a
    /// deadlock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let url = format!("sqlite://{}?mode=rwc", dir.path().join("doc.db").display());
    /// # roster_migrations::run(&url, roster_migrations::Action::Up { steps: None }).await?;
    /// # let db = sea_orm::Database::connect(&url).await?;
    /// use roster_entity::{group, user};
    /// use roster_store::{Store, TxOptions};
    /// use sea_orm::ActiveValue::Set;
    ///
    /// let store = Store::new(db);
    /// let (ada, admins) = store
    ///     .transaction(TxOptions::new(), |tx| async move {
    ///         let ada = tx.insert::<user::Entity>(user::ActiveModel {
    ///             name: Set(Some("Ada".into())), ..Default::default() }).await?;
    ///         let admins = tx.insert::<group::Entity>(group::ActiveModel {
    ///             name: Set(Some("admins".into())), ..Default::default() }).await?;
    ///         tx.add_membership(ada.id, admins.id).await?;
    ///         Ok((ada, admins))
    ///     })
    ///     .await?;
    /// let members = store.loaders().related::<group::Entity, user::Entity>()?.load(admins.id).await?;
    /// let names: Vec<_> = members.iter().flat_map(|m| m.iter().map(|u| u.name.clone())).collect();
    /// assert_eq!(names, [ada.name]);
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F, Fut>(&self, options: TxOptions, work: F) -> Result<T>
    where
        F: FnMut(Store) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.transaction_with(options, work).await
    }

    /// [`Store::transaction`] for work that fails with `X`: the store's
    /// [`Error`], or an error of the crate's own that also carries states a
    /// caller never sees (an upsert chunk that did not get its turn).
    pub(crate) async fn transaction_with<T, X, F, Fut>(
        &self,
        options: TxOptions,
        mut work: F,
    ) -> Result<T, X>
    where
        X: TxError,
        F: FnMut(Store) -> Fut,
        Fut: Future<Output = Result<T, X>>,
    {
        let nested = self.tx.is_some();
        let max_attempts = if nested {
            1
        } else {
            options.retry.max_attempts.max(1)
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(&options, &mut work).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !error.is_retryable() || attempt >= max_attempts {
                return Err(error);
            }
            let wait = options.retry.backoff(attempt);
            tracing::debug!(attempt, ?wait, %error, "transaction failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt of [`Store::transaction_with`]: begin, run `work`,
    /// commit or roll back, then apply or drop the cache effects.
    async fn attempt<T, X, F, Fut>(&self, options: &TxOptions, work: &mut F) -> Result<T, X>
    where
        X: TxError,
        F: FnMut(Store) -> Fut,
        Fut: Future<Output = Result<T, X>>,
    {
        let begin_err = |e| Error::from_db(Operation::Begin, "-", e);
        let nested = self.tx.is_some();
        let (txn, read_only) = match &self.tx {
            Some(parent) => (
                parent.txn.begin().await.map_err(begin_err)?,
                parent.read_only || options.read_only,
            ),
            None => {
                let backend = self.backend();
                // sea-orm's options cannot say DEFERRABLE: one statement of
                // our own sets all three instead.
                let deferrable = options.pg_deferrable(backend);
                let configured = backend != DbBackend::Sqlite && !deferrable;
                let config = TransactionOptions {
                    isolation_level: options.isolation.filter(|_| configured),
                    access_mode: (options.read_only && configured).then_some(AccessMode::ReadOnly),
                    sqlite_transaction_mode: (backend == DbBackend::Sqlite).then_some(
                        if options.read_only {
                            SqliteTransactionMode::Deferred
                        } else {
                            SqliteTransactionMode::Immediate
                        },
                    ),
                };
                let txn = self
                    .db
                    .begin_with_options(config)
                    .await
                    .map_err(begin_err)?;
                if deferrable {
                    txn.execute_unprepared(
                        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
                    )
                    .await
                    .map_err(begin_err)?;
                }
                (txn, options.read_only)
            }
        };
        let state = Arc::new(TxState {
            txn,
            read_only,
            effects: Mutex::new(Vec::new()),
            mysql_locks: tokio::sync::Mutex::new(Vec::new()),
        });
        let bound = Store {
            db: self.db.clone(),
            tx: Some(state.clone()),
            loaders: self.loaders.clone(),
        };
        let outcome = work(bound).await;
        // Every clone handed to `work` must be gone; otherwise dropping our
        // handle leaves the transaction to roll back with the last clone.
        let state = Arc::into_inner(state).ok_or(Error::TransactionInUse)?;
        let TxState {
            txn,
            effects,
            mysql_locks,
            ..
        } = state;
        let effects = effects.into_inner().unwrap_or_else(PoisonError::into_inner);
        let value = match outcome {
            Ok(value) => value,
            Err(error) => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(%rollback, "rollback failed; the connection is discarded");
                }
                release_mysql_locks(mysql_locks.into_inner()).await;
                return Err(error);
            }
        };
        let committed = txn.commit().await.map_err(|e| {
            if nested {
                Error::from_db(Operation::ReleaseSavepoint, "-", e)
            } else {
                Error::from_commit(e)
            }
        });
        let mysql_locks = mysql_locks.into_inner();
        match (&committed, &self.tx) {
            // A released savepoint's locks are the parent's now, as
            // PostgreSQL's transaction-level locks are.
            (Ok(()), Some(parent)) => parent.mysql_locks.lock().await.extend(mysql_locks),
            _ => release_mysql_locks(mysql_locks).await,
        }
        match committed {
            Ok(()) => {
                self.apply(effects);
                Ok(value)
            }
            Err(error) => {
                // The writes may be in the database or not: forget what the
                // request's loaders hold rather than guess.
                if matches!(error, Error::CommitUnknown { .. }) {
                    self.loaders.clear_all();
                }
                Err(error.into())
            }
        }
    }

    /// Applies committed effects: to the loaders, or to the parent
    /// transaction's list when this was a savepoint.
    fn apply(&self, effects: Vec<Effect>) {
        match &self.tx {
            Some(parent) => parent
                .effects
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(effects),
            None => effects.into_iter().for_each(|effect| effect(&self.loaders)),
        }
    }

    /// Takes the advisory lock `key` until the transaction ends, waiting at
    /// most `timeout` for it if another transaction holds it; only on a
    /// store bound to a transaction (elsewhere [`Refusal::NotInTransaction`]).
    ///
    /// Not granted within `timeout`: [`Error::LockNotGranted`], which is
    /// retryable, so [`Store::transaction`] runs the transaction again after
    /// its backoff (a caller that handles the error itself can go on in the
    /// same transaction). Taken in a nested transaction, the lock is
    /// released if its savepoint rolls back, and otherwise lasts until the
    /// outermost transaction ends.
    ///
    /// - PostgreSQL: `pg_advisory_xact_lock(key)` with `lock_timeout` set to
    ///   `timeout` (rounded up to whole milliseconds, at least 1 ms) for
    ///   that statement only, in a savepoint of its own so that a lock not
    ///   granted leaves the transaction usable; one round trip when the
    ///   lock is granted. Released by commit or rollback. The statement
    ///   time limit ([`PoolSettings::statement_timeout`](crate::PoolSettings))
    ///   still applies: a wait cut by it is an [`Error::Timeout`].
    /// - MySQL/MariaDB: `GET_LOCK('roster_<key>', timeout)` on a connection
    ///   of its own, released after the transaction ends (if the
    ///   transaction is abandoned, closing that connection releases it).
    /// - SQLite: nothing to take: a read-write transaction (`BEGIN
    ///   IMMEDIATE`) already excludes every other writer, from its start,
    ///   and `timeout` is not used (a second writer waits at `BEGIN`, up to
    ///   the busy timeout). In a read-only SQLite transaction the call
    ///   excludes nothing.
    pub async fn advisory_lock(&self, key: i64, timeout: Duration) -> Result<()> {
        let Some(state) = &self.tx else {
            return Err(Error::refused("-", Refusal::NotInTransaction));
        };
        let lock_err = |e| Error::from_db(Operation::AdvisoryLock, "-", e);
        match self.backend() {
            DbBackend::Postgres => pg_advisory_lock(&state.txn, key, timeout).await,
            DbBackend::MySql => {
                let options = self.db.get_mysql_connection_pool().connect_options();
                let mut conn = sqlx::MySqlConnection::connect_with(&options)
                    .await
                    .map_err(|e| {
                        lock_err(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
                            Arc::new(e),
                        )))
                    })?;
                let got: Option<i64> =
                    sqlx::query_scalar("SELECT GET_LOCK(CONCAT('roster_', ?), ?)")
                        .bind(key)
                        .bind(timeout.as_secs_f64())
                        .fetch_one(&mut conn)
                        .await
                        .map_err(|e| {
                            lock_err(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(
                                Arc::new(e),
                            )))
                        })?;
                if got != Some(1) {
                    return Err(Error::LockNotGranted {
                        key,
                        waited: timeout,
                    });
                }
                state.mysql_locks.lock().await.push(conn);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// What a transaction's work may fail with: the store's [`Error`], or (in
/// the crate) an error that wraps it and carries states of its own.
pub(crate) trait TxError: From<Error> + std::fmt::Display {
    /// Whether running the whole transaction again may succeed.
    fn is_retryable(&self) -> bool;
}

impl TxError for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }
}

/// The savepoint [`pg_advisory_lock`] runs in.
const PG_LOCK_SAVEPOINT: &str = "roster_advisory_lock";

/// PostgreSQL's [`Store::advisory_lock`]: `pg_advisory_xact_lock` under a
/// `lock_timeout` of `timeout`, put back as it was right after, in one
/// round trip. `key` and the milliseconds are integers written into the
/// text (a `DO` block takes no parameters).
async fn pg_advisory_lock(
    txn: &sea_orm::DatabaseTransaction,
    key: i64,
    timeout: Duration,
) -> Result<()> {
    // lock_timeout = 0 would mean "wait forever"; its maximum is i32::MAX ms.
    let ms = timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .clamp(1, i32::MAX.unsigned_abs().into());
    let sql = format!(
        "SAVEPOINT {PG_LOCK_SAVEPOINT}; \
         DO $$ DECLARE previous text := current_setting('lock_timeout'); BEGIN \
         PERFORM set_config('lock_timeout', '{ms}ms', true); \
         PERFORM pg_advisory_xact_lock(({key})::bigint); \
         PERFORM set_config('lock_timeout', previous, true); END $$; \
         RELEASE SAVEPOINT {PG_LOCK_SAVEPOINT}"
    );
    let Err(e) = txn.execute_unprepared(&sql).await else {
        return Ok(());
    };
    // The failed statement aborted the transaction; rolling back to the
    // savepoint (which also undoes the `lock_timeout`) makes it usable
    // again. If the savepoint itself was never made, this fails too and
    // the transaction stays as it was.
    let undo =
        format!("ROLLBACK TO SAVEPOINT {PG_LOCK_SAVEPOINT}; RELEASE SAVEPOINT {PG_LOCK_SAVEPOINT}");
    if let Err(undo) = txn.execute_unprepared(&undo).await {
        tracing::debug!(%undo, "rolling back the advisory lock's savepoint failed");
    }
    // 55P03 lock_not_available: lock_timeout expired.
    if db_error::backend_code(&e).is_some_and(|c| c.is(DbBackend::Postgres, "55P03")) {
        return Err(Error::LockNotGranted {
            key,
            waited: timeout,
        });
    }
    Err(Error::from_db(Operation::AdvisoryLock, "-", e))
}

async fn release_mysql_locks(locks: Vec<sqlx::MySqlConnection>) {
    for conn in locks {
        // Closing the session releases its locks.
        if let Err(e) = conn.close().await {
            tracing::debug!(%e, "closing an advisory-lock connection failed");
        }
    }
}
