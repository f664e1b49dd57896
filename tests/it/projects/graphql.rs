//! The service's GraphQL over real HTTP: `User.projects` and
//! `Project.members` one statement per level, its mutations, a conflict
//! shown through the `Project` type, and Roster's limits on its fields.

use roster::migrations::Action;
use roster::server::AppState;
use roster_testkit::{TestDb, backend_tests};
use serde_json::{Value, json};

use super::migrate;
use crate::graphql::{Server, error_code};

async fn start(db: &TestDb) -> (Server, roster_testkit::StatementLog) {
    migrate(db, Action::Up { steps: None }).await;
    let (conn, log) = db.logged_conn().await;
    let state = AppState::new(conn).with_schema(roster_example_projects::graphql::schema());
    (Server::start(state).await, log)
}

async fn insert_user(server: &Server, name: &str) -> String {
    let data = server
        .data(
            "mutation($n: String) { userInsert(user: { name: $n }) { id } }",
            json!({ "n": name }),
        )
        .await;
    data["userInsert"]["id"].as_str().expect("id").to_owned()
}

async fn insert_project(server: &Server, name: &str) -> Value {
    let data = server
        .data(
            "mutation($n: String!) { projectInsert(name: $n) { id name lastchange } }",
            json!({ "n": name }),
        )
        .await;
    data["projectInsert"].clone()
}

async fn add_member(server: &Server, user: &str, project: &Value) -> bool {
    let data = server
        .data(
            "mutation($u: ID!, $p: ID!) { projectMemberAdd(userId: $u, projectId: $p) }",
            json!({ "u": user, "p": project["id"] }),
        )
        .await;
    data["projectMemberAdd"].as_bool().expect("a boolean")
}

