//! A database time limit reads the same to a client whichever path met it:
//! a query's loader batch or a mutation's statement. Both are `INTERNAL`,
//! said as a timeout, with no database text.

use std::time::Duration;

use roster::server::AppState;
use roster::store::{PoolSettings, pool};
use roster_testkit::{TestDb, backend_tests};
use serde_json::json;

use super::{Server, error_code};
use crate::fixtures::{self, UsersLocked};

async fn a_timed_out_query_and_mutation_answer_alike(db: &TestDb) {
    let ada = fixtures::user(db.conn(), "Ada").await;
    let settings = PoolSettings::default().statement_timeout(Some(Duration::from_millis(500)));
    let limited = pool::connect(db.url(), &settings).await.expect("connect");
    let server = Server::start(AppState::new(limited)).await;
    let lastchange = roster::graphql::DateTime(ada.lastchange).to_rfc3339();
    let lock = UsersLocked::take(db).await;
    let read = server
        .run(
            "query($id: ID!) { user(id: $id) { name } }",
            json!({ "id": ada.id.to_string() }),
        )
        .await;
    let write = server
        .run(
            "mutation($u: UserUpdate!) { userUpdate(user: $u) { name } }",
            json!({ "u": { "id": ada.id.to_string(), "lastchange": lastchange, "name": "B" } }),
        )
        .await;
    lock.release().await;
    for answer in [&read, &write] {
        assert_eq!(error_code(answer), "INTERNAL", "{answer:#}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("timed out"), "{answer:#}");
    }
    assert_eq!(read["errors"][0]["message"], write["errors"][0]["message"]);
    assert_eq!(
        server
            .metric("roster_graphql_errors_total{code=\"INTERNAL\"}")
            .await,
        Some(2)
    );
    server.stop().await;
}

// SQLite has no statement time limit (and no table lock a reader waits on).
backend_tests!(migrated on [postgres, mysql]: a_timed_out_query_and_mutation_answer_alike);
