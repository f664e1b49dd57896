//! Loaders by unique keys other than the id: `externalId`, e-mail and a
//! membership's `(user_id, group_id)`, on every backend.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use roster::entity::{group, user, users_groups};
use roster::loader::{EntitySource, Loader, LoaderOptions};
use roster::store::Loaders;
use roster_testkit::{Backend, TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection};

use crate::fixtures;

/// Users 1..=n with `externalId` 1000 + id and e-mail `user{id}@example.org`.
async fn seed_people(conn: &DatabaseConnection, n: i64) {
    fixtures::seed_users(conn, 1..=n).await;
    for id in 1..=n {
        user::ActiveModel {
            id: Set(id),
            external_id: Set(Some(1000 + id)),
            email: Set(Some(format!("user{id}@example.org"))),
            ..Default::default()
        }
        .update(conn)
        .await
        .expect("set keys");
    }
}

async fn lookups_by_external_id_and_email_are_one_statement_per_key_kind(db: &TestDb) {
    seed_people(db.conn(), 50).await;
    let (conn, log) = db.logged_conn().await;
    let loaders = Loaders::new(conn);
    let by_external_id = loaders.by_key::<user::Entity, i64>(user::Column::ExternalId);
    let by_email = loaders.by_key::<user::Entity, String>(user::Column::Email);
    let by_external = join_all((1..=60).map(|id| by_external_id.load(1000 + id)));
    let by_email = join_all((1..=60).map(|id| by_email.load(format!("user{id}@example.org"))));
    let (by_external, by_email) = tokio::join!(by_external, by_email);
    for (id, (a, b)) in (1..=60).zip(by_external.into_iter().zip(by_email)) {
        let expected = (id <= 50).then_some(id);
        assert_eq!(
            a.expect("load").map(|u| u.id),
            expected,
            "externalId of {id}"
        );
        assert_eq!(b.expect("load").map(|u| u.id), expected, "email of {id}");
    }
    assert_eq!(log.selects(), 2, "one per key kind: {:#?}", log.all());
    if db.backend() == Backend::Postgres {
        assert!(
            log.all().iter().all(|s| s.contains("= ANY($1)")),
            "{:#?}",
            log.all()
        );
    }
}

async fn a_row_loaded_by_key_primes_the_by_id_loader(db: &TestDb) {
    seed_people(db.conn(), 3).await;
    let (conn, log) = db.logged_conn().await;
    let loaders = Loaders::new(conn);
    let by_email = loaders
        .by_key::<user::Entity, String>(user::Column::Email)
        .load("user2@example.org".into())
        .await
        .expect("load")
        .expect("found");
    let by_id = loaders
        .by_id::<user::Entity>()
        .load(2)
        .await
        .expect("load")
        .expect("found");
    assert!(Arc::ptr_eq(&by_email, &by_id), "the same shared row");
    assert_eq!(log.selects(), 1, "{:#?}", log.all());
}

async fn text_keys_compare_byte_wise(db: &TestDb) {
    seed_people(db.conn(), 2).await;
    // A trailing space: MariaDB's PAD SPACE collation matches it in SQL,
    // the loader (like Roster's columns elsewhere) does not.
    let (conn, log) = db.logged_conn().await;
    let loaders = Loaders::new(conn);
    let keys = [
        "user1@example.org",
        "USER1@example.org",
        "user1@example.org ",
        "user2@example.org",
        "",
    ]
    .map(String::from);
    let found = loaders
        .by_key::<user::Entity, String>(user::Column::Email)
        .load_many(&keys)
        .await
        .expect("load_many");
    let ids: Vec<Option<i64>> = found.iter().map(|u| u.as_ref().map(|u| u.id)).collect();
    assert_eq!(ids, [Some(1), None, None, Some(2), None]);
    assert_eq!(log.selects(), 1);
}

