//! Explicit null in updates over HTTP: a field left out keeps its column, a
//! field given as null (in the variables or written in the document) sets
//! it to NULL; each checked by reading the row back from the database.

use roster::entity::{group, grouptype, user};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use super::{Server, start};

fn id_of(row: &Value) -> i64 {
    row["id"].as_str().expect("id").parse().expect("an i64")
}

async fn stored_user(db: &TestDb, id: i64) -> user::Model {
    user::Entity::find_by_id(id)
        .one(db.conn())
        .await
        .expect("read the user")
        .expect("the user")
}

async fn stored_group(db: &TestDb, id: i64) -> group::Model {
    group::Entity::find_by_id(id)
        .one(db.conn())
        .await
        .expect("read the group")
        .expect("the group")
}

async fn stored_group_type(db: &TestDb, id: i64) -> grouptype::Model {
    grouptype::Entity::find_by_id(id)
        .one(db.conn())
        .await
        .expect("read the group type")
        .expect("the group type")
}

const USER_UPDATE: &str = "mutation($u: UserUpdate!) { userUpdate(user: $u) { id name surname email externalId lastchange } }";

/// Runs `userUpdate` with `changes` on the user as last read (`user`,
/// whose `lastchange` it passes); the row as answered.
async fn update_user(server: &Server, user: &Value, changes: Value) -> Value {
    let mut input = changes;
    input["id"] = user["id"].clone();
    input["lastchange"] = user["lastchange"].clone();
    server.data(USER_UPDATE, json!({ "u": input })).await["userUpdate"].clone()
}

async fn user_fields_left_out_stay_and_nulls_clear(db: &TestDb) {
    let server = start(db).await;
    let ada = server
        .data(
            r#"mutation { userInsert(user: { name: "Ada", surname: "Lovelace", email: "ada@example.org", externalId: "42" }) { id lastchange } }"#,
            json!({}),
        )
        .await["userInsert"]
        .clone();
    let id = id_of(&ada);

    // Left out: unchanged.
    let renamed = update_user(&server, &ada, json!({ "name": "Ada K" })).await;
    let row = stored_user(db, id).await;
    assert_eq!(row.name.as_deref(), Some("Ada K"));
    assert_eq!(row.surname.as_deref(), Some("Lovelace"));
    assert_eq!(row.email.as_deref(), Some("ada@example.org"));
    assert_eq!(row.external_id, Some(42));

    // Null in the variables: those columns become NULL, the others stay.
    let cleared = update_user(
        &server,
        &renamed,
        json!({ "surname": null, "externalId": null }),
    )
    .await;
    assert!(cleared["surname"].is_null() && cleared["externalId"].is_null());
    let row = stored_user(db, id).await;
    assert_eq!(row.surname, None);
    assert_eq!(row.external_id, None);
    assert_eq!(row.name.as_deref(), Some("Ada K"));
    assert_eq!(row.email.as_deref(), Some("ada@example.org"));

    // Null written in the document.
    let literal = server
        .data(
            "mutation($id: ID!, $at: DateTime!) { userUpdate(user: { id: $id, lastchange: $at, email: null }) { lastchange email } }",
            json!({ "id": cleared["id"], "at": cleared["lastchange"] }),
        )
        .await["userUpdate"]
        .clone();
    assert!(literal["email"].is_null());
    let row = stored_user(db, id).await;
    assert_eq!(row.email, None);
    assert_eq!(row.name.as_deref(), Some("Ada K"));

    // A variable declared but not given counts as left out; given as null,
    // it is null.
    let with_variable = "mutation($id: ID!, $at: DateTime!, $name: String) { userUpdate(user: { id: $id, lastchange: $at, name: $name }) { lastchange name } }";
    let kept = server
        .data(
            with_variable,
            json!({ "id": cleared["id"], "at": literal["lastchange"] }),
        )
        .await["userUpdate"]
        .clone();
    assert_eq!(kept["name"], "Ada K");
    assert_eq!(stored_user(db, id).await.name.as_deref(), Some("Ada K"));
    let nulled = server
        .data(
            with_variable,
            json!({ "id": cleared["id"], "at": kept["lastchange"], "name": null }),
        )
        .await["userUpdate"]
        .clone();
    assert!(nulled["name"].is_null());
    let row = stored_user(db, id).await;
    assert_eq!(
        (row.name, row.surname, row.email, row.external_id),
        (None, None, None, None)
    );
    // Nothing but the version: every column stays, the version moves on.
    let same = update_user(
        &server,
        &json!({ "id": cleared["id"], "lastchange": nulled["lastchange"] }),
        json!({}),
    )
    .await;
    assert!(same["lastchange"].as_str() > nulled["lastchange"].as_str());
    assert_eq!(stored_user(db, id).await.name, None);
}

