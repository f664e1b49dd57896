//! The request's loader registry: loaders made on first use, one per
//! entity, key, relation and limit, shared by every resolver of a request.

use roster::entity::{group, grouptype, user, users_groups};
use roster::graphql::{request_data, request_loaders, schema};
use roster::store::{Loaders, Store};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;

async fn a_request_that_reads_one_table_builds_one_loader(db: &TestDb) {
    let loaders = Loaders::new(db.conn().clone());
    assert_eq!(loaders.made(), 0, "nothing is built up front");
    let users = loaders.by_id::<user::Entity>();
    assert_eq!(users.load(1).await.expect("load"), None);
    // Asking again is the same loader (its cache, its batch).
    loaders.by_id::<user::Entity>().prime(2, None);
    assert_eq!(loaders.made(), 1);

    let loaders = request_loaders(db.conn(), &Default::default());
    let request = request_data(
        async_graphql::Request::new(r#"{ user(id: "1") { name } }"#),
        &loaders,
        db.conn(),
    );
    let response = schema().execute(request).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    assert_eq!(loaders.made(), 1, "one table read, one loader");
}

async fn loaders_are_made_per_entity_key_relation_and_limit(db: &TestDb) {
    let loaders = Loaders::new(db.conn().clone());
    let _ = loaders.by_id::<group::Entity>();
    let _ = loaders.by_id::<grouptype::Entity>();
    // A key loader brings its table's by-id loader, which it primes.
    let _ = loaders.by_key::<user::Entity, String>(user::Column::Email);
    let _ = loaders.by_key::<user::Entity, String>(user::Column::Email);
    assert_eq!(loaders.made(), 4);
    let _ = loaders
        .related::<user::Entity, group::Entity>()
        .expect("M:N");
    let _ = loaders
        .related_at_most::<user::Entity, group::Entity>(5)
        .expect("M:N");
    let _ = loaders
        .related_at_most::<user::Entity, group::Entity>(5)
        .expect("M:N");
    let _ = loaders
        .related_at_most::<grouptype::Entity, group::Entity>(5)
        .expect("1:N");
    assert_eq!(loaders.made(), 7);
    // A belongs-to is no relation by parent id: refused, nothing made.
    let refused = loaders.related::<group::Entity, grouptype::Entity>();
    assert!(refused.is_err());
    assert_eq!(loaders.made(), 7);
}

/// A user and a group, inserted through `store`.
async fn ada_and_admins(store: &Store) -> (user::Model, group::Model) {
    let ada = store
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some("Ada".into())),
            ..Default::default()
        })
        .await
        .expect("ada");
    let admins = store
        .insert::<group::Entity>(group::ActiveModel {
            name: Set(Some("admins".into())),
            ..Default::default()
        })
        .await
        .expect("admins");
    (ada, admins)
}

/// The request's memberships by `(user_id, group_id)`.
fn memberships(store: &Store) -> roster::loader::Loader<users_groups::Model, (i64, i64)> {
    store.loaders().by_key::<users_groups::Entity, (i64, i64)>((
        users_groups::Column::UserId,
        users_groups::Column::GroupId,
    ))
}

async fn a_membership_change_empties_the_relation_caches_of_its_table(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let (ada, admins) = ada_and_admins(&store).await;
    let groups_of = store
        .loaders()
        .related_at_most::<user::Entity, group::Entity>(10)
        .expect("M:N");
    let membership = memberships(&store);
    assert_eq!(
        groups_of.load(ada.id).await.expect("load").map(|g| g.len()),
        Some(0)
    );
    assert!(
        membership
            .load((ada.id, admins.id))
            .await
            .expect("load")
            .is_none()
    );

    assert!(store.add_membership(ada.id, admins.id).await.expect("add"));
    assert_eq!(
        groups_of.load(ada.id).await.expect("load").map(|g| g.len()),
        Some(1)
    );
    assert!(
        membership
            .load((ada.id, admins.id))
            .await
            .expect("load")
            .is_some()
    );

    assert!(
        store
            .remove_membership(ada.id, admins.id)
            .await
            .expect("remove")
    );
    assert_eq!(
        groups_of.load(ada.id).await.expect("load").map(|g| g.len()),
        Some(0)
    );
    assert!(
        membership
            .load((ada.id, admins.id))
            .await
            .expect("load")
            .is_none()
    );
}

async fn a_deletion_empties_the_caches_its_cascade_reaches(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let (ada, admins) = ada_and_admins(&store).await;
    assert!(store.add_membership(ada.id, admins.id).await.expect("add"));
    let membership = memberships(&store);
    let row = membership
        .load((ada.id, admins.id))
        .await
        .expect("load")
        .expect("a membership");
    let by_id = store.loader::<users_groups::Entity>();
    assert!(by_id.load(row.id).await.expect("load").is_some());

    // Deleting the user deletes the membership too (ON DELETE CASCADE).
    store
        .delete::<user::Entity>(ada.id, None)
        .await
        .expect("delete");
    assert!(
        membership
            .load((ada.id, admins.id))
            .await
            .expect("load")
            .is_none()
    );
    assert!(by_id.load(row.id).await.expect("load").is_none());
    assert!(
        store
            .get::<user::Entity>(ada.id)
            .await
            .expect("get")
            .is_none()
    );
}

backend_tests!(migrated:
    a_deletion_empties_the_caches_its_cascade_reaches,
    a_request_that_reads_one_table_builds_one_loader,
    loaders_are_made_per_entity_key_relation_and_limit,
    a_membership_change_empties_the_relation_caches_of_its_table,
);
