//! Cursor pagination over real HTTP: pages stay correct while rows are
//! added and removed between them, nested connections cost one statement
//! per level, `totalCount` costs a statement only when asked, and bad
//! cursors are refused.

use std::collections::BTreeMap;

use roster::server::{AppState, seed};
use roster_testkit::{StatementLog, TestDb, backend_tests};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use super::{Server, error_code};

async fn start(db: &TestDb) -> (Server, StatementLog) {
    let (conn, log) = db.logged_conn().await;
    (Server::start(AppState::new(conn)).await, log)
}

async fn insert_user(server: &Server, name: &str) -> i64 {
    let data = server
        .data(
            "mutation($n: String) { userInsert(user: { name: $n }) { id } }",
            json!({ "n": name }),
        )
        .await;
    data["userInsert"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("an id")
}

async fn delete_user(server: &Server, id: i64) {
    let data = server
        .data(
            "mutation($id: ID!) { userDelete(id: $id) }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert_eq!(data["userDelete"], true);
}

const PAGE: &str = "query($after: String) { usersConnection(first: 10, after: $after) { \
                    edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }";

fn ids(connection: &Value) -> Vec<i64> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            e["node"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("id")
        })
        .collect()
}

async fn pages_skip_and_repeat_nothing_while_rows_come_and_go(db: &TestDb) {
    let (server, _log) = start(db).await;
    let mut all = Vec::new();
    for i in 0..25 {
        all.push(insert_user(&server, &format!("u{i}")).await);
    }
    let first = server.data(PAGE, json!({ "after": null })).await;
    let first = &first["usersConnection"];
    assert_eq!(ids(first), all[..10]);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    // The last edge's cursor is the page's end cursor.
    assert_eq!(first["edges"][9]["cursor"], first["pageInfo"]["endCursor"]);

    // Between pages: a row already seen and one not yet seen go, two come.
    delete_user(&server, all[3]).await;
    delete_user(&server, all[12]).await;
    let added = [
        insert_user(&server, "late 1").await,
        insert_user(&server, "late 2").await,
    ];
    let mut seen = ids(first);
    let mut after = first["pageInfo"]["endCursor"].clone();
    loop {
        let page = server.data(PAGE, json!({ "after": after })).await;
        let page = &page["usersConnection"];
        seen.extend(ids(page));
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    let mut expected: Vec<i64> = all.iter().copied().filter(|&id| id != all[12]).collect();
    expected.extend(added);
    assert_eq!(seen, expected, "every row once, in id order");

    // A filter narrows the pages and the count alike.
    let late = server
        .data(
            "{ usersConnection(first: 1, filter: { nameContains: \"late\" }) { \
             totalCount pageInfo { hasNextPage } nodes { id } } }",
            json!({}),
        )
        .await;
    let late = &late["usersConnection"];
    assert_eq!(late["totalCount"], 2);
    assert_eq!(late["pageInfo"]["hasNextPage"], true);
    assert_eq!(late["nodes"][0]["id"], added[0].to_string());
}

/// The demo data's groups, each with its members' ids (ascending).
async fn members_by_group(db: &TestDb) -> BTreeMap<i64, Vec<i64>> {
    let rows = db
        .conn()
        .query_all_raw(Statement::from_string(
            db.db_backend(),
            "SELECT g.id, ug.user_id FROM groups g \
             LEFT JOIN users_groups ug ON ug.group_id = g.id ORDER BY g.id, ug.user_id",
        ))
        .await
        .expect("members");
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for row in rows {
        let group: i64 = row.try_get_by_index(0).expect("group");
        let user: Option<i64> = row.try_get_by_index(1).expect("user");
        groups.entry(group).or_default().extend(user);
    }
    groups
}

async fn nested_connections_cost_one_statement_per_level(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    let expected = members_by_group(db).await;
    let (server, log) = start(db).await;
    let query = "{ groupsConnection(first: 100) { nodes { id usersConnection(first: 5) { \
                 pageInfo { hasNextPage } nodes { id groupsConnection(first: 2) { nodes { id } } } } } } }";
    log.clear();
    let data = server.data(query, json!({})).await;
    assert_eq!(log.selects(), 3, "{:#?}", log.all());
    let groups = data["groupsConnection"]["nodes"]
        .as_array()
        .expect("groups");
    assert_eq!(groups.len(), expected.len().min(100));
    for group in groups {
        let id: i64 = group["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("id");
        let members = &expected[&id];
        let shown: Vec<i64> = group["usersConnection"]["nodes"]
            .as_array()
            .expect("users")
            .iter()
            .map(|u| u["id"].as_str().and_then(|s| s.parse().ok()).expect("id"))
            .collect();
        assert_eq!(shown, members[..members.len().min(5)], "group {id}");
        assert_eq!(
            group["usersConnection"]["pageInfo"]["hasNextPage"],
            members.len() > 5,
            "group {id}"
        );
    }
}

async fn total_count_costs_a_statement_only_when_asked(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    let expected = members_by_group(db).await;
    let (server, log) = start(db).await;
    log.clear();
    server
        .data("{ groupsConnection(first: 5) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(log.selects(), 1);
    log.clear();
    let data = server
        .data(
            "{ groupsConnection(first: 5) { totalCount nodes { id usersConnection(first: 1) { totalCount } } } }",
            json!({}),
        )
        .await;
    // The page, the count of groups, the members' page, their counts.
    assert_eq!(log.selects(), 4, "{:#?}", log.all());
    assert_eq!(data["groupsConnection"]["totalCount"], expected.len());
    for group in data["groupsConnection"]["nodes"]
        .as_array()
        .expect("groups")
    {
        let id: i64 = group["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("id");
        assert_eq!(group["usersConnection"]["totalCount"], expected[&id].len());
    }
}

async fn a_nested_page_continues_after_its_cursor(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    let expected = members_by_group(db).await;
    let (group, members) = expected
        .iter()
        .find(|(_, m)| m.len() > 3)
        .expect("a group with more than three members");
    let (server, _log) = start(db).await;
    let query = "query($g: ID!, $after: String) { group(id: $g) { usersConnection(first: 2, after: $after) { \
                 pageInfo { hasNextPage endCursor } nodes { id } } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = server
            .data(query, json!({ "g": group.to_string(), "after": after }))
            .await;
        let page = &data["group"]["usersConnection"];
        for node in page["nodes"].as_array().expect("nodes") {
            seen.push(
                node["id"]
                    .as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .expect("id"),
            );
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(&seen, members);
}

async fn bad_cursors_and_sizes_are_refused_before_any_statement(db: &TestDb) {
    let (server, log) = start(db).await;
    insert_user(&server, "Ada").await;
    for (query, variables) in [
        (PAGE, json!({ "after": "not a cursor" })),
        (PAGE, json!({ "after": "dXNlcjo0Mg" })),
        ("{ usersConnection(first: 0) { nodes { id } } }", json!({})),
        (
            "{ usersConnection(first: 1001) { nodes { id } } }",
            json!({}),
        ),
    ] {
        log.clear();
        let answer = server.run(query, variables).await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer:#}");
        assert_eq!(log.len(), 0, "{query}: {:#?}", log.all());
    }
    log.clear();
    let answer = server
        .run(
            "{ usersConnection(first: 1000) { nodes { groupsConnection(first: 1000) { \
             nodes { usersConnection(first: 1000) { nodes { name } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer:#}");
    assert_eq!(answer["errors"][0]["extensions"]["reason"], "cost");
    assert_eq!(log.len(), 0);
}

backend_tests!(migrated:
    pages_skip_and_repeat_nothing_while_rows_come_and_go,
    nested_connections_cost_one_statement_per_level,
    total_count_costs_a_statement_only_when_asked,
    a_nested_page_continues_after_its_cursor,
    bad_cursors_and_sizes_are_refused_before_any_statement,
);
