//! The documentation's `graphql` blocks: each parses, and runs without an
//! error against Roster's schema on a database with the demo data (the
//! page on a service's own tables: against the example service's schema).

use roster::graphql::{request_data, schema};
use roster::server::seed;
use roster::store::Loaders;
use roster_testkit::{TestDb, backend_tests};

use super::markdown::{Page, pages};

async fn graphql_blocks_run_against_the_demo_data(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    roster::migrations::run_migrator::<roster_example_projects::Migrator>(
        db.url(),
        roster::migrations::Action::Up { steps: None },
        std::time::Duration::from_secs(60),
    )
    .await
    .expect("the example's migrations");
    let roster = schema();
    let service = roster_example_projects::graphql::schema();
    let mut failures = Vec::new();
    for block in pages().iter().flat_map(Page::blocks) {
        if block.lang != "graphql" {
            continue;
        }
        if let Err(e) = async_graphql::parser::parse_query(&block.body) {
            failures.push(format!("{}: {e}", block.at()));
            continue;
        }
        let loaders = Loaders::new(db.conn().clone());
        let request = request_data(
            async_graphql::Request::new(block.body.clone()),
            &loaders,
            db.conn(),
        );
        let response = if block.at().starts_with("docs/extending.md") {
            service.execute(request).await
        } else {
            roster.execute(request).await
        };
        if !response.errors.is_empty() {
            failures.push(format!("{}: {:?}", block.at(), response.errors));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

backend_tests!(migrated on [sqlite]: graphql_blocks_run_against_the_demo_data);
