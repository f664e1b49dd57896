//! How the store classifies failures, on the backends that decide them: a
//! foreign key by what was being done, a statement over its time limit
//! whichever path met it (a write, a loader batch), a lock not granted, a
//! row inserted by another writer mid-chunk, and the store's own refusals by
//! their cause. (Still-referenced deletes and the `lastchange` refusal are
//! in `crud`, the upsert's refusals in `upsert`.)

use std::time::{Duration, Instant};

use roster::entity::{group, user};
use roster::graphql::ApiError;
use roster::store::{
    Error, InvalidReason, MAX_PAGE, OnConflict, Operation, PoolSettings, Refusal, Store, TxOptions,
    pool,
};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};

use super::{new_user, rename};
use crate::fixtures::{self, UsersLocked};

/// A pool whose statements the database stops after 500 ms.
async fn limited(db: &TestDb) -> DatabaseConnection {
    let settings = PoolSettings::default().statement_timeout(Some(Duration::from_millis(500)));
    pool::connect(db.url(), &settings).await.expect("connect")
}

/// A pool of one connection, for a session that must stay the same.
async fn one_session(db: &TestDb) -> DatabaseConnection {
    let mut options = ConnectOptions::new(db.url().to_owned());
    options
        .max_connections(1)
        .min_connections(0)
        .sqlx_logging(false);
    Database::connect(options).await.expect("connect")
}

/// Giving a group a type that does not exist names a missing row; only a
/// delete makes the same foreign-key code "still referenced".
async fn an_update_naming_a_missing_row_is_an_unknown_reference(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let group = store
        .insert::<group::Entity>(group::ActiveModel {
            name: Set(Some("5b".into())),
            ..Default::default()
        })
        .await
        .expect("group");
    let err = store
        .update::<group::Entity>(
            group.id,
            group.lastchange,
            group::ActiveModel {
                grouptype_id: Set(Some(987_654_321)),
                ..Default::default()
            },
        )
        .await
        .expect_err("an unknown group type");
    assert!(
        matches!(
            err,
            Error::Invalid {
                table: "groups",
                reason: InvalidReason::UnknownReference,
                source: Some(_),
            }
        ),
        "{err:?}"
    );
}

/// A loader batch whose statement waits on a locked table past the
/// statement time limit fails as a timeout, as a write does, and reads to
/// a GraphQL client as a store timeout does. The next read, once the lock
/// is gone, asks again (errors are not cached).
async fn a_loader_batch_over_the_statement_timeout_is_a_timeout(db: &TestDb) {
    let ada = fixtures::user(db.conn(), "Ada").await;
    let store = Store::new(limited(db).await);
    let lock = UsersLocked::take(db).await;
    let started = Instant::now();
    let read = store.get::<user::Entity>(ada.id).await;
    let waited = started.elapsed();
    lock.release().await;
    let err = read.expect_err("the table is locked");
    assert!(
        matches!(&err, Error::Load(load) if load.is_timeout() && load.db_err().is_some()),
        "{err:?}"
    );
    assert!(err.is_timeout(), "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "the limit is 500 ms, waited {waited:?}"
    );
    assert_eq!(ApiError::from(err), ApiError::Timeout);
    let again = store
        .get::<user::Entity>(ada.id)
        .await
        .expect("a read after the lock");
    assert_eq!(again.map(|row| row.id), Some(ada.id));
}

/// A write over the statement time limit names what it was doing.
async fn a_write_over_the_statement_timeout_names_its_operation(db: &TestDb) {
    let ada = fixtures::user(db.conn(), "Ada").await;
    let store = Store::new(limited(db).await);
    let lock = UsersLocked::take(db).await;
    let update = store
        .update::<user::Entity>(ada.id, ada.lastchange, rename("late"))
        .await;
    let delete = store.delete::<user::Entity>(ada.id, None).await;
    lock.release().await;
    for (result, operation) in [
        (update.map(|_| ()), Operation::Update),
        (delete, Operation::Delete),
    ] {
        let err = result.expect_err("the table is locked");
        assert!(
            matches!(&err, Error::Timeout { operation: op, table: "users", .. } if *op == operation),
            "{operation}: {err:?}"
        );
        assert!(err.is_timeout());
        assert_eq!(
            err.to_string(),
            format!("{operation} on users did not finish within the time limit")
        );
    }
}

