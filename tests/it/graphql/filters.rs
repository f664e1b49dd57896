//! `users(filter:)` and `groups(filter:)` over HTTP: each filter against
//! the same question asked of the rows as inserted (substrings with `%`,
//! `_`, spaces and mixed case; exact text with trailing spaces; ids;
//! memberships), paging with a filter, and bad filters refused before any
//! SQL.

use std::collections::HashSet;

use roster::entity::{group, user};
use roster::graphql::{MAX_EMAIL_BYTES, MAX_TEXT_BYTES};
use roster::server::AppState;
use roster_testkit::{TestDb, backend_tests};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};

use super::{Server, error_code, start};
use crate::fixtures::{self, group_with, user_with};

/// The ids of a page's rows.
fn ids(page: &Value) -> Vec<i64> {
    page.as_array()
        .expect("a list")
        .iter()
        .map(|row| row["id"].as_str().expect("id").parse().expect("an i64"))
        .collect()
}

/// Whether `text` is set and contains `part` (byte for byte).
fn has(text: &Option<String>, part: &str) -> bool {
    text.as_deref().is_some_and(|t| t.contains(part))
}

/// Whether `text` is exactly `value`.
fn is(text: &Option<String>, value: &str) -> bool {
    text.as_deref() == Some(value)
}

const USERS: &str = "query($f: UserFilter) { users(limit: 1000, filter: $f) { id } }";
const GROUPS: &str = "query($f: GroupFilter) { groups(limit: 1000, filter: $f) { id } }";

type UserRule = Box<dyn Fn(&user::Model) -> bool>;

fn rule(keep: impl Fn(&user::Model) -> bool + 'static) -> UserRule {
    Box::new(keep)
}

