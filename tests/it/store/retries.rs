//! The store's retries against real lock waits: a transaction that meets
//! another connection's lock past its session's wait limit (MySQL 1205
//! `innodb_lock_wait_timeout`, SQLite busy) fails once without retries,
//! and with them runs again until the lock is gone, then commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use roster::entity::group;
use roster::store::{Error, Store, TxOptions};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::sqlx::Executor as _;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use super::new_counter;

/// One connection whose lock waits end early: SQLite's busy timeout 100 ms
/// (sqlx's is 5 s), MySQL's `innodb_lock_wait_timeout` 1 s (its least).
async fn impatient(db: &TestDb) -> DatabaseConnection {
    let mut options = ConnectOptions::new(db.url().to_owned());
    options
        .max_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_millis(100)))
        .map_sqlx_mysql_pool_opts(|pool| {
            pool.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET SESSION innodb_lock_wait_timeout = 1")
                        .await
                        .map(|_| ())
                })
            })
        });
    Database::connect(options).await.expect("connect")
}

/// A transaction on a pool of its own that locks what the store's writer
/// needs: SQLite: the database (`BEGIN IMMEDIATE`); MySQL: the row
/// (`SELECT … FOR UPDATE`).
async fn lock_for_writing(db: &TestDb, id: i64) -> DatabaseTransaction {
    let pool = Database::connect(
        ConnectOptions::new(db.url().to_owned())
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .expect("connect");
    let txn = pool
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .expect("begin");
    if db.db_backend() == DbBackend::MySql {
        txn.execute_unprepared(&format!("SELECT id FROM groups WHERE id = {id} FOR UPDATE"))
            .await
            .expect("lock the row");
    }
    txn
}

/// The store's change: set the counter to 1, checked against the version
/// read.
async fn set_to_one(tx: &Store, row: &group::Model) -> Result<group::Model, Error> {
    tx.update::<group::Entity>(
        row.id,
        row.lastchange,
        group::ActiveModel {
            entry_year_id: Set(Some(1)),
            ..Default::default()
        },
    )
    .await
}

/// Whether `err` is the backend's lock wait over its limit.
/// [`set_to_one`] in a transaction retried up to 30 times: the row as
/// written, and how many times the closure ran.
async fn set_to_one_with_retries(
    store: &Store,
    row: &group::Model,
) -> Result<(group::Model, u32), Error> {
    let attempts = Arc::new(AtomicU32::new(0));
    let updated = store
        .transaction(TxOptions::new().max_attempts(30), |tx| {
            let (row, attempts) = (row.clone(), attempts.clone());
            async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                set_to_one(&tx, &row).await
            }
        })
        .await?;
    Ok((updated, attempts.load(Ordering::SeqCst)))
}

fn is_lock_wait(err: &Error, backend: DbBackend) -> bool {
    let code = err.code().unwrap_or_default();
    match backend {
        DbBackend::MySql => code == "1205",
        _ => code.parse::<i32>().is_ok_and(|c| c & 0xff == 5),
    }
}

/// Another connection holds the lock 2.5 s (MySQL) or 0.8 s (SQLite). One
/// attempt fails with the lock wait error, which is retryable; with retries
/// the same transaction commits after the holder is done, and on MySQL the
/// closure ran more than once (1205 is raised by the closure's UPDATE;
/// SQLite's writer is refused at `BEGIN IMMEDIATE`, before the closure).
async fn a_lock_wait_over_the_session_limit_is_retried(db: &TestDb) {
    let backend = db.db_backend();
    let row = new_counter(&Store::new(db.conn().clone())).await;
    let store = Store::new(impatient(db).await);
    let hold = match backend {
        DbBackend::MySql => Duration::from_millis(2500),
        _ => Duration::from_millis(800),
    };
    let blocker = lock_for_writing(db, row.id).await;
    let released_at = Instant::now() + hold;
    let releaser = tokio::spawn(async move {
        tokio::time::sleep_until(released_at.into()).await;
        blocker.commit().await.expect("release");
    });

    let err = store
        .transaction(TxOptions::new().max_attempts(1), |tx| {
            let row = row.clone();
            async move { set_to_one(&tx, &row).await }
        })
        .await
        .expect_err("locked out, no retry");
    assert!(is_lock_wait(&err, backend), "{err:?}");
    assert!(err.is_retryable(), "{err:?}");
    assert!(Instant::now() < released_at, "the first try ended early");

    let (updated, attempts) = set_to_one_with_retries(&store, &row)
        .await
        .expect("committed once the lock is gone");
    assert!(Instant::now() >= released_at, "it could not commit earlier");
    releaser.await.expect("releaser");
    if backend == DbBackend::MySql {
        assert!(attempts > 1, "the closure ran again");
    }
    let stored = group::Entity::find_by_id(row.id)
        .one(db.conn())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored.entry_year_id, Some(1));
    assert_eq!(stored, updated);
}

/// SQLite busy at COMMIT: another connection reads in a transaction (a
/// shared lock, for 600 ms); the store's transaction writes, and its COMMIT
/// cannot get the exclusive lock within the busy timeout. The store rolls
/// back, runs the closure again, and commits once the reader is done.
async fn a_commit_kept_busy_by_a_reader_is_retried(db: &TestDb) {
    let row = new_counter(&Store::new(db.conn().clone())).await;
    let store = Store::new(impatient(db).await);
    let reader_pool = Database::connect(
        ConnectOptions::new(db.url().to_owned())
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .expect("connect");
    let reader = reader_pool.begin().await.expect("begin");
    let seen = group::Entity::find().all(&reader).await.expect("read");
    assert_eq!(seen.len(), 1);
    let released_at = Instant::now() + Duration::from_millis(600);
    let releaser = tokio::spawn(async move {
        tokio::time::sleep_until(released_at.into()).await;
        reader.commit().await.expect("end the read");
    });
    let (updated, attempts) = set_to_one_with_retries(&store, &row)
        .await
        .expect("committed once the reader is done");
    assert!(Instant::now() >= released_at, "it could not commit earlier");
    releaser.await.expect("releaser");
    assert!(attempts > 1, "the busy COMMIT ran the closure again");
    let stored = group::Entity::find_by_id(row.id)
        .one(db.conn())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored, updated);
    assert_eq!(stored.entry_year_id, Some(1));
}

// PostgreSQL's lock waits end at `lock_timeout` with 55P03, which is not a
// retryable code (its serialization failures and deadlocks are retried in
// `transactions`).
backend_tests!(migrated on [sqlite, mysql]: a_lock_wait_over_the_session_limit_is_retried);
// Only SQLite's readers hold writers off.
backend_tests!(migrated on [sqlite]: a_commit_kept_busy_by_a_reader_is_retried);
