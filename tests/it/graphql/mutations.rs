//! Mutations over HTTP: insert, optimistic update and its conflict, delete,
//! memberships, and reading one's own writes within a request.

use roster_testkit::{TestDb, backend_tests};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use super::{error_code, start};

const USER_FIELDS: &str = "id globalId name surname email externalId lastchange";

async fn insert_user(server: &super::Server, name: &str) -> Value {
    let query = format!("mutation($u: UserInsert!) {{ userInsert(user: $u) {{ {USER_FIELDS} }} }}");
    let data = server
        .data(
            &query,
            json!({ "u": { "name": name, "surname": "Lovelace", "externalId": "42" } }),
        )
        .await;
    data["userInsert"].clone()
}

async fn insert_returns_the_stored_row(db: &TestDb) {
    let server = start(db).await;
    let ada = insert_user(&server, "Ada").await;
    assert_eq!(ada["name"], "Ada");
    assert_eq!(ada["externalId"], "42");
    assert!(ada["email"].is_null());
    let id = ada["id"].as_str().expect("id as a string");
    id.parse::<i64>().expect("a 64-bit id");
    let lastchange = ada["lastchange"].as_str().expect("lastchange");
    // RFC 3339, UTC, microseconds.
    assert_eq!(
        lastchange.len(),
        "2026-11-22T10:30:15.123456Z".len(),
        "{lastchange}"
    );
    assert!(lastchange.ends_with('Z'), "{lastchange}");

    let read = server
        .data(
            &format!("{{ user(id: \"{id}\") {{ {USER_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(read["user"], ada);
}

async fn update_with_current_lastchange_then_stale_conflicts(db: &TestDb) {
    let server = start(db).await;
    let ada = insert_user(&server, "Ada").await;
    let update =
        format!("mutation($u: UserUpdate!) {{ userUpdate(user: $u) {{ {USER_FIELDS} }} }}");
    let changes = json!({ "u": { "id": ada["id"], "lastchange": ada["lastchange"], "email": "ada@example.org" } });
    let updated = server.data(&update, changes.clone()).await["userUpdate"].clone();
    assert_eq!(updated["email"], "ada@example.org");
    // Fields left out stay.
    assert_eq!(updated["name"], "Ada");
    assert_eq!(updated["surname"], "Lovelace");
    assert!(updated["lastchange"].as_str() > ada["lastchange"].as_str());

    // The same, now stale, version: CONFLICT carrying the stored row.
    let answer = server.run(&update, changes).await;
    assert_eq!(error_code(&answer), "CONFLICT", "{answer:#}");
    let current = &answer["errors"][0]["extensions"]["current"];
    assert_eq!(current, &updated, "{answer:#}");
    assert!(answer["data"].is_null());
    let conflicts = server
        .metric("roster_graphql_errors_total{code=\"CONFLICT\"}")
        .await;
    assert_eq!(conflicts, Some(1), "/metrics counts the conflict");
}

async fn delete_then_not_found(db: &TestDb) {
    let server = start(db).await;
    let ada = insert_user(&server, "Ada").await;
    let delete = "mutation($id: ID!, $at: DateTime) { userDelete(id: $id, lastchange: $at) }";
    let data = server
        .data(delete, json!({ "id": ada["id"], "at": ada["lastchange"] }))
        .await;
    assert_eq!(data["userDelete"], true);
    let again = server.run(delete, json!({ "id": ada["id"] })).await;
    assert_eq!(error_code(&again), "NOT_FOUND", "{again:#}");
    let missing = server.run(delete, json!({ "id": "987654321" })).await;
    assert_eq!(error_code(&missing), "NOT_FOUND", "{missing:#}");
    let not_found = server
        .metric("roster_graphql_errors_total{code=\"NOT_FOUND\"}")
        .await;
    assert_eq!(not_found, Some(2));
    let read = server
        .data(
            "query($id: ID!) { user(id: $id) { id } }",
            json!({ "id": ada["id"] }),
        )
        .await;
    assert!(read["user"].is_null());
}

async fn groups_and_group_types(db: &TestDb) {
    let server = start(db).await;
    let kind = server
        .data(r#"mutation { groupTypeInsert(groupType: { name: "team" }) { id name lastchange groups { id } } }"#, json!({}))
        .await["groupTypeInsert"]
        .clone();
    assert_eq!(kind["groups"], json!([]));
    let group = server
        .data(
            "mutation($g: GroupInsert!) { groupInsert(group: $g) { id name entryYearId externalId lastchange groupType { id name } } }",
            json!({ "g": { "name": "core", "entryYearId": 2026, "externalId": "G-1", "groupTypeId": kind["id"] } }),
        )
        .await["groupInsert"]
        .clone();
    assert_eq!(group["groupType"]["name"], "team");
    assert_eq!(group["entryYearId"], 2026);

    let renamed = server
        .data(
            "mutation($g: GroupUpdate!) { groupUpdate(group: $g) { name entryYearId externalId groupType { id } } }",
            json!({ "g": { "id": group["id"], "lastchange": group["lastchange"], "name": "kernel" } }),
        )
        .await["groupUpdate"]
        .clone();
    assert_eq!(
        renamed,
        json!({ "name": "kernel", "entryYearId": 2026, "externalId": "G-1", "groupType": { "id": kind["id"] } })
    );

    // A group type still in use cannot go; an unknown one cannot be named.
    let in_use = server
        .run(
            "mutation($id: ID!) { groupTypeDelete(id: $id) }",
            json!({ "id": kind["id"] }),
        )
        .await;
    assert_eq!(error_code(&in_use), "BAD_USER_INPUT", "{in_use:#}");
    let unknown = server
        .run(
            r#"mutation { groupInsert(group: { name: "x", groupTypeId: "987654321" }) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&unknown), "BAD_USER_INPUT", "{unknown:#}");

    let renamed_kind = server
        .data(
            "mutation($t: GroupTypeUpdate!) { groupTypeUpdate(groupType: $t) { name groups { name } } }",
            json!({ "t": { "id": kind["id"], "lastchange": kind["lastchange"], "name": "squad" } }),
        )
        .await;
    assert_eq!(
        renamed_kind["groupTypeUpdate"],
        json!({ "name": "squad", "groups": [{ "name": "kernel" }] })
    );
    let deleted = server
        .data(
            "mutation($g: ID!, $t: ID!) { groupDelete(id: $g) groupTypeDelete(id: $t) }",
            json!({ "g": group["id"], "t": kind["id"] }),
        )
        .await;
    assert_eq!(
        deleted,
        json!({ "groupDelete": true, "groupTypeDelete": true })
    );
}

async fn membership_add_twice_is_idempotent(db: &TestDb) {
    let server = start(db).await;
    let ada = insert_user(&server, "Ada").await;
    let group = server
        .data(
            r#"mutation { groupInsert(group: { name: "core" }) { id } }"#,
            json!({}),
        )
        .await["groupInsert"]["id"]
        .clone();
    let add = "mutation($u: ID!, $g: ID!) { membershipAdd(userId: $u, groupId: $g) }";
    let ids = json!({ "u": ada["id"], "g": group });
    assert_eq!(server.data(add, ids.clone()).await["membershipAdd"], true);
    assert_eq!(server.data(add, ids.clone()).await["membershipAdd"], false);
    let rows = db
        .conn()
        .query_one_raw(Statement::from_string(
            db.db_backend(),
            "SELECT COUNT(*) FROM users_groups",
        ))
        .await
        .expect("count")
        .expect("a row");
    assert_eq!(rows.try_get_by_index::<i64>(0).expect("n"), 1);

    let unknown = server
        .run(add, json!({ "u": ada["id"], "g": "987654321" }))
        .await;
    assert_eq!(error_code(&unknown), "BAD_USER_INPUT", "{unknown:#}");

    let remove = "mutation($u: ID!, $g: ID!) { membershipRemove(userId: $u, groupId: $g) }";
    assert_eq!(
        server.data(remove, ids.clone()).await["membershipRemove"],
        true
    );
    assert_eq!(server.data(remove, ids).await["membershipRemove"], false);
}

/// A batch shares one set of loaders: a read after a write in the same HTTP
/// request sees the write, even though the first read cached the old state.
async fn a_request_reads_its_own_writes(db: &TestDb) {
    let server = start(db).await;
    let ada = insert_user(&server, "Ada").await;
    let group = server
        .data(
            r#"mutation { groupInsert(group: { name: "core" }) { id } }"#,
            json!({}),
        )
        .await["groupInsert"]["id"]
        .clone();
    let read = "query($g: ID!) { group(id: $g) { users { name } } }";
    let ids = json!({ "u": ada["id"], "g": group });
    let (status, answers) = server
        .post(&json!([
            { "query": read, "variables": ids },
            { "query": "mutation($u: ID!, $g: ID!) { membershipAdd(userId: $u, groupId: $g) }", "variables": ids },
            { "query": read, "variables": ids },
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        answers[0]["data"]["group"]["users"],
        json!([]),
        "{answers:#}"
    );
    assert_eq!(answers[1]["data"]["membershipAdd"], true, "{answers:#}");
    assert_eq!(
        answers[2]["data"]["group"]["users"],
        json!([{ "name": "Ada" }]),
        "{answers:#}"
    );
}

backend_tests!(
    migrated: insert_returns_the_stored_row,
    update_with_current_lastchange_then_stale_conflicts,
    delete_then_not_found,
    groups_and_group_types,
    membership_add_twice_is_idempotent,
    a_request_reads_its_own_writes,
);
