//! The migrations: up, down and up again; step counts; `fresh` over data.

use roster::migrations::{Action, Report, run};
use roster_testkit::{Backend, TestDb, backend_tests};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, Statement};
use sea_orm_migration::SchemaManager;

use crate::fixtures;
use roster::entity::prelude::{Group, User, UsersGroups};

const TABLES: [&str; 4] = ["grouptypes", "users", "groups", "users_groups"];
const INDEXES: [(&str, &str); 7] = [
    ("users", "idx_users_external_id"),
    ("groups", "idx_groups_external_id"),
    ("groups", "idx_groups_grouptype_id"),
    ("users_groups", "uq_users_groups_user_id_group_id"),
    ("users_groups", "idx_users_groups_group_id"),
    ("users", "idx_users_email"),
    ("groups", "idx_groups_entry_year_id"),
];

async fn migrate(db: &TestDb, action: Action) -> Report {
    run(db.url(), action).await.expect("migration run")
}

fn applied(report: &Report) -> usize {
    report.states.iter().filter(|m| m.applied).count()
}

async fn tables_present(db: &TestDb) -> Vec<&'static str> {
    let manager = SchemaManager::new(db.conn());
    let mut present = Vec::new();
    for table in TABLES {
        if manager.has_table(table).await.expect("has_table") {
            present.push(table);
        }
    }
    present
}

async fn sequence_exists(db: &TestDb) -> bool {
    let row = db
        .conn()
        .query_one_raw(Statement::from_string(
            db.db_backend(),
            "SELECT COUNT(*) AS n FROM pg_class WHERE relkind = 'S' AND relname = 'all_id_seq'",
        ))
        .await
        .expect("query pg_class")
        .expect("one row");
    row.try_get::<i64>("", "n").expect("count") == 1
}

async fn up_down_up_round_trips(db: &TestDb) {
    let up = migrate(db, Action::Up { steps: None }).await;
    assert_eq!(up.applied.len(), 6, "{up:?}");
    assert_eq!(tables_present(db).await, TABLES);
    let manager = SchemaManager::new(db.conn());
    for (table, index) in INDEXES {
        assert!(
            manager.has_index(table, index).await.expect("has_index"),
            "{index} missing"
        );
    }
    if db.backend() == Backend::Postgres {
        assert!(sequence_exists(db).await);
    }

    let down = migrate(db, Action::Down { steps: None }).await;
    assert_eq!(down.rolled_back.len(), 6, "{down:?}");
    assert_eq!(applied(&down), 0);
    assert!(
        tables_present(db).await.is_empty(),
        "down left tables behind"
    );
    if db.backend() == Backend::Postgres {
        assert!(!sequence_exists(db).await, "down left all_id_seq behind");
    }

    let again = migrate(db, Action::Up { steps: None }).await;
    assert_eq!(again.applied.len(), 6);
    assert_eq!(tables_present(db).await, TABLES);
    // The recreated schema takes rows.
    let user = fixtures::user(db.conn(), "after round trip").await;
    assert!(user.id > 0);
}

async fn steps_apply_and_roll_back_one_at_a_time(db: &TestDb) {
    let two = migrate(db, Action::Up { steps: Some(2) }).await;
    assert_eq!(
        two.applied,
        [
            "m20261122_000001_create_id_sequence",
            "m20261122_000002_create_grouptypes"
        ]
    );
    assert_eq!(tables_present(db).await, ["grouptypes"]);

    let status = migrate(db, Action::Status).await;
    assert!(status.applied.is_empty() && status.rolled_back.is_empty());
    assert_eq!(applied(&status), 2);

    let rest = migrate(db, Action::Up { steps: None }).await;
    assert_eq!(rest.applied.len(), 4);
    let back = migrate(db, Action::Down { steps: Some(1) }).await;
    assert_eq!(back.rolled_back, ["m20261202_030000_create_lookup_indexes"]);
    let manager = SchemaManager::new(db.conn());
    for (table, index) in [
        ("users", "idx_users_email"),
        ("groups", "idx_groups_entry_year_id"),
    ] {
        let present = manager.has_index(table, index).await.expect("has_index");
        assert!(!present, "{index} outlived its migration's down");
    }
    assert_eq!(tables_present(db).await, TABLES);
    let back = migrate(db, Action::Down { steps: Some(1) }).await;
    assert_eq!(back.rolled_back, ["m20261122_000005_create_users_groups"]);
    assert_eq!(tables_present(db).await, ["grouptypes", "users", "groups"]);
}

async fn fresh_drops_data_and_reapplies(db: &TestDb) {
    migrate(db, Action::Up { steps: None }).await;
    let conn = db.conn();
    let kind = fixtures::grouptype(conn, "class").await;
    let group = fixtures::group(conn, "5b", Some(kind.id)).await;
    let user = fixtures::user(conn, "Ada").await;
    UsersGroups::insert(fixtures::membership(user.id, group.id))
        .exec(conn)
        .await
        .expect("insert membership");

    let fresh = migrate(db, Action::Fresh).await;
    assert_eq!(applied(&fresh), 6);
    assert_eq!(User::find().count(conn).await.expect("count"), 0);
    assert_eq!(Group::find().count(conn).await.expect("count"), 0);

    let refresh = migrate(db, Action::Refresh).await;
    assert_eq!(applied(&refresh), 6);
    let reset = migrate(db, Action::Reset).await;
    assert_eq!(applied(&reset), 0);
    assert!(tables_present(db).await.is_empty());
}

backend_tests!(
    up_down_up_round_trips,
    steps_apply_and_roll_back_one_at_a_time,
    fresh_drops_data_and_reapplies,
);