async fn user_filters_match_the_rows_as_inserted(db: &TestDb) {
    let conn = db.conn();
    let percent = user_with(
        conn,
        Some("100% Ada"),
        Some("Lovelace"),
        Some("ada@example.org"),
        Some(7),
    )
    .await
    .id;
    let spaced = user_with(
        conn,
        Some("100 Ada"),
        Some("Love_lace"),
        Some("ada@example.org "),
        Some(8),
    )
    .await
    .id;
    let a_b = user_with(
        conn,
        Some("a_b"),
        Some("Byron"),
        Some("ADA@example.org"),
        None,
    )
    .await
    .id;
    user_with(conn, Some("axb"), None, None, Some(7)).await;
    let ada = user_with(
        conn,
        Some("ada"),
        Some("lovelace"),
        Some("ada@example.org"),
        None,
    )
    .await
    .id;
    user_with(conn, Some("ADA"), Some("LOVELACE"), None, None).await;
    user_with(conn, None, Some("Lovelace"), None, None).await;
    let jose = user_with(
        conn,
        Some("José"),
        Some("100%"),
        Some("jose@example.org"),
        None,
    )
    .await
    .id;
    user_with(conn, Some("a b"), Some("a  b"), None, None).await;
    let kind = fixtures::grouptype(conn, "class").await;
    let members = fixtures::group(conn, "members", Some(kind.id)).await;
    let other = fixtures::group(conn, "other", None).await;
    let mut memberships = HashSet::new();
    for (user_id, group_id) in [
        (percent, members.id),
        (a_b, members.id),
        (ada, members.id),
        (jose, members.id),
        (spaced, other.id),
    ] {
        roster::entity::users_groups::Entity::insert(fixtures::membership(user_id, group_id))
            .exec(conn)
            .await
            .expect("insert membership");
        memberships.insert((user_id, group_id));
    }
    let rows = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .all(conn)
        .await
        .expect("the users");

    let member_of = move |group_id: i64| -> UserRule {
        let memberships = memberships.clone();
        rule(move |u| memberships.contains(&(u.id, group_id)))
    };
    let cases: Vec<(Value, UserRule)> = vec![
        (json!({}), rule(|_| true)),
        (json!({ "nameContains": "%" }), rule(|u| has(&u.name, "%"))),
        (
            json!({ "nameContains": "0%" }),
            rule(|u| has(&u.name, "0%")),
        ),
        (json!({ "nameContains": "_" }), rule(|u| has(&u.name, "_"))),
        (
            json!({ "nameContains": "a_b" }),
            rule(|u| has(&u.name, "a_b")),
        ),
        (
            json!({ "nameContains": "ada" }),
            rule(|u| has(&u.name, "ada")),
        ),
        (
            json!({ "nameContains": "Ada" }),
            rule(|u| has(&u.name, "Ada")),
        ),
        (
            json!({ "nameContains": "ADA" }),
            rule(|u| has(&u.name, "ADA")),
        ),
        (json!({ "nameContains": "" }), rule(|u| u.name.is_some())),
        (json!({ "nameContains": " " }), rule(|u| has(&u.name, " "))),
        (
            json!({ "nameContains": "a " }),
            rule(|u| has(&u.name, "a ")),
        ),
        (json!({ "nameContains": "é" }), rule(|u| has(&u.name, "é"))),
        (json!({ "nameContains": "É" }), rule(|u| has(&u.name, "É"))),
        (
            json!({ "surnameContains": "_" }),
            rule(|u| has(&u.surname, "_")),
        ),
        (
            json!({ "surnameContains": "%" }),
            rule(|u| has(&u.surname, "%")),
        ),
        (
            json!({ "surnameContains": "Love" }),
            rule(|u| has(&u.surname, "Love")),
        ),
        (
            json!({ "surnameContains": "  " }),
            rule(|u| has(&u.surname, "  ")),
        ),
        (
            json!({ "email": "ada@example.org" }),
            rule(|u| is(&u.email, "ada@example.org")),
        ),
        (
            json!({ "email": "ada@example.org " }),
            rule(|u| is(&u.email, "ada@example.org ")),
        ),
        (
            json!({ "email": "ADA@example.org" }),
            rule(|u| is(&u.email, "ADA@example.org")),
        ),
        (
            json!({ "externalId": "7" }),
            rule(|u| u.external_id == Some(7)),
        ),
        (
            json!({ "groupId": members.id.to_string() }),
            member_of(members.id),
        ),
        (json!({ "groupId": "987654321" }), rule(|_| false)),
        (
            json!({ "groupId": members.id.to_string(), "nameContains": "a" }),
            {
                let member = member_of(members.id);
                rule(move |u| member(u) && has(&u.name, "a"))
            },
        ),
        (
            json!({ "nameContains": "Ada", "surnameContains": "Love", "externalId": "7" }),
            rule(|u| has(&u.name, "Ada") && has(&u.surname, "Love") && u.external_id == Some(7)),
        ),
        (
            json!({ "email": "ada@example.org", "groupId": other.id.to_string() }),
            rule(|_| false),
        ),
    ];

    let server = start(db).await;
    for (filter, keep) in &cases {
        let expected: Vec<i64> = rows.iter().filter(|u| keep(u)).map(|u| u.id).collect();
        let data = server.data(USERS, json!({ "f": filter })).await;
        assert_eq!(ids(&data["users"]), expected, "filter {filter}");
    }
    // The rules above are not vacuous: the cases that tell a wildcard or a
    // case-insensitive match from a substring match have one row each.
    for (filter, only) in [
        (json!({ "nameContains": "0%" }), percent),
        (json!({ "nameContains": "a_b" }), a_b),
        (json!({ "nameContains": "ada" }), ada),
        (json!({ "email": "ada@example.org " }), spaced),
        (json!({ "surnameContains": "%" }), jose),
    ] {
        let data = server.data(USERS, json!({ "f": filter })).await;
        assert_eq!(ids(&data["users"]), [only], "filter {filter}");
    }
    server.stop().await;
}

type GroupRule = Box<dyn Fn(&group::Model) -> bool>;

