//! The service's table through Roster's store and loaders: the walkthrough
//! the example prints, its migration, and write-through for its relation.

use roster::entity::user;
use roster::migrations::Action;
use roster::store::{Error, OnConflict, Refusal, Store};
use roster_example_projects::entity::{project, users_projects};
use roster_example_projects::walkthrough;
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, Statement};

use super::migrate;

async fn count(db: &TestDb, table: &str) -> i64 {
    let row = db
        .conn()
        .query_one_raw(Statement::from_string(
            db.db_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index(0).expect("the count")
}

async fn the_walkthrough_does_what_it_says(db: &TestDb) {
    let mut printed = Vec::new();
    let summary = walkthrough::run(db.url(), &mut printed)
        .await
        .expect("the walkthrough");
    // The conflict carried the row as the first rename stored it, and the
    // retry on top of it won.
    assert_eq!(summary.conflict_current, summary.renamed);
    assert!(summary.resolved.name.starts_with("APOLLO-"));
    assert!(summary.resolved.lastchange > summary.renamed.lastchange);
    assert_eq!(
        summary.cache_statements, 0,
        "read-your-writes from the cache"
    );
    assert_eq!(
        summary.upserted,
        (1, 1),
        "one inserted, one updated by name"
    );
    assert_eq!(summary.projects_of_first_user.len(), 2);
    // users -> projects -> members: one statement per level.
    assert_eq!(summary.graphql_statements, 3);
    let users = summary.graphql["usersByIds"].as_array().expect("users");
    let members: Vec<usize> = users[0]["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .map(|p| p["members"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(members, [1, 2], "{:#}", summary.graphql);
    assert_eq!(count(db, "projects").await, 2);
    assert_eq!(count(db, "users_projects").await, 3);
    let text = String::from_utf8(printed).expect("utf-8");
    assert!(text.contains("m20261202_000001_create_projects"), "{text}");
}

async fn the_service_migration_comes_after_roster_s_and_rolls_back_alone(db: &TestDb) {
    let up = migrate(db, Action::Up { steps: None }).await;
    let names: Vec<&str> = up.states.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(names[6], "m20261202_000001_create_projects");
    assert!(up.states.iter().all(|m| m.applied));

    let down = migrate(db, Action::Down { steps: Some(1) }).await;
    assert_eq!(down.rolled_back, ["m20261202_000001_create_projects"]);
    let gone = db
        .conn()
        .execute_raw(Statement::from_string(
            db.db_backend(),
            "SELECT 1 FROM projects",
        ))
        .await;
    assert!(gone.is_err(), "projects was dropped");
    assert_eq!(count(db, "users").await, 0, "Roster's tables stay");
    // Roster's own runner still accepts the database.
    let roster = roster::migrations::run(db.url(), Action::Status)
        .await
        .expect("status");
    assert!(roster.states.iter().all(|m| m.applied));
}

async fn relation_caches_follow_writes_to_the_service_tables(db: &TestDb) {
    migrate(db, Action::Up { steps: None }).await;
    let store = Store::new(db.conn().clone());
    let ada = store
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some("Ada".into())),
            ..Default::default()
        })
        .await
        .expect("ada");
    let project = store
        .insert::<project::Entity>(project::ActiveModel {
            name: Set("apollo".into()),
            ..Default::default()
        })
        .await
        .expect("project");
    let projects_of = store
        .loaders()
        .related::<user::Entity, project::Entity>()
        .expect("the relation");
    let before = projects_of.load(ada.id).await.expect("load");
    assert_eq!(before.map(|p| p.len()), Some(0));

    let link = store
        .insert::<users_projects::Entity>(users_projects::ActiveModel {
            user_id: Set(ada.id),
            project_id: Set(project.id),
            ..Default::default()
        })
        .await
        .expect("link");
    let after = projects_of.load(ada.id).await.expect("load");
    assert_eq!(
        after.map(|p| p.iter().map(|p| p.id).collect::<Vec<_>>()),
        Some(vec![project.id]),
        "the insert emptied the relation cache"
    );

    // A rename shows through the relation too (its rows are cached whole).
    let renamed = store
        .update::<project::Entity>(
            project.id,
            project.lastchange,
            project::ActiveModel {
                name: Set("Apollo".into()),
                ..Default::default()
            },
        )
        .await
        .expect("rename");
    let shown = projects_of.load(ada.id).await.expect("load");
    assert_eq!(shown.map(|p| p[0].name.clone()), Some(renamed.name));

    store
        .delete::<users_projects::Entity>(link.id, None)
        .await
        .expect("unlink");
    let unlinked = projects_of.load(ada.id).await.expect("load");
    assert_eq!(unlinked.map(|p| p.len()), Some(0));

    // An unversioned table has no version to check against.
    let err = store
        .delete::<users_projects::Entity>(link.id, Some(chrono::Utc::now()))
        .await
        .expect_err("no version column");
    assert_eq!(err.as_refusal(), Some(&Refusal::NotVersioned));
}

async fn upserts_conflict_on_the_declared_key(db: &TestDb) {
    migrate(db, Action::Up { steps: None }).await;
    let store = Store::new(db.conn().clone());
    let named = |name: &str| project::ActiveModel {
        name: Set(name.into()),
        ..Default::default()
    };
    let first = store
        .upsert_all::<project::Entity>([named("a"), named("b")], OnConflict::Update, None)
        .await
        .expect("upsert");
    assert_eq!((first.inserted, first.updated), (2, 0));
    let again = store
        .upsert_all::<project::Entity>([named("b"), named("c")], OnConflict::Ignore, None)
        .await
        .expect("upsert");
    assert_eq!((again.inserted, again.ignored), (1, 1));
    assert_eq!(count(db, "projects").await, 3);
    // The name is unique: a plain insert of a taken one is refused.
    let err = store
        .insert::<project::Entity>(named("a"))
        .await
        .expect_err("duplicate");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}

backend_tests!(
    the_walkthrough_does_what_it_says,
    the_service_migration_comes_after_roster_s_and_rolls_back_alone,
    relation_caches_follow_writes_to_the_service_tables,
    upserts_conflict_on_the_declared_key,
);
