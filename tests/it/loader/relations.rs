//! Relation loaders: one statement per level of a nested fan-out, ordering
//! and per-parent limits in SQL.

use std::sync::Arc;

use futures::future::join_all;
use roster::entity::prelude::{Group, User};
use roster::entity::{group, grouptype, user, users_groups};
use roster::loader::{EntitySource, Loader, LoaderOptions, LoaderScope, RelationSource};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::sea_query::Order;
use sea_orm::{DatabaseConnection, EntityTrait, ModelTrait, QueryOrder, QuerySelect};

use crate::fixtures;

/// 4 group types, 60 groups, 120 users each in 3 groups; group type 4 has no groups.
async fn seed(conn: &DatabaseConnection) {
    let mut kinds = Vec::new();
    for k in 0..4 {
        kinds.push(fixtures::grouptype(conn, &format!("kind {k}")).await.id);
    }
    let mut groups = Vec::new();
    for g in 0..60 {
        let name = format!("group {:02}", (g * 37) % 60); // names not in id order
        groups.push(fixtures::group(conn, &name, Some(kinds[g % 3])).await.id);
    }
    let mut rows = Vec::new();
    for u in 0..120_usize {
        let person = fixtures::user(conn, &format!("user {u}")).await;
        for k in 0..3 {
            rows.push(fixtures::membership(
                person.id,
                groups[(u * 7 + k * 13) % 60],
            ));
        }
    }
    users_groups::Entity::insert_many(rows)
        .exec(conn)
        .await
        .expect("memberships");
}

struct Loaders {
    kind: Loader<grouptype::Model>,
    users_of_group: Loader<Vec<Arc<user::Model>>>,
    groups_of_user: Loader<Vec<Arc<group::Model>>>,
}

/// The loaders of one request, sharing one scope.
fn loaders(conn: &DatabaseConnection) -> Loaders {
    let scope = LoaderScope::new();
    let users_of_group = RelationSource::<user::Entity>::many_to_many::<users_groups::Entity>(
        conn.clone(),
        users_groups::Column::GroupId,
        users_groups::Column::UserId,
    );
    let groups_of_user = RelationSource::<group::Entity>::many_to_many::<users_groups::Entity>(
        conn.clone(),
        users_groups::Column::UserId,
        users_groups::Column::GroupId,
    );
    Loaders {
        kind: Loader::with_options(
            EntitySource::<grouptype::Entity>::new(conn.clone()),
            LoaderOptions::new().scope(scope.clone()),
        ),
        users_of_group: Loader::with_options(
            users_of_group,
            LoaderOptions::new().scope(scope.clone()),
        ),
        groups_of_user: Loader::with_options(
            groups_of_user,
            LoaderOptions::new().scope(scope.clone()),
        ),
    }
}

/// `(group, its type's name, [(member, [member's group ids])])`
type Tree = Vec<(i64, Option<String>, Vec<(i64, Vec<i64>)>)>;

async fn three_level_fan_out_issues_one_statement_per_level(db: &TestDb) {
    seed(db.conn()).await;
    let top = Group::find()
        .order_by_asc(group::Column::Id)
        .limit(50)
        .all(db.conn())
        .await
        .expect("groups");

    // The GraphQL shape: each group's fields resolve concurrently and
    // independently: `groupType`, and `users { groups }`, whose nested level
    // starts as soon as the users are in (not when the type is).
    let (conn, log) = db.logged_conn().await;
    let l = loaders(&conn);
    let tree: Tree = join_all(top.iter().map(|g| {
        let l = &l;
        let users_field = async move {
            let members = l.users_of_group.load(g.id).await.expect("users");
            join_all(members.unwrap_or_default().iter().map(|u| async move {
                let groups = l.groups_of_user.load(u.id).await.expect("groups");
                (
                    u.id,
                    groups.unwrap_or_default().iter().map(|g| g.id).collect(),
                )
            }))
            .await
        };
        async move {
            let (kind, nested) =
                tokio::join!(l.kind.load(g.grouptype_id.expect("typed")), users_field);
            (
                g.id,
                kind.expect("kind").and_then(|k| k.name.clone()),
                nested,
            )
        }
    }))
    .await;
    // Level 1: group types and users of groups; level 2: groups of users.
    assert_eq!(log.selects(), 3, "{:#?}", log.all());

    // The same data, asked for row by row.
    let mut expected: Tree = Vec::new();
    for g in &top {
        let kind = g
            .find_related(grouptype::Entity)
            .one(db.conn())
            .await
            .expect("kind");
        let mut members = g.find_related(User).all(db.conn()).await.expect("users");
        members.sort_by_key(|u| u.id);
        let mut nested = Vec::new();
        for u in members {
            let mut ids: Vec<i64> = u
                .find_related(Group)
                .all(db.conn())
                .await
                .expect("groups")
                .iter()
                .map(|g| g.id)
                .collect();
            ids.sort_unstable();
            nested.push((u.id, ids));
        }
        expected.push((g.id, kind.and_then(|k| k.name), nested));
    }
    assert_eq!(tree, expected);
}

