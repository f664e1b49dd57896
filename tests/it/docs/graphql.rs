//! The documentation's `graphql` blocks: each parses, and runs without an
//! error against Roster's schema on a database with the demo data.

use roster::graphql::{request_data, schema};
use roster::server::seed;
use roster::store::Loaders;
use roster_testkit::{TestDb, backend_tests};

use super::markdown::{Page, pages};

async fn graphql_blocks_run_against_the_demo_data(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    let schema = schema();
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
        let response = schema.execute(request).await;
        if !response.errors.is_empty() {
            failures.push(format!("{}: {:?}", block.at(), response.errors));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

backend_tests!(migrated on [sqlite]: graphql_blocks_run_against_the_demo_data);
