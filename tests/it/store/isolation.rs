//! Isolation levels and PostgreSQL's `DEFERRABLE`: the level asked for is
//! the one in effect (the server says so), and it decides whether a second
//! read sees a row another connection committed after the first read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use roster::entity::user;
use roster::store::{Error, IsolationLevel, Store, TxOptions, truncate_to_micros};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait,
    PaginatorTrait, Statement,
};
use tokio::sync::Notify;

use super::new_user;

/// A second pool on the test's database; on SQLite its writers give up
/// after a 100 ms busy wait instead of sqlx's 5 s.
async fn other_pool(db: &TestDb) -> DatabaseConnection {
    let mut options = ConnectOptions::new(db.url().to_owned());
    options
        .max_connections(2)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_millis(100)));
    Database::connect(options).await.expect("connect")
}

/// One text value the server returns for `sql`.
async fn scalar(tx: &Store, sql: &str) -> Result<String, Error> {
    let row = tx
        .connection()
        .query_one_raw(Statement::from_string(tx.db().get_database_backend(), sql))
        .await?
        .expect("a row");
    Ok(row.try_get_by_index::<String>(0)?)
}

/// The isolation level the server runs the current transaction at, and
/// whether it is read-only: PostgreSQL's `transaction_isolation` and
/// `transaction_read_only`; MySQL/MariaDB's InnoDB transaction row
/// (`@@tx_isolation` shows the session's level, not the level `SET
/// TRANSACTION` gave this one transaction). InnoDB refreshes that table's
/// cache at most every 100 ms: the transaction must be older than that to
/// be in it.
async fn mode_in_effect(tx: &Store) -> Result<(String, bool), Error> {
    if tx.db().get_database_backend() == DbBackend::Postgres {
        let level = scalar(tx, "SHOW transaction_isolation").await?;
        let read_only = scalar(tx, "SHOW transaction_read_only").await? == "on";
        return Ok((level, read_only));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let row = tx
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT trx_isolation_level, trx_is_read_only FROM information_schema.innodb_trx \
             WHERE trx_mysql_thread_id = CONNECTION_ID()",
        ))
        .await?
        .expect("InnoDB lists the transaction");
    Ok((
        row.try_get_by_index::<String>(0)?,
        row.try_get_by_index::<i64>(1)? == 1,
    ))
}

/// Every level asked for is the one the server runs the transaction at.
async fn the_isolation_level_asked_for_is_in_effect(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let pg = db.db_backend() == DbBackend::Postgres;
    for (level, name) in [
        (IsolationLevel::ReadUncommitted, "read uncommitted"),
        (IsolationLevel::ReadCommitted, "read committed"),
        (IsolationLevel::RepeatableRead, "repeatable read"),
        (IsolationLevel::Serializable, "serializable"),
    ] {
        for read_only in [false, true] {
            let mut options = TxOptions::new().isolation(level).max_attempts(1);
            if read_only {
                options = options.read_only();
            }
            let in_effect = store
                .transaction(options, |tx| async move {
                    // InnoDB starts the transaction at its first read.
                    user::Entity::find().count(&tx.connection()).await?;
                    mode_in_effect(&tx).await
                })
                .await
                .expect("transaction");
            let expected = if pg {
                name.to_owned()
            } else {
                name.to_uppercase()
            };
            assert_eq!(in_effect, (expected, read_only), "{level:?}");
        }
    }
}

/// Inserts a user on `writer`'s pool, in a statement of its own (no
/// `RETURNING`: the test needs only whether the write went through).
async fn concurrent_insert(writer: &DatabaseConnection) -> Result<(), Error> {
    let row = user::ActiveModel {
        name: Set(Some("concurrent".into())),
        lastchange: Set(truncate_to_micros(Utc::now())),
        ..Default::default()
    };
    user::Entity::insert(row)
        .exec_without_returning(writer)
        .await?;
    Ok(())
}

