//! CRUD through the store: write-through to the loaders, partial updates,
//! typed errors and each backend's traps.

use chrono::TimeDelta;
use futures::TryStreamExt;
use roster::entity::{group, grouptype, user};
use roster::store::{Error, InvalidReason, Refusal, Store};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter};

use super::{new_user, rename};

async fn reads_its_own_writes_without_a_query(db: &TestDb) {
    let (conn, log) = db.logged_conn().await;
    let store = Store::new(conn);
    let ada = new_user(&store, "Ada").await;
    let ada2 = store
        .update::<user::Entity>(ada.id, ada.lastchange, rename("Ada L."))
        .await
        .expect("update");
    log.clear();
    assert_eq!(
        store.get::<user::Entity>(ada.id).await.expect("get"),
        Some(ada2.clone())
    );
    assert_eq!(
        crate::fixtures::owned(
            store
                .loaders()
                .by_id::<user::Entity>()
                .load(ada.id)
                .await
                .expect("load")
        ),
        Some(ada2.clone())
    );
    assert_eq!(log.len(), 0, "served from the cache: {:?}", log.all());

    store
        .delete::<user::Entity>(ada.id, Some(ada2.lastchange))
        .await
        .expect("delete");
    log.clear();
    assert_eq!(store.get::<user::Entity>(ada.id).await.expect("get"), None);
    assert_eq!(
        log.len(),
        0,
        "a delete leaves `None` in the cache: {:?}",
        log.all()
    );
    assert_eq!(
        user::Entity::find_by_id(ada.id)
            .one(db.conn())
            .await
            .expect("read"),
        None
    );
}

async fn membership_changes_reach_the_relation_loaders(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let ada = new_user(&store, "Ada").await;
    let admins = store
        .insert::<group::Entity>(group::ActiveModel {
            name: Set(Some("admins".into())),
            ..Default::default()
        })
        .await
        .expect("group");
    let members = |store: Store| async move {
        crate::fixtures::owned_rows(
            store
                .loaders()
                .related::<group::Entity, user::Entity>()
                .expect("relation")
                .load(admins.id)
                .await
                .expect("load"),
        )
    };
    assert_eq!(members(store.clone()).await, Some(vec![]));
    assert!(store.add_membership(ada.id, admins.id).await.expect("add"));
    assert!(
        !store
            .add_membership(ada.id, admins.id)
            .await
            .expect("add again"),
        "idempotent"
    );
    assert_eq!(members(store.clone()).await, Some(vec![ada.clone()]));
    assert_eq!(
        crate::fixtures::owned_rows(
            store
                .loaders()
                .related::<user::Entity, group::Entity>()
                .expect("relation")
                .load(ada.id)
                .await
                .expect("load")
        ),
        Some(vec![admins.clone()])
    );
    assert!(
        store
            .remove_membership(ada.id, admins.id)
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_membership(ada.id, admins.id)
            .await
            .expect("remove again")
    );
    assert_eq!(members(store.clone()).await, Some(vec![]));

    let err = store
        .add_membership(ada.id, i64::MAX)
        .await
        .expect_err("unknown group");
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
}

async fn partial_update_keeps_the_fields_left_out(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let row = store
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some("Grace".into())),
            surname: Set(Some("Hopper".into())),
            email: Set(Some("grace@example.org".into())),
            external_id: Set(Some(1 << 60)),
            ..Default::default()
        })
        .await
        .expect("insert");
    let changes = user::ActiveModel {
        email: Set(None),
        ..Default::default()
    };
    let updated = store
        .update::<user::Entity>(row.id, row.lastchange, changes)
        .await
        .expect("update");
    assert_eq!(updated.email, None, "set to NULL");
    assert_eq!(updated.surname.as_deref(), Some("Hopper"));
    assert_eq!(updated.external_id, Some(1 << 60));
    // An update that changes nothing but the version still succeeds (on
    // MySQL, found rows are counted, not changed rows).
    let same = store
        .update::<user::Entity>(row.id, updated.lastchange, user::ActiveModel::default())
        .await
        .expect("empty update");
    assert!(same.lastchange > updated.lastchange);
    assert_eq!(same.name, updated.name);
    // Writing identical values is an update too, not a Conflict.
    let identical = store
        .update::<user::Entity>(row.id, same.lastchange, rename("Grace"))
        .await
        .expect("identical values");
    assert!(identical.lastchange > same.lastchange);
    assert_eq!(identical.name.as_deref(), Some("Grace"));
}

async fn the_token_is_exactly_the_stored_value(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let row = new_user(&store, "Ada").await;
    assert_eq!(
        row.lastchange.timestamp_subsec_nanos() % 1_000,
        0,
        "microseconds"
    );
    let stored = user::Entity::find_by_id(row.id)
        .one(db.conn())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored.lastchange, row.lastchange);
    // A caller's token with nanoseconds compares as its microseconds.
    let with_nanos = row.lastchange + TimeDelta::nanoseconds(789);
    let updated = store
        .update::<user::Entity>(row.id, with_nanos, rename("Ada2"))
        .await
        .expect("nanoseconds are truncated the same way");
    if db.db_backend() == DbBackend::Sqlite {
        let text = db
            .conn()
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                format!("SELECT lastchange FROM users WHERE id = {}", updated.id),
            ))
            .await
            .expect("query")
            .expect("row")
            .try_get_by_index::<String>(0)
            .expect("text");
        assert_eq!(
            text.len(),
            "2026-11-22T10:30:15.123456+00:00".len(),
            "{text}"
        );
        assert!(text.ends_with("+00:00"), "{text}");
    }
}

