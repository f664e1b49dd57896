//! Advisory locks between transactions on different connections: a second
//! holder gets the lock only after the first transaction has committed; a
//! lock not granted within its timeout is `Error::LockNotGranted` (the
//! transaction that asked goes on), and the store's retries then wait for
//! it; a lock taken in a savepoint lasts until the transaction ends unless
//! the savepoint rolls back.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roster::entity::user;
use roster::store::{Error, Store, TxOptions};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    EntityTrait, PaginatorTrait, QueryFilter,
};
use tokio::sync::Notify;

use super::new_user;

/// A second pool on the test's database: its transactions run on other
/// connections than the test pool's.
async fn other_pool(db: &TestDb) -> DatabaseConnection {
    let mut options = ConnectOptions::new(db.url().to_owned());
    options.max_connections(2).sqlx_logging(false);
    Database::connect(options).await.expect("connect")
}

/// Log of what happened, in order.
type Events = Arc<Mutex<Vec<&'static str>>>;

fn push(events: &Events, event: &'static str) {
    events.lock().expect("events").push(event);
}

/// The first transaction takes the lock, writes a row and keeps the lock
/// 400 ms; the second, on another connection, asks for it meanwhile. It
/// must get it after the first's work ended, and see the first's row (so
/// the lock outlived the first's COMMIT). SQLite takes nothing: the
/// read-write transaction already excludes the second writer, at `BEGIN`.
async fn a_second_holder_waits_until_the_first_transaction_commits(db: &TestDb) {
    const KEY: i64 = 4242;
    let first_store = Store::new(db.conn().clone());
    let second_store = Store::new(other_pool(db).await);
    let events = Events::default();
    let locked = Arc::new(Notify::new());
    let first = tokio::spawn({
        let (events, locked) = (events.clone(), locked.clone());
        async move {
            first_store
                .transaction(TxOptions::new().max_attempts(1), |tx| {
                    let (events, locked) = (events.clone(), locked.clone());
                    async move {
                        tx.advisory_lock(KEY, Duration::from_secs(20)).await?;
                        let row = new_user(&tx, "first").await;
                        push(&events, "first locked");
                        locked.notify_one();
                        tokio::time::sleep(Duration::from_millis(400)).await;
                        push(&events, "first done");
                        Ok(row)
                    }
                })
                .await
        }
    });
    locked.notified().await;
    let seen = tokio::time::timeout(
        Duration::from_secs(30),
        second_store.transaction(TxOptions::new().max_attempts(1), |tx| {
            let events = events.clone();
            async move {
                tx.advisory_lock(KEY, Duration::from_secs(20)).await?;
                push(&events, "second locked");
                let seen = user::Entity::find()
                    .filter(user::Column::Name.eq("first"))
                    .count(&tx.connection())
                    .await?;
                Ok(seen)
            }
        }),
    )
    .await
    .expect("the second holder is not stuck")
    .expect("second transaction");
    first.await.expect("task").expect("first transaction");
    assert_eq!(
        *events.lock().expect("events"),
        ["first locked", "first done", "second locked"]
    );
    assert_eq!(seen, 1, "the second holder sees the first's committed row");
}

/// `SHOW lock_timeout` (PostgreSQL).
async fn lock_timeout(tx: &Store) -> Result<String, Error> {
    let row = tx
        .connection()
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SHOW lock_timeout",
        ))
        .await?
        .expect("a row");
    Ok(row.try_get_by_index::<String>(0)?)
}

