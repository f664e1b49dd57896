//! The README's first example: the query its `curl` command sends gets, on
//! every backend, exactly the answer the README shows.

use roster::server::seed;
use roster_testkit::{TestDb, backend_tests};
use serde_json::Value;

use super::start;

/// The `-d '…'` body of the README's `curl` example and the ```json block
/// after it.
fn example() -> (Value, String) {
    let readme = include_str!("../../../README.md");
    let curl = readme
        .find("curl -s http://127.0.0.1:8000/graphql")
        .expect("the README's curl example");
    let rest = &readme[curl..];
    let body = rest
        .split("-d '")
        .nth(1)
        .and_then(|b| b.split("'\n").next())
        .expect("the curl body");
    let answer = rest
        .split("```json\n")
        .nth(1)
        .and_then(|a| a.split("\n```").next())
        .expect("the answer the README shows");
    (
        serde_json::from_str(body).expect("the curl body is JSON"),
        answer.to_owned(),
    )
}

async fn the_readme_example_answers_what_the_readme_shows(db: &TestDb) {
    seed::seed_if_empty(db.url(), db.conn())
        .await
        .expect("seed");
    let server = start(db).await;
    let (body, shown) = example();
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