/// A read-only transaction reads the users twice; between the reads,
/// another connection inserts one and commits. READ COMMITTED sees it on
/// the second read, REPEATABLE READ does not (PostgreSQL, MySQL). SQLite
/// ignores the level, and its reader holds writers off instead: the
/// insert cannot commit while the reader is open (busy), so both reads
/// agree at every level.
async fn the_isolation_level_decides_what_a_second_read_sees(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let writer = other_pool(db).await;
    let sqlite = db.db_backend() == DbBackend::Sqlite;
    for level in [
        IsolationLevel::ReadCommitted,
        IsolationLevel::RepeatableRead,
    ] {
        let options = TxOptions::new()
            .isolation(level)
            .read_only()
            .max_attempts(1);
        let (first, written, second) = store
            .transaction(options, |tx| {
                let writer = writer.clone();
                async move {
                    let first = user::Entity::find().count(&tx.connection()).await?;
                    let written = concurrent_insert(&writer).await;
                    let second = user::Entity::find().count(&tx.connection()).await?;
                    Ok((first, written, second))
                }
            })
            .await
            .expect("transaction");
        if sqlite {
            let err = written.expect_err("SQLite: the reader holds the writer off");
            assert!(err.is_retryable(), "busy: {err:?}");
            assert_eq!(second, first, "{level:?}");
        } else {
            written.expect("the concurrent insert commits");
            let sees = level == IsolationLevel::ReadCommitted;
            assert_eq!(second, first + u64::from(sees), "{level:?}");
        }
    }
}

/// `TxOptions::deferrable` with SERIALIZABLE READ ONLY. PostgreSQL: the
/// transaction is deferrable (`SHOW transaction_deferrable`), and its first
/// read waits until a concurrent serializable read-write transaction has
/// ended, which it does not without the option; with a read-write
/// transaction the option is ignored. Elsewhere it is ignored: the reads
/// simply work.
async fn a_deferrable_read_only_transaction_reads_a_safe_snapshot(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    new_user(&store, "Ada").await;
    let pg = db.db_backend() == DbBackend::Postgres;
    let report = TxOptions::new()
        .isolation(IsolationLevel::Serializable)
        .read_only()
        .deferrable()
        .max_attempts(1);
    let deferrable = |options: TxOptions| {
        let store = store.clone();
        async move {
            store
                .transaction(options, |tx| async move {
                    let users = user::Entity::find().all(&tx.connection()).await?;
                    let deferrable = if pg {
                        Some(scalar(&tx, "SHOW transaction_deferrable").await?)
                    } else {
                        None
                    };
                    Ok((users.len(), deferrable))
                })
                .await
                .expect("transaction")
        }
    };
    let (users, shown) = deferrable(report.clone()).await;
    assert_eq!(users, 1);
    if !pg {
        return;
    }
    assert_eq!(shown.as_deref(), Some("on"));
    let plain = TxOptions::new()
        .isolation(IsolationLevel::Serializable)
        .read_only()
        .max_attempts(1);
    assert_eq!(deferrable(plain.clone()).await.1.as_deref(), Some("off"));
    let read_write = TxOptions::new()
        .isolation(IsolationLevel::Serializable)
        .deferrable()
        .max_attempts(1);
    assert_eq!(
        deferrable(read_write).await.1.as_deref(),
        Some("off"),
        "ignored unless read-only"
    );

    // The wait for a safe snapshot, against the same read without it.
    for (options, waits) in [(report, true), (plain, false)] {
        let events = Arc::new(Mutex::new(Vec::new()));
        let opened = Arc::new(Notify::new());
        let concurrent = tokio::spawn({
            let (writer, events, opened) = (
                Store::new(other_pool(db).await),
                events.clone(),
                opened.clone(),
            );
            async move {
                let options = TxOptions::new()
                    .isolation(IsolationLevel::Serializable)
                    .max_attempts(1);
                writer
                    .transaction(options, |tx| {
                        let (events, opened) = (events.clone(), opened.clone());
                        async move {
                            user::Entity::find().count(&tx.connection()).await?;
                            opened.notify_one();
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            events.lock().expect("events").push("read-write ends");
                            Ok(())
                        }
                    })
                    .await
            }
        });
        opened.notified().await;
        deferrable(options).await;
        events.lock().expect("events").push("read");
        concurrent.await.expect("task").expect("read-write");
        let expected = if waits {
            ["read-write ends", "read"]
        } else {
            ["read", "read-write ends"]
        };
        assert_eq!(*events.lock().expect("events"), expected, "waits: {waits}");
    }
}

backend_tests!(migrated on [postgres, mysql]: the_isolation_level_asked_for_is_in_effect);
backend_tests!(migrated:
    the_isolation_level_decides_what_a_second_read_sees,
    a_deferrable_read_only_transaction_reads_a_safe_snapshot,
);
