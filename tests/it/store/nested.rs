//! Nested transactions: a `transaction` called on a store already in one
//! runs in a savepoint; a failing one rolls back only its own writes and
//! cache effects, and the enclosing transaction commits the rest.

use std::sync::{Arc, Mutex};

use roster::entity::{group, user};
use roster::store::{Error, InvalidReason, Store, TxOptions};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{new_user, rename};

/// The outer transaction writes a row, runs a nested one that inserts a
/// row, renames a cached user and then fails on a statement the database
/// refuses (a membership in a group that does not exist: on PostgreSQL
/// that aborts the transaction until the savepoint is rolled back), then
/// writes a group and commits. (A group, not a user: SQLite would give a
/// new user the rolled-back row's id.)
///
/// In the database: the outer rows, not the inner ones, the user as it
/// was. In the request's loaders: the outer rows (served without a query),
/// the user as it was (not the rename), and no trace of the inner row.
async fn a_failed_nested_transaction_rolls_back_only_its_part(db: &TestDb) {
    let (conn, log) = db.logged_conn().await;
    let store = Store::new(conn);
    let ada = new_user(&store, "Ada").await;
    let doomed = Arc::new(Mutex::new(None));
    let (before, after) = store
        .transaction(TxOptions::new().max_attempts(1), |tx| {
            let (ada, doomed) = (ada.clone(), doomed.clone());
            async move {
                let before = new_user(&tx, "outer before").await;
                let inner = tx
                    .transaction(TxOptions::new(), |inner| {
                        let (ada, doomed) = (ada.clone(), doomed.clone());
                        async move {
                            let row = new_user(&inner, "inner").await;
                            *doomed.lock().expect("doomed") = Some(row.id);
                            inner
                                .update::<user::Entity>(ada.id, ada.lastchange, rename("inner"))
                                .await?;
                            inner.add_membership(ada.id, 987_654_321).await?;
                            Ok(())
                        }
                    })
                    .await;
                let err = inner.expect_err("the membership names no group");
                assert!(
                    matches!(
                        err,
                        Error::Invalid {
                            reason: InvalidReason::UnknownReference,
                            ..
                        }
                    ),
                    "{err:?}"
                );
                // The transaction goes on after the savepoint rolled back.
                let after = tx
                    .insert::<group::Entity>(group::ActiveModel {
                        name: Set(Some("outer after".into())),
                        ..Default::default()
                    })
                    .await?;
                Ok((before, after))
            }
        })
        .await
        .expect("the outer transaction commits");
    let doomed = doomed.lock().expect("doomed").expect("the inner row's id");

    let stored: Vec<_> = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .all(db.conn())
        .await
        .expect("read")
        .into_iter()
        .map(|u| (u.id, u.name.unwrap_or_default()))
        .collect();
    assert_eq!(
        stored,
        [
            (ada.id, "Ada".to_owned()),
            (before.id, "outer before".to_owned()),
        ]
    );
    let groups: Vec<_> = group::Entity::find().all(db.conn()).await.expect("read");
    assert_eq!(groups, std::slice::from_ref(&after));
    let memberships = roster::entity::users_groups::Entity::find()
        .filter(roster::entity::users_groups::Column::UserId.eq(ada.id))
        .all(db.conn())
        .await
        .expect("read");
    assert!(memberships.is_empty());

    log.clear();
    assert_eq!(
        store.get::<user::Entity>(ada.id).await.expect("get"),
        Some(ada)
    );
    assert_eq!(
        store.get::<user::Entity>(before.id).await.expect("get"),
        Some(before)
    );
    assert_eq!(
        store.get::<group::Entity>(after.id).await.expect("get"),
        Some(after)
    );
    assert_eq!(
        log.len(),
        0,
        "served from the cache: {:?} (the rename must not be there)",
        log.all()
    );
    assert_eq!(store.get::<user::Entity>(doomed).await.expect("get"), None);
    assert_eq!(log.len(), 1, "the inner row was never cached: asked");
}

/// A nested transaction that succeeds inside an outer one that then fails:
/// neither's rows stay, and neither's effects reach the loaders.
async fn a_committed_savepoint_goes_with_its_rolled_back_transaction(db: &TestDb) {
    let (conn, log) = db.logged_conn().await;
    let store = Store::new(conn);
    let kept = Arc::new(Mutex::new(None));
    let result: Result<(), Error> = store
        .transaction(TxOptions::new().max_attempts(1), |tx| {
            let kept = kept.clone();
            async move {
                let id = tx
                    .transaction(TxOptions::new(), |inner| async move {
                        let group = inner
                            .insert::<group::Entity>(group::ActiveModel {
                                name: Set(Some("inner".into())),
                                ..Default::default()
                            })
                            .await?;
                        Ok(group.id)
                    })
                    .await?;
                *kept.lock().expect("kept") = Some(id);
                Err(Error::NotFound {
                    table: "groups",
                    id: -1,
                })
            }
        })
        .await;
    assert!(matches!(result, Err(Error::NotFound { id: -1, .. })));
    let id = kept.lock().expect("kept").expect("the inner group's id");
    let stored = group::Entity::find_by_id(id)
        .one(db.conn())
        .await
        .expect("read");
    assert_eq!(stored, None, "the outer rollback took the savepoint along");
    log.clear();
    assert_eq!(store.get::<group::Entity>(id).await.expect("get"), None);
    assert_eq!(log.len(), 1, "not cached: asked");
}

backend_tests!(migrated:
    a_failed_nested_transaction_rolls_back_only_its_part,
    a_committed_savepoint_goes_with_its_rolled_back_transaction,
);