fn group_rule(keep: impl Fn(&group::Model) -> bool + 'static) -> GroupRule {
    Box::new(keep)
}

async fn group_filters_match_the_rows_as_inserted(db: &TestDb) {
    let conn = db.conn();
    let t1 = fixtures::grouptype(conn, "t1").await.id;
    let t2 = fixtures::grouptype(conn, "t2").await.id;
    let percent = group_with(conn, Some("50% off"), Some(2024), Some("X-1"), Some(t1))
        .await
        .id;
    let spaced = group_with(conn, Some("50 off"), Some(2025), Some("X-1 "), Some(t1))
        .await
        .id;
    let team_a = group_with(conn, Some("team_a"), Some(2024), Some("x-1"), Some(t2))
        .await
        .id;
    group_with(conn, Some("teamXa"), None, None, None).await;
    group_with(conn, Some("Team"), Some(2024), Some("X-2"), Some(t2)).await;
    group_with(conn, None, Some(2024), Some("X-3"), Some(t1)).await;
    let rows = group::Entity::find()
        .order_by_asc(group::Column::Id)
        .all(conn)
        .await
        .expect("the groups");

    let cases: Vec<(Value, GroupRule)> = vec![
        (json!({}), group_rule(|_| true)),
        (
            json!({ "nameContains": "%" }),
            group_rule(|g| has(&g.name, "%")),
        ),
        (
            json!({ "nameContains": "0%" }),
            group_rule(|g| has(&g.name, "0%")),
        ),
        (
            json!({ "nameContains": "_" }),
            group_rule(|g| has(&g.name, "_")),
        ),
        (
            json!({ "nameContains": "m_a" }),
            group_rule(|g| has(&g.name, "m_a")),
        ),
        (
            json!({ "nameContains": "Team" }),
            group_rule(|g| has(&g.name, "Team")),
        ),
        (
            json!({ "nameContains": "team" }),
            group_rule(|g| has(&g.name, "team")),
        ),
        (
            json!({ "nameContains": "" }),
            group_rule(|g| g.name.is_some()),
        ),
        (
            json!({ "groupTypeId": t1.to_string() }),
            group_rule(move |g| g.grouptype_id == Some(t1)),
        ),
        (json!({ "groupTypeId": "987654321" }), group_rule(|_| false)),
        (
            json!({ "externalId": "X-1" }),
            group_rule(|g| is(&g.external_id, "X-1")),
        ),
        (
            json!({ "externalId": "X-1 " }),
            group_rule(|g| is(&g.external_id, "X-1 ")),
        ),
        (
            json!({ "externalId": "x-1" }),
            group_rule(|g| is(&g.external_id, "x-1")),
        ),
        (
            json!({ "entryYearId": 2024 }),
            group_rule(|g| g.entry_year_id == Some(2024)),
        ),
        (
            json!({ "groupTypeId": t1.to_string(), "entryYearId": 2024 }),
            group_rule(move |g| g.grouptype_id == Some(t1) && g.entry_year_id == Some(2024)),
        ),
        (
            json!({ "groupTypeId": t2.to_string(), "nameContains": "a", "entryYearId": 2024, "externalId": "x-1" }),
            group_rule(move |g| {
                g.grouptype_id == Some(t2)
                    && has(&g.name, "a")
                    && g.entry_year_id == Some(2024)
                    && is(&g.external_id, "x-1")
            }),
        ),
    ];

    let server = start(db).await;
    for (filter, keep) in &cases {
        let expected: Vec<i64> = rows.iter().filter(|g| keep(g)).map(|g| g.id).collect();
        let data = server.data(GROUPS, json!({ "f": filter })).await;
        assert_eq!(ids(&data["groups"]), expected, "filter {filter}");
    }
    for (filter, only) in [
        (json!({ "nameContains": "0%" }), percent),
        (json!({ "nameContains": "m_a" }), team_a),
        (json!({ "externalId": "X-1" }), percent),
        (json!({ "externalId": "X-1 " }), spaced),
    ] {
        let data = server.data(GROUPS, json!({ "f": filter })).await;
        assert_eq!(ids(&data["groups"]), [only], "filter {filter}");
    }
    server.stop().await;
}

