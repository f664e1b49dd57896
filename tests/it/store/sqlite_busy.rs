//! SQLite writes that meet a lock: an autocommit `INSERT … RETURNING` or
//! `UPDATE … RETURNING` whose commit finds the database busy must fail, not
//! report a row it never stored.

use std::time::Duration;

use roster::entity::user;
use roster::store::Store;
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, EntityTrait, TransactionTrait};

/// A second pool on `db` whose open transaction holds a read lock, so a
/// writer elsewhere cannot commit; and a writer pool that waits briefly.
async fn locked(db: &TestDb) -> (sea_orm::DatabaseTransaction, Store) {
    let reader = Database::connect(db.url()).await.expect("reader");
    let held = reader.begin().await.expect("begin");
    held.execute_unprepared("SELECT COUNT(*) FROM users")
        .await
        .expect("read");
    let mut options = ConnectOptions::new(db.url());
    options
        .max_connections(1)
        .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_millis(200)));
    let writer = Database::connect(options).await.expect("writer");
    (held, Store::new(writer))
}

async fn an_insert_that_cannot_commit_fails_and_stores_nothing(db: &TestDb) {
    let (held, store) = locked(db).await;
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        store.insert::<user::Entity>(user::ActiveModel {
            name: Set(Some("ghost".into())),
            ..Default::default()
        }),
    )
    .await
    .expect("the insert returns");
    held.rollback().await.expect("release the read lock");
    let stored = user::Entity::find()
        .all(db.conn())
        .await
        .expect("read back");
    match outcome {
        Ok(row) => assert!(
            stored.iter().any(|u| u.id == row.id),
            "insert reported row {} that is not stored: {stored:?}",
            row.id
        ),
        Err(error) => {
            assert!(stored.is_empty(), "{stored:?}");
            assert!(error.is_retryable() || error.is_timeout(), "{error:?}");
        }
    }
}

async fn an_update_that_cannot_commit_fails_and_changes_nothing(db: &TestDb) {
    let ada = Store::new(db.conn().clone())
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some("Ada".into())),
            ..Default::default()
        })
        .await
        .expect("ada");
    let (held, store) = locked(db).await;
    let outcome = store
        .update::<user::Entity>(
            ada.id,
            ada.lastchange,
            user::ActiveModel {
                name: Set(Some("Ghost".into())),
                ..Default::default()
            },
        )
        .await;
    held.rollback().await.expect("release the read lock");
    let stored = user::Entity::find_by_id(ada.id)
        .one(db.conn())
        .await
        .expect("read back")
        .expect("ada");
    match outcome {
        Ok(row) => assert_eq!(stored, row, "the update reported what is stored"),
        Err(error) => {
            assert_eq!(stored, ada, "nothing changed");
            assert!(error.is_retryable() || error.is_timeout(), "{error:?}");
        }
    }
}

backend_tests!(migrated on [sqlite]:
    an_insert_that_cannot_commit_fails_and_stores_nothing,
    an_update_that_cannot_commit_fails_and_changes_nothing,
);
