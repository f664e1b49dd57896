//! The cost model against the schema, the issue's abusive documents, and
//! async-graphql's own complexity.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult, Variables};

use super::*;
use crate::limits::{caps, model};

fn analyze(query: &str, variables: serde_json::Value) -> Result<Analysis, Refusal> {
    let document = async_graphql::parser::parse_query(query).expect("parses");
    model().analyze(&document, &Variables::from_json(variables), &caps())
}

fn cost(query: &str) -> u64 {
    analyze(query, serde_json::json!({}))
        .expect("within the caps")
        .cost
}

fn reason(query: &str) -> Reason {
    analyze(query, serde_json::json!({}))
        .expect_err("refused")
        .reason()
}

/// `{ users(limit: 1) { groups { users { … { id } } } } }`, `levels` fields deep.
pub(crate) fn nested(levels: usize) -> String {
    let mut query = String::from("id");
    for level in (1..levels).rev() {
        let field = match level {
            1 => "users(limit: 1)",
            l if l % 2 == 0 => "groups",
            _ => "users",
        };
        query = format!("{field} {{ {query} }}");
    }
    format!("{{ {query} }}")
}

/// The issue's fragment bomb: each fragment spreads the previous one twice.
pub(crate) fn fragment_bomb(levels: usize) -> String {
    let mut doc = String::from("{ users(limit: 1) { ...F25 } } fragment F0 on User { id }");
    doc = doc.replace("F25", &format!("F{}", levels - 1));
    for i in 1..levels {
        doc.push_str(&format!(
            " fragment F{i} on User {{ ...F{p} a{i}: id ...F{p} }}",
            p = i - 1
        ));
    }
    doc
}

#[test]
fn the_model_knows_the_schema_and_every_list_is_bounded() {
    assert!(!model().is_empty());
    assert_eq!(model().unbounded_lists(), Vec::<String>::new());
}

