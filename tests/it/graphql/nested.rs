//! The nested query of the issue: the same data as SQL, one statement per
//! level.

use std::collections::BTreeMap;

use roster::server::{AppState, seed};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use super::Server;

/// Limits above the demo data's counts (15 members per group, 3 groups per
/// member), so the answer holds every row.
const NESTED: &str = "{ groups(limit: 50) { id name groupType { name } \
     users(limit: 20) { id groups(limit: 5) { name } } } }";

/// The answer `NESTED` must give, from one join.
async fn expected(db: &TestDb) -> Value {
    let sql = "SELECT g.id, g.name, gt.name, u.id, g2.name \
        FROM groups g \
        LEFT JOIN grouptypes gt ON gt.id = g.grouptype_id \
        LEFT JOIN users_groups ug ON ug.group_id = g.id \
        LEFT JOIN users u ON u.id = ug.user_id \
        LEFT JOIN users_groups ug2 ON ug2.user_id = u.id \
        LEFT JOIN groups g2 ON g2.id = ug2.group_id \
        ORDER BY g.id, u.id, g2.id";
    let rows = db
        .conn()
        .query_all_raw(Statement::from_string(db.db_backend(), sql))
        .await
        .expect("the check query");
    // group id -> (name, type name, user id -> [group names])
    type Users = BTreeMap<i64, Vec<Value>>;
    let mut groups: BTreeMap<i64, (Option<String>, Option<String>, Users)> = BTreeMap::new();
    for row in rows {
        let gid: i64 = row.try_get_by_index(0).expect("g.id");
        let entry = groups.entry(gid).or_insert_with(|| {
            (
                row.try_get_by_index(1).expect("g.name"),
                row.try_get_by_index(2).expect("gt.name"),
                BTreeMap::new(),
            )
        });
        if let Some(uid) = row.try_get_by_index::<Option<i64>>(3).expect("u.id") {
            let name: Option<String> = row.try_get_by_index(4).expect("g2.name");
            entry
                .2
                .entry(uid)
                .or_default()
                .push(json!({ "name": name }));
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .take(50)
        .map(|(id, (name, kind, users))| {
            json!({
                "id": id.to_string(),
                "name": name,
                "groupType": kind.map(|k| json!({ "name": k })),
                "users": users
                    .into_iter()
                    .map(|(uid, groups)| json!({ "id": uid.to_string(), "groups": groups }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "groups": groups })
}

async fn nested_query_matches_sql_with_one_statement_per_level(db: &TestDb) {
    assert!(
        seed::seed_if_empty(db.url(), db.conn())
            .await
            .expect("seed")
    );
    let (conn, log) = db.logged_conn().await;
    let state = AppState::new(conn);
    let loader_metrics = state.metrics().loader().clone();
    let server = Server::start(state).await;

    log.clear();
    let data = server.data(NESTED, json!({})).await;
    let statements = log.all();
    // The page of groups, then one statement per level: the group types and
    // the groups' users (level 2), the users' groups (level 3).
    assert_eq!(statements.len(), 4, "{statements:#?}");
    assert_eq!(log.selects(), 4);
    assert_eq!(loader_metrics.snapshot().statements, 3);
    eprintln!(
        "{:?}: the nested query issued {} statements",
        db.backend(),
        statements.len()
    );

    let groups = data["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 50);
    let members: usize = groups
        .iter()
        .map(|g| g["users"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(
        members > 500,
        "the demo data has ~15 members per group: {members}"
    );
    assert_eq!(data, expected(db).await);
    server.stop().await;
}

async fn two_replicas_seed_once(db: &TestDb) {
    let (a, b) = tokio::join!(
        seed::seed_if_empty(db.url(), db.conn()),
        seed::seed_if_empty(db.url(), db.conn())
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert!(a != b, "exactly one seeds: {a} {b}");
    let count = db
        .conn()
        .query_one_raw(Statement::from_string(
            db.db_backend(),
            "SELECT COUNT(*) FROM users_groups",
        ))
        .await
        .expect("count")
        .expect("a row");
    assert_eq!(count.try_get_by_index::<i64>(0).expect("n"), 900);
}

backend_tests!(migrated: nested_query_matches_sql_with_one_statement_per_level, two_replicas_seed_once);