async fn a_filtered_page_skips_and_limits_the_matching_rows(db: &TestDb) {
    let conn = db.conn();
    let mut matching = Vec::new();
    for i in 0..12 {
        // Every third user does not match; ids interleave.
        let name = if i % 3 == 0 {
            format!("other {i}")
        } else {
            format!("Ada {i}")
        };
        let row = user_with(conn, Some(&name), None, None, None).await;
        if i % 3 != 0 {
            matching.push(row.id);
        }
    }
    assert_eq!(matching.len(), 8);
    let server = start(db).await;
    let page = "query($skip: Int!, $limit: Int!) { users(skip: $skip, limit: $limit, filter: { nameContains: \"Ada\" }) { id } }";
    let mut paged = Vec::new();
    for skip in (0..10).step_by(3) {
        let data = server.data(page, json!({ "skip": skip, "limit": 3 })).await;
        let got = ids(&data["users"]);
        let end = (skip + 3).min(matching.len());
        let want = matching.get(skip.min(end)..end).unwrap_or_default();
        assert_eq!(got, want, "skip {skip}");
        paged.extend(got);
    }
    assert_eq!(paged, matching, "the pages together are every match, once");
    server.stop().await;
}

async fn bad_filters_are_bad_user_input_without_a_statement(db: &TestDb) {
    let (conn, log) = db.logged_conn().await;
    let server = Server::start(AppState::new(conn)).await;
    log.clear();
    let long = "x".repeat(MAX_TEXT_BYTES + 1);
    let long_email = "e".repeat(MAX_EMAIL_BYTES + 1);
    let cases = [
        (USERS, json!({ "groupId": "one" })),
        (USERS, json!({ "groupId": "" })),
        (USERS, json!({ "externalId": "1.5" })),
        (USERS, json!({ "externalId": "99999999999999999999" })),
        (USERS, json!({ "nameContains": long })),
        (USERS, json!({ "surnameContains": long })),
        (USERS, json!({ "email": long_email })),
        (USERS, json!({ "nameContains": "a\u{0}" })),
        (USERS, json!({ "nameContains": 5 })),
        (USERS, json!({ "unknown": "x" })),
        (GROUPS, json!({ "groupTypeId": "abc" })),
        (GROUPS, json!({ "externalId": long })),
        (GROUPS, json!({ "nameContains": long })),
        (GROUPS, json!({ "entryYearId": "2024" })),
        // A good filter does not save a bad page.
        (
            "query($f: UserFilter) { users(limit: 0, filter: $f) { id } }",
            json!({ "nameContains": "a" }),
        ),
    ];
    for (query, filter) in cases {
        let answer = server.run(query, json!({ "f": filter })).await;
        assert_eq!(
            error_code(&answer),
            "BAD_USER_INPUT",
            "{filter}: {answer:#}"
        );
    }
    assert!(log.is_empty(), "{:#?}", log.all());

    // At the bounds: one statement each.
    let longest = "x".repeat(MAX_TEXT_BYTES);
    let data = server
        .data(
            USERS,
            json!({ "f": { "nameContains": longest, "groupId": "1" } }),
        )
        .await;
    assert_eq!(data["users"], json!([]));
    let data = server
        .data(GROUPS, json!({ "f": { "externalId": longest } }))
        .await;
    assert_eq!(data["groups"], json!([]));
    assert_eq!(log.len(), 2, "{:#?}", log.all());
    server.stop().await;
}

backend_tests!(
    migrated: user_filters_match_the_rows_as_inserted,
    group_filters_match_the_rows_as_inserted,
    a_filtered_page_skips_and_limits_the_matching_rows,
    bad_filters_are_bad_user_input_without_a_statement,
);