async fn group_fields_left_out_stay_and_nulls_clear(db: &TestDb) {
    let server = start(db).await;
    let kind = server
        .data(
            r#"mutation { groupTypeInsert(groupType: { name: "class" }) { id } }"#,
            json!({}),
        )
        .await["groupTypeInsert"]["id"]
        .clone();
    let group = server
        .data(
            "mutation($g: GroupInsert!) { groupInsert(group: $g) { id lastchange } }",
            json!({ "g": { "name": "5b", "entryYearId": 2026, "externalId": "G-5b", "groupTypeId": kind } }),
        )
        .await["groupInsert"]
        .clone();
    let id = id_of(&group);
    let update = "mutation($g: GroupUpdate!) { groupUpdate(group: $g) { id lastchange name entryYearId externalId groupType { id } } }";

    let first = server
        .data(
            update,
            json!({ "g": { "id": group["id"], "lastchange": group["lastchange"], "name": null, "groupTypeId": null } }),
        )
        .await["groupUpdate"]
        .clone();
    assert!(first["name"].is_null() && first["groupType"].is_null());
    let row = stored_group(db, id).await;
    assert_eq!(row.name, None);
    assert_eq!(row.grouptype_id, None);
    assert_eq!(row.entry_year_id, Some(2026));
    assert_eq!(row.external_id.as_deref(), Some("G-5b"));

    let second = server
        .data(
            update,
            json!({ "g": { "id": group["id"], "lastchange": first["lastchange"], "entryYearId": null, "externalId": null } }),
        )
        .await["groupUpdate"]
        .clone();
    assert!(second["entryYearId"].is_null() && second["externalId"].is_null());
    let row = stored_group(db, id).await;
    assert_eq!(
        (
            row.name,
            row.entry_year_id,
            row.external_id,
            row.grouptype_id
        ),
        (None, None, None, None)
    );

    // And back: values set again, a field left out stays null.
    server
        .data(
            update,
            json!({ "g": { "id": group["id"], "lastchange": second["lastchange"], "name": "5c", "groupTypeId": kind } }),
        )
        .await;
    let row = stored_group(db, id).await;
    assert_eq!(row.name.as_deref(), Some("5c"));
    assert_eq!(
        Some(row.grouptype_id.expect("a type").to_string()),
        kind.as_str().map(str::to_owned)
    );
    assert_eq!(row.entry_year_id, None);
}

async fn group_type_name_null_clears_it(db: &TestDb) {
    let server = start(db).await;
    let kind = server
        .data(
            r#"mutation { groupTypeInsert(groupType: { name: "class" }) { id lastchange } }"#,
            json!({}),
        )
        .await["groupTypeInsert"]
        .clone();
    let id = id_of(&kind);
    let update =
        "mutation($t: GroupTypeUpdate!) { groupTypeUpdate(groupType: $t) { lastchange name } }";
    let kept = server
        .data(
            update,
            json!({ "t": { "id": kind["id"], "lastchange": kind["lastchange"] } }),
        )
        .await["groupTypeUpdate"]
        .clone();
    assert_eq!(kept["name"], "class");
    assert_eq!(
        stored_group_type(db, id).await.name.as_deref(),
        Some("class")
    );
    let cleared = server
        .data(
            update,
            json!({ "t": { "id": kind["id"], "lastchange": kept["lastchange"], "name": null } }),
        )
        .await["groupTypeUpdate"]
        .clone();
    assert!(cleared["name"].is_null());
    assert_eq!(stored_group_type(db, id).await.name, None);
}

backend_tests!(
    migrated: user_fields_left_out_stay_and_nulls_clear,
    group_fields_left_out_stay_and_nulls_clear,
    group_type_name_null_clears_it,
);