async fn user_projects_cost_one_statement_per_level(db: &TestDb) {
    let (server, log) = start(db).await;
    let users = [
        insert_user(&server, "Ada").await,
        insert_user(&server, "Alan").await,
        insert_user(&server, "Grace").await,
    ];
    let apollo = insert_project(&server, "apollo").await;
    let gemini = insert_project(&server, "gemini").await;
    for (user, project) in [(0, &apollo), (1, &apollo), (1, &gemini), (2, &gemini)] {
        assert!(add_member(&server, &users[user], project).await);
    }
    assert!(
        !add_member(&server, &users[0], &apollo).await,
        "already on it"
    );

    log.clear();
    let answer = server
        .data(
            "{ users(limit: 10) { name projects(limit: 10) { name members(limit: 10) { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(log.selects(), 3, "{:#?}", log.all());
    let shown: Vec<(String, Vec<String>)> = answer["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            let projects = u["projects"].as_array().expect("projects");
            (
                u["name"].as_str().unwrap_or_default().to_owned(),
                projects
                    .iter()
                    .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("Ada".to_owned(), vec!["apollo".to_owned()]),
            (
                "Alan".to_owned(),
                vec!["apollo".to_owned(), "gemini".to_owned()]
            ),
            ("Grace".to_owned(), vec!["gemini".to_owned()]),
        ]
    );
    let members = &answer["users"][1]["projects"][1]["members"];
    assert_eq!(members, &json!([{ "name": "Alan" }, { "name": "Grace" }]));
}

async fn a_stale_project_update_shows_the_stored_project(db: &TestDb) {
    let (server, _log) = start(db).await;
    let apollo = insert_project(&server, "apollo").await;
    let rename = "mutation($id: ID!, $at: DateTime!, $n: String!) { \
                  projectUpdate(id: $id, lastchange: $at, name: $n) { id name lastchange } }";
    let first = server
        .data(
            rename,
            json!({ "id": apollo["id"], "at": apollo["lastchange"], "n": "Apollo" }),
        )
        .await["projectUpdate"]
        .clone();
    let answer = server
        .run(
            rename,
            json!({ "id": apollo["id"], "at": apollo["lastchange"], "n": "APOLLO" }),
        )
        .await;
    assert_eq!(error_code(&answer), "CONFLICT", "{answer:#}");
    // The stored row, shaped by the `Project` type: its scalar fields.
    assert_eq!(
        answer["errors"][0]["extensions"]["current"], first,
        "{answer:#}"
    );

    let delete = "mutation($id: ID!, $at: DateTime) { projectDelete(id: $id, lastchange: $at) }";
    let answer = server
        .run(
            delete,
            json!({ "id": apollo["id"], "at": apollo["lastchange"] }),
        )
        .await;
    assert_eq!(error_code(&answer), "CONFLICT", "{answer:#}");
    assert_eq!(answer["errors"][0]["extensions"]["current"], first);
    let deleted = server
        .data(
            delete,
            json!({ "id": apollo["id"], "at": first["lastchange"] }),
        )
        .await;
    assert_eq!(deleted["projectDelete"], true);
}

async fn the_limits_count_the_service_fields(db: &TestDb) {
    let (server, log) = start(db).await;
    log.clear();
    let answer = server
        .run(
            "{ users(limit: 1000) { projects(limit: 1000) { members(limit: 1000) { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer:#}");
    assert_eq!(answer["errors"][0]["extensions"]["reason"], "cost");
    assert_eq!(log.len(), 0, "refused before any statement");
    insert_user(&server, "Ada").await;
    let answer = server
        .run("{ users { projects(limit: 0) { name } } }", json!({}))
        .await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer:#}");
}

/// A conflict on a user, on `server`: its `extensions.current`.
async fn user_conflict(server: &Server, id: &str) -> Value {
    let update = "mutation($u: UserUpdate!) { userUpdate(user: $u) { id } }";
    let stale =
        json!({ "u": { "id": id, "lastchange": "2000-01-01T00:00:00.000000Z", "name": "B" } });
    let answer = server.run(update, stale).await;
    assert_eq!(error_code(&answer), "CONFLICT", "{answer:#}");
    answer["errors"][0]["extensions"]["current"].clone()
}

async fn each_schema_shows_a_conflict_through_its_own_user_type(db: &TestDb) {
    let (server, _log) = start(db).await;
    let roster = Server::start(AppState::new(db.conn().clone())).await;
    let id = insert_user(&server, "Ada").await;
    let scalars = "id globalId name surname email externalId lastchange";
    let read = roster
        .data(
            &format!("query($id: ID!) {{ user(id: $id) {{ {scalars} }} }}"),
            json!({ "id": id }),
        )
        .await["user"]
        .clone();
    // Roster's own schema first: every scalar field of its `User`.
    assert_eq!(user_conflict(&roster, &id).await, read);
    // The service's `User` has a scalar field more, `projectCount`; its
    // list field `projects` (which takes arguments) is not in the row.
    let extended = server
        .data(
            &format!("query($id: ID!) {{ user(id: $id) {{ {scalars} projectCount }} }}"),
            json!({ "id": id }),
        )
        .await["user"]
        .clone();
    assert_eq!(extended["projectCount"], 0);
    assert_eq!(user_conflict(&server, &id).await, extended);
    assert_eq!(user_conflict(&roster, &id).await, read);
}

async fn members_come_and_go_and_counts_follow(db: &TestDb) {
    let (server, log) = start(db).await;
    let ada = insert_user(&server, "Ada").await;
    let alan = insert_user(&server, "Alan").await;
    let apollo = insert_project(&server, "apollo").await;
    assert!(add_member(&server, &ada, &apollo).await);
    assert!(add_member(&server, &alan, &apollo).await);
    log.clear();
    let counts = server
        .data("{ users(limit: 10) { name projectCount } }", json!({}))
        .await;
    assert_eq!(
        log.selects(),
        2,
        "the page, then every user's count at once"
    );
    assert_eq!(
        counts["users"],
        json!([{ "name": "Ada", "projectCount": 1 }, { "name": "Alan", "projectCount": 1 }])
    );
    let remove = "mutation($u: ID!, $p: ID!) { projectMemberRemove(userId: $u, projectId: $p) }";
    let removed = server
        .data(remove, json!({ "u": ada, "p": apollo["id"] }))
        .await;
    assert_eq!(removed["projectMemberRemove"], true);
    let again = server
        .data(remove, json!({ "u": ada, "p": apollo["id"] }))
        .await;
    assert_eq!(again["projectMemberRemove"], false, "already gone");
    let members = server
        .data(
            "query($p: ID!) { project(id: $p) { members(limit: 10) { name } } }",
            json!({ "p": apollo["id"] }),
        )
        .await;
    assert_eq!(members["project"]["members"], json!([{ "name": "Alan" }]));
}

backend_tests!(
    user_projects_cost_one_statement_per_level,
    a_stale_project_update_shows_the_stored_project,
    the_limits_count_the_service_fields,
    each_schema_shows_a_conflict_through_its_own_user_type,
    members_come_and_go_and_counts_follow,
);
