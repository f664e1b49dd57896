//! The README's first example: the query its `curl` command sends gets, on
//! every backend, exactly the answer the README shows (`crate::docs` runs
//! the command itself on SQLite).

use roster::server::seed;
use roster_testkit::{TestDb, backend_tests};

use super::start;

async fn the_readme_example_answers_what_the_readme_shows(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    let server = start(db).await;
    let (body, shown) = crate::docs::readme_example();
    let answer = server
        .client()
        .post(server.url("/graphql"))
        .json(&body)
        .send()
        .await
        .expect("POST")
        .text()
        .await
        .expect("text");
    assert_eq!(answer, shown, "the README shows another answer");
}

backend_tests!(migrated: the_readme_example_answers_what_the_readme_shows);