async fn order_and_limit_per_parent_apply_in_sql(db: &TestDb) {
    seed(db.conn()).await;
    let people = User::find()
        .order_by_asc(user::Column::Id)
        .limit(20)
        .all(db.conn())
        .await
        .expect("users");
    let (conn, log) = db.logged_conn().await;
    let top_two = Loader::new(
        RelationSource::<group::Entity>::many_to_many::<users_groups::Entity>(
            conn.clone(),
            users_groups::Column::UserId,
            users_groups::Column::GroupId,
        )
        .order_by(group::Column::Name, Order::Desc)
        .limit_per_parent(2),
    );
    let ids: Vec<i64> = people.iter().map(|u| u.id).collect();
    let loaded = top_two.load_many(&ids).await.expect("load_many");
    assert_eq!(log.selects(), 1);
    assert!(log.all()[0].contains("ROW_NUMBER"), "{}", log.all()[0]);

    for (person, groups) in people.iter().zip(loaded) {
        let mut all = person
            .find_related(Group)
            .all(db.conn())
            .await
            .expect("groups");
        all.sort_by(|a, b| b.name.cmp(&a.name).then(a.id.cmp(&b.id)));
        all.truncate(2);
        assert_eq!(
            fixtures::owned_rows(groups).unwrap_or_default(),
            all,
            "user {}",
            person.id
        );
    }
}

async fn has_many_gives_every_parent_its_children(db: &TestDb) {
    seed(db.conn()).await;
    let (conn, log) = db.logged_conn().await;
    let groups_of_kind = Loader::new(
        RelationSource::<group::Entity>::has_many(conn.clone(), group::Column::GrouptypeId)
            .order_by(group::Column::Name, Order::Asc),
    );
    let kinds = grouptype::Entity::find()
        .order_by_asc(grouptype::Column::Id)
        .all(db.conn())
        .await
        .expect("kinds");
    let mut ids: Vec<i64> = kinds.iter().map(|k| k.id).collect();
    ids.push(987_654_321); // no such type
    let loaded = groups_of_kind.load_many(&ids).await.expect("load_many");
    assert_eq!(log.selects(), 1);

    let sizes: Vec<usize> = loaded
        .iter()
        .map(|g| g.as_ref().map_or(99, |g| g.len()))
        .collect();
    assert_eq!(
        sizes,
        [20, 20, 20, 0, 0],
        "type 4 and the unknown type have none"
    );
    for (kind, groups) in kinds.iter().zip(&loaded) {
        let groups = fixtures::owned_rows(groups.clone()).unwrap_or_default();
        assert!(groups.iter().all(|g| g.grouptype_id == Some(kind.id)));
        assert!(
            groups.windows(2).all(|w| w[0].name <= w[1].name),
            "ordered by name"
        );
    }

    // A group added in the request is found after clearing its parent.
    let extra = fixtures::group(db.conn(), "group 99", Some(kinds[3].id)).await;
    groups_of_kind.clear(&kinds[3].id);
    let fresh = groups_of_kind.load(kinds[3].id).await.expect("load");
    assert_eq!(fixtures::owned_rows(fresh), Some(vec![extra.clone()]));
    extra.delete(db.conn()).await.expect("delete");
}

backend_tests!(
    migrated:
    order_and_limit_per_parent_apply_in_sql,
    has_many_gives_every_parent_its_children,
);

/// The same fan-out on tokio's current-thread runtime.
async fn three_level_fan_out_on_one_thread(db: &TestDb) {
    three_level_fan_out_issues_one_statement_per_level(db).await;
}

backend_tests!(migrated: three_level_fan_out_issues_one_statement_per_level);
backend_tests!(current_thread migrated: three_level_fan_out_on_one_thread);