async fn checked_deletes_and_missing_rows(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let row = new_user(&store, "Ada").await;
    let newer = store
        .update::<user::Entity>(row.id, row.lastchange, rename("B"))
        .await
        .expect("update");
    let err = store
        .delete::<user::Entity>(row.id, Some(row.lastchange))
        .await
        .expect_err("stale delete");
    let conflict = err.as_conflict().expect("a conflict");
    assert_eq!(conflict.current::<user::Model>(), Some(&newer));
    store
        .delete::<user::Entity>(row.id, None)
        .await
        .expect("unchecked delete");
    assert!(matches!(
        store.delete::<user::Entity>(row.id, None).await,
        Err(Error::NotFound { table: "users", id }) if id == row.id
    ));
    assert!(matches!(
        store
            .update::<user::Entity>(row.id, newer.lastchange, rename("C"))
            .await,
        Err(Error::NotFound { .. })
    ));
}

async fn bad_input_is_invalid_not_a_database_error(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let err = store
        .insert::<group::Entity>(group::ActiveModel {
            name: Set(Some("orphan".into())),
            grouptype_id: Set(Some(987_654_321)),
            ..Default::default()
        })
        .await
        .expect_err("unknown group type");
    assert!(
        matches!(
            err,
            Error::Invalid {
                table: "groups",
                reason: InvalidReason::UnknownReference,
                ..
            }
        ),
        "{err:?}"
    );

    let kind = store
        .insert::<grouptype::Entity>(grouptype::ActiveModel {
            name: Set(Some("class".into())),
            ..Default::default()
        })
        .await
        .expect("grouptype");
    store
        .insert::<group::Entity>(group::ActiveModel {
            name: Set(Some("1a".into())),
            grouptype_id: Set(Some(kind.id)),
            ..Default::default()
        })
        .await
        .expect("group");
    // Unchecked and checked deletes alike: the foreign-key code a delete
    // meets means the row is still referenced.
    for expected in [None, Some(kind.lastchange)] {
        let err = store
            .delete::<grouptype::Entity>(kind.id, expected)
            .await
            .expect_err("still used");
        assert!(
            matches!(
                err,
                Error::Invalid {
                    table: "grouptypes",
                    reason: InvalidReason::StillReferenced,
                    source: Some(_),
                }
            ),
            "{expected:?}: {err:?}"
        );
    }

    let row = new_user(&store, "Ada").await;
    let err = store
        .update::<user::Entity>(
            row.id,
            row.lastchange,
            user::ActiveModel {
                lastchange: Set(row.lastchange),
                ..Default::default()
            },
        )
        .await
        .expect_err("lastchange is the store's");
    assert!(
        matches!(
            err,
            Error::Invalid {
                table: "users",
                reason: InvalidReason::Refused(Refusal::LastchangeSet),
                source: None,
            }
        ),
        "{err:?}"
    );

    if db.db_backend() == DbBackend::Postgres {
        let err = store
            .update::<user::Entity>(row.id, row.lastchange, rename("nul\0byte"))
            .await
            .expect_err("NUL byte");
        assert!(
            matches!(
                err,
                Error::Invalid {
                    reason: InvalidReason::BadText,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

async fn filter_page_select_and_stream(db: &TestDb) {
    let (conn, log) = db.logged_conn().await;
    let store = Store::new(conn);
    let mut ids = Vec::new();
    for i in 0..25 {
        let row = store
            .insert::<user::Entity>(user::ActiveModel {
                name: Set(Some(format!("u{i:02}"))),
                surname: Set(Some(if i % 5 == 0 { "Smith" } else { "Jones" }.into())),
                ..Default::default()
            })
            .await
            .expect("insert");
        ids.push(row.id);
    }
    let fresh = Store::new(store.db().clone());
    let smiths = fresh
        .filter::<user::Entity>(Condition::all().add(user::Column::Surname.eq("Smith")))
        .await
        .expect("filter");
    assert_eq!(
        smiths.iter().map(|u| u.id).collect::<Vec<_>>(),
        [ids[0], ids[5], ids[10], ids[15], ids[20]]
    );

    let page = fresh.page::<user::Entity>(10, 10).await.expect("page");
    assert_eq!(page.iter().map(|u| u.id).collect::<Vec<_>>(), ids[10..20]);
    log.clear();
    let again = fresh
        .get::<user::Entity>(ids[12])
        .await
        .expect("get")
        .expect("row");
    assert_eq!(again.name.as_deref(), Some("u12"));
    assert_eq!(log.len(), 0, "the page primed the loader");
    assert!(matches!(
        fresh.page::<user::Entity>(0, 1_000_000).await,
        Err(Error::Invalid { .. })
    ));

    let selected = fresh
        .select(user::Entity::find().filter(user::Column::Name.starts_with("u2")))
        .await
        .expect("select");
    assert_eq!(selected.len(), 5);

    let streamed: Vec<user::Model> = fresh
        .stream::<user::Entity>(Condition::all())
        .await
        .expect("stream")
        .try_collect()
        .await
        .expect("rows");
    assert_eq!(streamed.iter().map(|u| u.id).collect::<Vec<_>>(), ids);
}

backend_tests!(migrated:
    reads_its_own_writes_without_a_query,
    membership_changes_reach_the_relation_loaders,
    partial_update_keeps_the_fields_left_out,
    the_token_is_exactly_the_stored_value,
    checked_deletes_and_missing_rows,
    bad_input_is_invalid_not_a_database_error,
    filter_page_select_and_stream,
);