/// While another transaction holds the lock: asked with a 300 ms timeout,
/// it is not granted, in about 300 ms (PostgreSQL used to wait for the
/// holder), and the transaction that asked is still usable; on PostgreSQL
/// the session's own `lock_timeout` is as it was, whether the lock was
/// granted or not. With the store's retries, a transaction whose lock is
/// not granted runs again until the holder is gone.
async fn a_lock_not_granted_in_time_is_lock_not_granted_and_retried(db: &TestDb) {
    const KEY: i64 = 77;
    let (taken, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let holder = tokio::spawn(hold_on(
        other_pool(db).await,
        KEY,
        taken.clone(),
        release.clone(),
    ));
    taken.notified().await;
    let store = Store::new(db.conn().clone());
    let pg = db.db_backend() == DbBackend::Postgres;
    let wait = Duration::from_millis(300);
    let started = Instant::now();
    let (denied, elapsed, rows, timeouts) = tokio::time::timeout(
        Duration::from_secs(20),
        store.transaction(TxOptions::new().max_attempts(1), |tx| async move {
            if pg {
                tx.connection()
                    .execute_unprepared("SET LOCAL lock_timeout = '7s'")
                    .await?;
            }
            let denied = tx.advisory_lock(KEY, wait).await;
            let elapsed = started.elapsed();
            // Still usable (PostgreSQL: the failed wait was rolled back to
            // the lock's own savepoint).
            let rows = user::Entity::find().count(&tx.connection()).await?;
            let mut timeouts = Vec::new();
            if pg {
                timeouts.push(lock_timeout(&tx).await?);
                tx.advisory_lock(KEY + 1, wait).await?;
                timeouts.push(lock_timeout(&tx).await?);
            }
            Ok((denied, elapsed, rows, timeouts))
        }),
    )
    .await
    .expect("the timeout, not the holder, ends the wait")
    .expect("transaction");
    let err = denied.expect_err("the lock is held");
    assert!(
        matches!(err, Error::LockNotGranted { key: KEY, waited } if waited == wait),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(
        elapsed >= wait - Duration::from_millis(20) && elapsed < Duration::from_secs(3),
        "waited {elapsed:?} for a 300 ms timeout"
    );
    assert_eq!(rows, 0);
    if pg {
        assert_eq!(timeouts, ["7s", "7s"], "lock_timeout put back");
    }

    // Retried: the holder lets go after 700 ms; every attempt waits 200 ms.
    let attempts = Arc::new(AtomicU32::new(0));
    let releaser = tokio::spawn({
        let release = release.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            release.notify_one();
        }
    });
    let started = Instant::now();
    store
        .transaction(TxOptions::new().max_attempts(20), |tx| {
            let attempts = attempts.clone();
            async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                tx.advisory_lock(KEY, Duration::from_millis(200)).await
            }
        })
        .await
        .expect("granted once the holder is gone");
    releaser.await.expect("releaser");
    holder.await.expect("holder");
    assert!(
        attempts.load(Ordering::SeqCst) >= 2,
        "the first attempt was not granted"
    );
    assert!(started.elapsed() >= Duration::from_millis(650));
}

/// Takes lock `key` in a transaction on `conn` until `release` is notified.
async fn hold_on(conn: DatabaseConnection, key: i64, taken: Arc<Notify>, release: Arc<Notify>) {
    Store::new(conn)
        .transaction(TxOptions::new().max_attempts(1), |tx| {
            let (taken, release) = (taken.clone(), release.clone());
            async move {
                tx.advisory_lock(key, Duration::from_secs(20)).await?;
                taken.notify_one();
                release.notified().await;
                Ok(())
            }
        })
        .await
        .expect("hold the lock");
}

/// Whether lock `key` is free for another session right now.
async fn free_elsewhere(other: &Store, key: i64) -> bool {
    let probe = other.transaction(TxOptions::new().max_attempts(1), |tx| async move {
        tx.advisory_lock(key, Duration::from_millis(100)).await
    });
    let outcome = tokio::time::timeout(Duration::from_secs(10), probe)
        .await
        .unwrap_or_else(|_| panic!("probing lock {key} outlived its 100 ms timeout"));
    match outcome {
        Ok(()) => true,
        Err(Error::LockNotGranted { .. }) => false,
        Err(e) => panic!("probing lock {key}: {e:?}"),
    }
}

/// A nested transaction's lock: kept by the enclosing transaction when the
/// savepoint is released, given back when it rolls back, as PostgreSQL
/// does with its transaction-level locks (and the store now does on MySQL).
async fn a_savepoints_lock_lasts_until_the_transaction_ends(db: &TestDb) {
    const KEPT: i64 = 501;
    const GIVEN_BACK: i64 = 502;
    let store = Store::new(db.conn().clone());
    let other = Store::new(other_pool(db).await);
    let (kept, given_back) = store
        .transaction(TxOptions::new().max_attempts(1), |tx| {
            let other = other.clone();
            async move {
                tx.transaction(TxOptions::new(), |inner| async move {
                    inner.advisory_lock(KEPT, Duration::from_secs(5)).await
                })
                .await?;
                let failed: Result<(), Error> = tx
                    .transaction(TxOptions::new(), |inner| async move {
                        inner
                            .advisory_lock(GIVEN_BACK, Duration::from_secs(5))
                            .await?;
                        Err(Error::NotFound {
                            table: "users",
                            id: -1,
                        })
                    })
                    .await;
                assert!(matches!(failed, Err(Error::NotFound { id: -1, .. })));
                Ok((
                    free_elsewhere(&other, KEPT).await,
                    free_elsewhere(&other, GIVEN_BACK).await,
                ))
            }
        })
        .await
        .expect("transaction");
    assert!(!kept, "a released savepoint's lock is held until the end");
    assert!(given_back, "a rolled-back savepoint's lock is released");
    assert!(free_elsewhere(&other, KEPT).await, "released at the end");
}

backend_tests!(migrated: a_second_holder_waits_until_the_first_transaction_commits);
// SQLite takes no lock of its own (a writer waits at BEGIN, on the busy
// timeout), so there is no lock to time out or to keep across savepoints.
backend_tests!(migrated on [postgres, mysql]:
    a_lock_not_granted_in_time_is_lock_not_granted_and_retried,
    a_savepoints_lock_lasts_until_the_transaction_ends,
);
