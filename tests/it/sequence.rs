//! PostgreSQL: every table draws its ids from the one sequence `all_id_seq`.

use roster_testkit::{TestDb, backend_tests};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Statement};

use crate::fixtures;

async fn ids_are_distinct_across_tables(db: &TestDb) {
    let conn = db.conn();
    let kind = fixtures::grouptype(conn, "class").await;
    let person = fixtures::user(conn, "Ada").await;
    let team = fixtures::group(conn, "5b", Some(kind.id)).await;
    let member = fixtures::membership(person.id, team.id)
        .insert(conn)
        .await
        .expect("membership");
    let ids = [kind.id, person.id, team.id, member.id];
    // One sequence, drawn in insert order: strictly increasing, hence distinct.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let row = conn
        .query_one_raw(Statement::from_string(
            db.db_backend(),
            "SELECT last_value FROM all_id_seq",
        ))
        .await
        .expect("select")
        .expect("row");
    assert_eq!(
        row.try_get::<i64>("", "last_value").expect("last_value"),
        member.id
    );

    let defaults = conn
        .query_all_raw(Statement::from_string(
            db.db_backend(),
            "SELECT table_name::text AS t, column_default::text AS d FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_name = 'id' \
             AND table_name IN ('users', 'groups', 'grouptypes', 'users_groups')",
        ))
        .await
        .expect("select");
    assert_eq!(defaults.len(), 4);
    for row in defaults {
        let (table, default): (String, String) = (
            row.try_get("", "t").expect("t"),
            row.try_get("", "d").expect("d"),
        );
        assert!(
            default.contains("all_id_seq"),
            "{table}.id defaults to {default}"
        );
    }
}

backend_tests!(migrated on [postgres]: ids_are_distinct_across_tables);