/// An advisory lock another session holds (PostgreSQL's session-level
/// `pg_advisory_lock`, which shares its keys with the store's
/// transaction-level one; MySQL's `GET_LOCK` under the store's name) is not
/// granted within the time asked for; the error says so and is retryable.
async fn an_advisory_lock_held_elsewhere_is_not_granted(db: &TestDb) {
    let holder = one_session(db).await;
    let (take, release) = match db.db_backend() {
        DbBackend::Postgres => ("SELECT pg_advisory_lock(7)", "SELECT pg_advisory_unlock(7)"),
        _ => (
            "SELECT GET_LOCK('roster_7', 0)",
            "SELECT RELEASE_LOCK('roster_7')",
        ),
    };
    holder
        .execute_unprepared(take)
        .await
        .expect("take the lock");
    let store = Store::new(db.conn().clone());
    let wait = Duration::from_millis(200);
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        store.transaction(TxOptions::new().max_attempts(1), |tx| async move {
            tx.advisory_lock(7, wait).await
        }),
    )
    .await
    .expect("the timeout, not the holder, ends the wait");
    holder
        .execute_unprepared(release)
        .await
        .expect("release the lock");
    holder.close().await.expect("close");
    let err = result.expect_err("the lock is held");
    assert!(
        matches!(err, Error::LockNotGranted { key: 7, waited } if waited == wait),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

/// PostgreSQL: a row another writer inserts after a version-checked chunk
/// read its keys makes the chunk's write find it; the chunk fails with
/// `ConcurrentInsert`, which is retried, and the second attempt reports
/// the row as a conflict instead of overwriting it.
async fn a_row_inserted_mid_chunk_is_retried_not_overwritten(db: &TestDb) {
    let (conn, log) = db.logged_conn().await;
    let store = Store::new(conn);
    // Another writer's insert, not yet committed: the chunk's locked read
    // does not see it, and its insert waits on it.
    let other = db.conn().begin().await.expect("begin");
    other
        .execute_unprepared(
            "INSERT INTO users (id, name, lastchange) VALUES (4242, 'theirs', now())",
        )
        .await
        .expect("their insert");
    let row = user::ActiveModel {
        id: Set(4242),
        name: Set(Some("ours".into())),
        lastchange: Set(fixtures::timestamp()),
        ..Default::default()
    };
    let upsert = tokio::spawn(async move {
        store
            .upsert_all::<user::Entity>([row], OnConflict::UpdateIfUnchanged, None)
            .await
    });
    wait_for_a_lock_wait(db).await;
    other.commit().await.expect("their commit");
    let totals = upsert
        .await
        .expect("the upsert task")
        .expect("retried, then done");
    assert_eq!((totals.inserted, totals.updated), (0, 0));
    let conflicts: Vec<_> = totals.conflicts.iter().map(|m| m.name.clone()).collect();
    assert_eq!(conflicts, [Some("theirs".to_owned())]);
    let locked_reads = log
        .all()
        .iter()
        .filter(|sql| sql.contains("FOR UPDATE"))
        .count();
    assert_eq!(locked_reads, 2, "one read per attempt: {:#?}", log.all());
}

/// PostgreSQL: waits (up to 10 s) until a session of this test's database
/// waits on a lock.
async fn wait_for_a_lock_wait(db: &TestDb) {
    for _ in 0..500 {
        let row = db
            .conn()
            .query_one_raw(sea_orm::Statement::from_string(
                db.db_backend(),
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .expect("pg_stat_activity")
            .expect("a row");
        let waiting: i64 = row.try_get_by_index(0).expect("count");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the chunk never waited on the other writer's row");
}

async fn a_page_over_the_limit_is_refused(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let err = store
        .page::<user::Entity>(0, MAX_PAGE + 1)
        .await
        .expect_err("too large");
    assert_eq!(
        err.as_refusal(),
        Some(&Refusal::PageTooLarge {
            limit: MAX_PAGE + 1,
            max: MAX_PAGE
        }),
        "{err:?}"
    );
}

async fn an_update_changing_the_id_is_refused(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let ada = new_user(&store, "Ada").await;
    let changes = user::ActiveModel {
        id: Set(ada.id + 1),
        ..Default::default()
    };
    let err = store
        .update::<user::Entity>(ada.id, ada.lastchange, changes)
        .await
        .expect_err("the id is fixed");
    assert_eq!(
        err.as_refusal(),
        Some(&Refusal::IdChanged { id: ada.id }),
        "{err:?}"
    );
    // Setting the same id is no change.
    let same = user::ActiveModel {
        id: Set(ada.id),
        ..rename("Ada L.")
    };
    store
        .update::<user::Entity>(ada.id, ada.lastchange, same)
        .await
        .expect("the same id");
}

async fn an_advisory_lock_outside_a_transaction_is_refused(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let err = store
        .advisory_lock(7, Duration::from_millis(10))
        .await
        .expect_err("no transaction");
    assert_eq!(
        err.as_refusal(),
        Some(&Refusal::NotInTransaction),
        "{err:?}"
    );
}

// The database decides these, so every backend.
backend_tests!(migrated: an_update_naming_a_missing_row_is_an_unknown_reference);
// SQLite has no statement time limit (and no table lock a reader waits on).
backend_tests!(migrated on [postgres, mysql]:
    a_loader_batch_over_the_statement_timeout_is_a_timeout,
    a_write_over_the_statement_timeout_names_its_operation,
);
// SQLite takes no advisory lock of its own (see `locks`).
backend_tests!(migrated on [postgres, mysql]: an_advisory_lock_held_elsewhere_is_not_granted);
// MySQL's locked read waits on the other insert (gap and record locks), and
// SQLite has one writer: only PostgreSQL's read can miss a row in flight.
backend_tests!(migrated on [postgres]: a_row_inserted_mid_chunk_is_retried_not_overwritten);
// The store refuses these before sending anything: one backend is enough.
backend_tests!(migrated on [sqlite]:
    a_page_over_the_limit_is_refused,
    an_update_changing_the_id_is_refused,
    an_advisory_lock_outside_a_transaction_is_refused,
);