async fn a_key_shared_by_several_rows_gives_the_lowest_id(db: &TestDb) {
    seed_people(db.conn(), 3).await;
    db.conn()
        .execute_unprepared(r#"UPDATE users SET email = 'shared@example.org' WHERE id IN (3, 2)"#)
        .await
        .expect("share an e-mail");
    let loaders = Loaders::new(db.conn().clone());
    let user = loaders
        .by_key::<user::Entity, String>(user::Column::Email)
        .load("shared@example.org".into())
        .await
        .expect("load");
    assert_eq!(user.map(|u| u.id), Some(2));
}

async fn groups_by_text_external_id(db: &TestDb) {
    let kind = fixtures::grouptype(db.conn(), "team").await;
    let mut expected = Vec::new();
    for i in 0..5 {
        let g = fixtures::group(db.conn(), &format!("g{i}"), Some(kind.id)).await;
        let g = group::ActiveModel {
            id: Set(g.id),
            external_id: Set(Some(format!("ext-ü-{i}"))),
            ..Default::default()
        }
        .update(db.conn())
        .await
        .expect("external id");
        expected.push(Some(g.id));
    }
    expected.push(None);
    let (conn, log) = db.logged_conn().await;
    let loaders = Loaders::new(conn);
    let keys: Vec<String> = (0..6).map(|i| format!("ext-ü-{i}")).collect();
    let by_external_id = loaders.by_key::<group::Entity, String>(group::Column::ExternalId);
    let found = join_all(keys.iter().map(|k| by_external_id.load(k.clone()))).await;
    let ids: Vec<Option<i64>> = found
        .into_iter()
        .map(|g| g.expect("load").map(|g| g.id))
        .collect();
    assert_eq!(ids, expected);
    // And by id, from the cache.
    assert!(
        loaders
            .by_id::<group::Entity>()
            .load(expected[0].expect("id"))
            .await
            .expect("load")
            .is_some()
    );
    assert_eq!(log.selects(), 1, "{:#?}", log.all());
}

async fn memberships_by_user_and_group_pair(db: &TestDb) {
    let ada = fixtures::user(db.conn(), "Ada").await;
    let bob = fixtures::user(db.conn(), "Bob").await;
    let g1 = fixtures::group(db.conn(), "one", None).await;
    let g2 = fixtures::group(db.conn(), "two", None).await;
    for (u, g) in [(ada.id, g1.id), (bob.id, g1.id), (bob.id, g2.id)] {
        fixtures::membership(u, g)
            .insert(db.conn())
            .await
            .expect("member");
    }
    let (conn, log) = db.logged_conn().await;
    let loaders = Loaders::new(conn);
    let pairs = [
        (ada.id, g1.id),
        (ada.id, g2.id),
        (bob.id, g1.id),
        (bob.id, g2.id),
        (ada.id, 987_654),
    ];
    let memberships = loaders.by_key::<users_groups::Entity, (i64, i64)>((
        users_groups::Column::UserId,
        users_groups::Column::GroupId,
    ));
    let found = join_all(pairs.map(|pair| memberships.load(pair))).await;
    let present: Vec<Option<(i64, i64)>> = found
        .into_iter()
        .map(|m| m.expect("load").map(|m| (m.user_id, m.group_id)))
        .collect();
    assert_eq!(
        present,
        [Some(pairs[0]), None, Some(pairs[2]), Some(pairs[3]), None]
    );
    assert_eq!(log.selects(), 1, "{:#?}", log.all());
    if db.backend() == Backend::Postgres {
        assert!(log.all()[0].contains("UNNEST($1, $2)"), "{}", log.all()[0]);
    }
}

async fn pair_statement_text_is_stable_and_bound_limits_hold(db: &TestDb) {
    let (conn, log) = db.logged_conn().await;
    let loader = Loader::with_options(
        EntitySource::<users_groups::Entity, (i64, i64)>::unique(
            conn.clone(),
            (users_groups::Column::UserId, users_groups::Column::GroupId),
        ),
        LoaderOptions::new().cache_enabled(false),
    );
    for n in [1_i64, 2, 3, 5, 9, 17, 33] {
        let pairs: Vec<(i64, i64)> = (0..n).map(|i| (i, i + 1)).collect();
        assert!(
            loader
                .load_many(&pairs)
                .await
                .expect("load")
                .iter()
                .all(Option::is_none)
        );
    }
    let texts: HashSet<String> = log.all().into_iter().collect();
    let expected = match db.backend() {
        Backend::Postgres => 1,
        _ => 7, // 1, 2, 4, 8, 16, 32 and 64 pairs
    };
    assert_eq!(texts.len(), expected, "{texts:#?}");

    // 10,000 pairs: one statement on PostgreSQL, 4,096 pairs (8,192
    // parameters) per statement elsewhere.
    log.clear();
    let pairs: Vec<(i64, i64)> = (0..10_000).map(|i| (i, -i)).collect();
    let found = loader.load_many(&pairs).await.expect("10,000 pairs");
    assert_eq!(found.len(), 10_000);
    let expected = match db.backend() {
        Backend::Postgres => 1,
        _ => 3,
    };
    assert_eq!(log.selects(), expected);
}

backend_tests!(
    migrated: lookups_by_external_id_and_email_are_one_statement_per_key_kind,
    a_row_loaded_by_key_primes_the_by_id_loader,
    text_keys_compare_byte_wise,
    a_key_shared_by_several_rows_gives_the_lowest_id,
    groups_by_text_external_id,
    memberships_by_user_and_group_pair,
    pair_statement_text_is_stable_and_bound_limits_hold,
);