#[test]
fn lists_count_their_limit_at_every_level() {
    assert_eq!(cost("{ users(limit: 3) { id } }"), 1 + 3 * 2);
    // Pages default to 10 rows, nested lists to 100.
    assert_eq!(cost("{ users { id } }"), 1 + 10 * 2);
    assert_eq!(
        cost("{ users(limit: 1) { groups { id } } }"),
        1 + (1 + 1 + 100 * 2)
    );
    assert_eq!(
        cost("{ groups(limit: 2) { users(limit: 3) { groups(limit: 4) { name } } } }"),
        1 + 2 * (1 + 1 + 3 * (1 + 1 + 4 * 2))
    );
    assert_eq!(cost(r#"{ usersByIds(ids: ["1", "2"]) { id } }"#), 1 + 2 * 2);
    assert_eq!(cost(r#"{ user(id: "1") { name groupType: name } }"#), 1 + 2);
    // Variables, and a variable's default.
    let query = "query($n: Int! = 7) { users(limit: $n) { id } }";
    assert_eq!(
        analyze(query, serde_json::json!({ "n": 5 }))
            .expect("ok")
            .cost,
        1 + 5 * 2
    );
    assert_eq!(
        analyze(query, serde_json::json!({})).expect("ok").cost,
        1 + 7 * 2
    );
    let ids = r#"query($ids: [ID!]!) { usersByIds(ids: $ids) { id } }"#;
    assert_eq!(
        analyze(ids, serde_json::json!({ "ids": ["1", "2", "3"] }))
            .expect("ok")
            .cost,
        1 + 3 * 2
    );
}

#[test]
fn lookups_count_their_keys_and_filters_their_limit() {
    assert_eq!(
        cost(r#"{ usersByExternalIds(externalIds: ["1", "2", "3"]) { id } }"#),
        1 + 3 * 2
    );
    assert_eq!(
        cost(r#"{ usersByEmails(emails: ["a@b", "c@d"]) { id groups(limit: 2) { id } } }"#),
        1 + 2 * (1 + 1 + 1 + 2 * 2)
    );
    let emails = r#"query($e: [String!]!) { usersByEmails(emails: $e) { id } }"#;
    assert_eq!(
        analyze(emails, serde_json::json!({ "e": ["a", "b", "c", "d"] }))
            .expect("ok")
            .cost,
        1 + 4 * 2
    );
    assert_eq!(
        cost(
            r#"{ userByEmail(email: "a@b") { id } userByExternalId(externalId: "1") { id } groupByExternalId(externalId: "x") { id } }"#
        ),
        3 * 2
    );
    assert_eq!(
        cost(
            r#"{ users(limit: 4, filter: { nameContains: "a" }) { id } groups(filter: { entryYearId: 1 }) { id } }"#
        ),
        (1 + 4 * 2) + (1 + 10 * 2)
    );
    let keys: Vec<String> = (0..10_001).map(|i| format!("\"{i}\"")).collect();
    assert_eq!(
        reason(&format!(
            "{{ usersByExternalIds(externalIds: [{}]) {{ id }} }}",
            keys.join(",")
        )),
        Reason::Cost
    );
}

#[test]
fn a_limit_out_of_range_counts_as_the_nearest_bound() {
    // The field refuses it when it runs; the cost stays bounded meanwhile.
    assert_eq!(cost("{ users(limit: 0) { id } }"), 1 + 2);
    assert_eq!(
        reason("{ a: users(limit: 100000) { groups(limit: 1000) { id } } }"),
        Reason::Cost
    );
}

#[test]
fn writes_cost_more_than_reads() {
    let one = cost(r#"mutation { userInsert(user: { name: "a" }) { id } }"#);
    assert_eq!(one, WRITE_COST + 2);
    let inserts: Vec<String> = (0..100)
        .map(|i| format!(r#"i{i}: userInsert(user: {{ name: "a" }}) {{ id }}"#))
        .collect();
    let many = format!("mutation {{ {} }}", inserts.join(" "));
    assert_eq!(reason(&many), Reason::Cost, "100 inserts in one document");
}

#[test]
fn fragments_cost_what_they_select_wherever_they_are_spread() {
    let with = "{ users(limit: 5) { ...U } } fragment U on User { id groups(limit: 2) { ...G } } fragment G on Group { name }";
    let without = "{ users(limit: 5) { id groups(limit: 2) { name } } }";
    assert_eq!(cost(with), cost(without));
    let inline = "{ users(limit: 5) { ... on User { id groups(limit: 2) { name } } } }";
    assert_eq!(cost(inline), cost(without));
}

#[test]
fn the_issue_queries_are_refused() {
    // The 131-byte query: 12 levels, each list 100 rows by default.
    let twelve = nested(12);
    assert_eq!(reason(&twelve), Reason::Cost, "{twelve}");
    // Deeper than 12 fields.
    assert_eq!(
        reason(
            &nested(13)
                .replace("groups", "groups(limit: 1)")
                .replace("users {", "users(limit: 1) {")
        ),
        Reason::Depth
    );
    // 26 fragments, each spreading the previous one twice: 2^26 fields.
    let bomb = fragment_bomb(26);
    assert!(bomb.len() < 1300, "{}", bomb.len());
    assert_eq!(reason(&bomb), Reason::Fragments);
}

#[test]
fn cycles_and_too_many_fragments_or_spreads_are_refused() {
    assert_eq!(
        reason(
            "{ users(limit: 1) { ...A } } fragment A on User { id ...B } fragment B on User { ...A }"
        ),
        Reason::Fragments
    );
    let fragments: String = (0..=MAX)
        .map(|i| format!(" fragment F{i} on User {{ id }}"))
        .collect();
    assert_eq!(
        reason(&format!("{{ users(limit: 1) {{ ...F0 }} }}{fragments}")),
        Reason::Fragments
    );
    let spreads = " ...F".repeat(1_001);
    assert_eq!(
        reason(&format!(
            "{{ users(limit: 1) {{ {spreads} }} }} fragment F on User {{ id }}"
        )),
        Reason::Fragments
    );
}
const MAX: usize = crate::limits::MAX_FRAGMENTS;

#[test]
fn aliases_input_values_and_nesting_are_bounded() {
    let aliases: String = (0..6_000).map(|i| format!(" a{i}: __typename")).collect();
    assert_eq!(reason(&format!("{{{aliases} }}")), Reason::Cost);
    let ids: Vec<String> = (0..10_001).map(|i| format!("\"{i}\"")).collect();
    assert_eq!(
        reason(&format!(
            "{{ usersByIds(ids: [{}]) {{ id }} }}",
            ids.join(",")
        )),
        Reason::Cost
    );
    // Inline fragments nested past the recursion limit.
    let open = "... on Query { ".repeat(40);
    let close = "} ".repeat(40);
    assert_eq!(
        reason(&format!("{{ {open} __typename {close} }}")),
        Reason::Depth
    );
}

#[test]
fn introspection_may_nest_deeper() {
    let mut of_type = String::from("name");
    for _ in 0..11 {
        of_type = format!("ofType {{ {of_type} }}");
    }
    let query = format!("{{ __schema {{ types {{ fields {{ type {{ {of_type} }} }} }} }} }}");
    let analysis = analyze(&query, serde_json::json!({})).expect("introspection");
    assert_eq!(analysis.depth, 16);
}

/// Records the complexity async-graphql computes in validation.
struct Recorder(Arc<Mutex<Option<usize>>>);

impl ExtensionFactory for Recorder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Recorder(self.0.clone()))
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Recorder {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        *self.0.lock().expect("lock") = Some(result.complexity);
        Ok(result)
    }
}

#[tokio::test]
async fn the_model_agrees_with_async_graphqls_complexity() {
    let seen = Arc::new(Mutex::new(None));
    let schema = async_graphql::Schema::build(
        crate::Query::<crate::NoFields>::default(),
        crate::Mutation::<crate::NoFields>::default(),
        async_graphql::EmptySubscription,
    )
    .extension(Recorder(seen.clone()))
    .finish();
    for query in [
        "{ users(limit: 3) { id name } }",
        "{ users { id groups { name groupType { name groups(limit: 7) { id } } } } }",
        "{ groups(limit: 50) { id groupType { name } users(limit: 20) { id groups(limit: 5) { name } } } }",
        r#"{ usersByIds(ids: ["1", "2", "3"]) { id } user(id: "1") { email } }"#,
        r#"{ usersByExternalIds(externalIds: ["1", "2"]) { id groups { id } } usersByEmails(emails: ["a"]) { id } userByEmail(email: "a") { id } groupByExternalId(externalId: "x") { users(limit: 3) { id } } }"#,
        r#"{ users(limit: 3, filter: { groupId: "1" }) { id } groups(filter: { nameContains: "a" }) { name } }"#,
        "{ users(limit: 5) { ...U } } fragment U on User { id groups(limit: 2) { ...G } } fragment G on Group { name }",
        r#"mutation { userInsert(user: { name: "a" }) { id groups { id } } membershipAdd(userId: "1", groupId: "2") }"#,
        "query($n: Int!) { groupTypes(limit: $n) { groups(limit: $n) { id } } }",
    ] {
        *seen.lock().expect("lock") = None;
        let request = async_graphql::Request::new(query)
            .variables(Variables::from_json(serde_json::json!({ "n": 4 })));
        let variables = request.variables.clone();
        let _ = schema.execute(request).await;
        let theirs = seen.lock().expect("lock").expect("validated");
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let ours = model()
            .analyze(&document, &variables, &caps())
            .expect("within the caps");
        assert_eq!(ours.cost, theirs as u64, "{query}");
    }
}

#[test]
fn deeply_nested_input_values_do_not_overflow_the_parser() {
    // 1 MiB of brackets (the body limit) on a 2 MiB stack, like a tokio worker's.
    let query = format!(
        "{{ users(limit: {}1{}) {{ id }} }}",
        "[".repeat(500_000),
        "]".repeat(500_000)
    );
    let result = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || async_graphql::parser::parse_query(&query).map(|_| ()))
        .expect("thread")
        .join()
        .expect("no panic");
    assert!(result.is_err(), "pest stops at its stack limit");
}

#[test]
fn a_connection_counts_its_first_rows_once_and_its_total_count_like_a_write() {
    // 1 (the connection) + 10 × (1 edges/nodes row + 1 (nodes) + 1 (name)) ...
    let page = cost("{ usersConnection(first: 10) { nodes { name } } }");
    let bigger = cost("{ usersConnection(first: 20) { nodes { name } } }");
    assert!(bigger > page && bigger < 3 * page, "{page} {bigger}");
    let counted = cost("{ usersConnection(first: 10) { totalCount nodes { name } } }");
    assert!(counted >= page + COUNT_COST, "{page} {counted}");
    // Nested lists of a page are bounded by its `first`, not by MAX_LIMIT,
    // and a connection costs what the list of the same rows costs.
    let nested = cost(
        "{ groupsConnection(first: 5) { nodes { usersConnection(first: 5) { nodes { name } } } } }",
    );
    let lists = cost("{ groups(limit: 5) { users(limit: 5) { name } } }");
    assert_eq!(nested, lists);
    let fan_out = cost(
        "{ groupsConnection(first: 50) { nodes { groupType { name } usersConnection(first: 100) { \
         nodes { groupsConnection(first: 5) { nodes { name } } } } } } }",
    );
    let fan_out_lists = cost(
        "{ groups(limit: 50) { groupType { name } users(limit: 100) { groups(limit: 5) { name } } } }",
    );
    assert_eq!(fan_out, fan_out_lists);
}

#[test]
fn many_counts_in_one_document_are_refused() {
    let aliases: String = (0..150)
        .map(|i| format!("c{i}: usersConnection(first: 1) {{ totalCount }} "))
        .collect();
    assert_eq!(reason(&format!("{{ {aliases} }}")), Reason::Cost);
}
