//! Database errors and cancelled callers.

use std::time::Duration;

use futures::future::join_all;
use rand::Rng;
use roster::loader::Error;
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ConnectionTrait;

use super::users;
use crate::fixtures;

async fn rename(db: &TestDb, from: &str, to: &str) {
    db.conn()
        .execute_unprepared(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .await
        .expect("rename table");
}

async fn a_failed_batch_reaches_every_waiter_and_is_not_cached(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=100).await;
    let loader = users(db.conn());
    rename(db, "users", "users_away").await;

    let results = join_all((1..=100).map(|id| loader.load(id))).await;
    for result in &results {
        match result {
            Err(e @ Error::Source { ids: 100, .. }) => {
                assert!(e.db_err().is_some(), "the DbErr is reachable: {e:?}");
            }
            other => panic!("expected the batch's error, got {other:?}"),
        }
    }
    assert_eq!(loader.metrics().snapshot().failed_batches, 1);

    rename(db, "users_away", "users").await;
    let after = join_all((1..=100).map(|id| loader.load(id))).await;
    for (id, result) in (1..=100).zip(after) {
        assert_eq!(result.expect("recovered").map(|u| u.id), Some(id));
    }
}

async fn aborted_callers_do_not_disturb_the_others(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=1000).await;
    let rounds = async {
        for round in 0..100 {
            let loader = users(db.conn());
            let tasks: Vec<_> = (1..=1000_i64)
                .map(|id| {
                    let loader = loader.clone();
                    tokio::spawn(async move { (id, loader.load(id).await) })
                })
                .collect();
            // Abort every other task, each after a random number of yields:
            // before it registers, while its batch forms, or while it waits.
            let mut kept = Vec::new();
            for (i, task) in tasks.into_iter().enumerate() {
                if i % 2 == 0 {
                    kept.push(task);
                } else {
                    let yields = rand::rng().random_range(0..4);
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                    task.abort();
                }
            }
            for task in kept {
                let (id, result) = task.await.expect("kept task finished");
                let user = result.unwrap_or_else(|e| panic!("round {round}: load {id}: {e}"));
                assert_eq!(user.map(|u| u.id), Some(id), "round {round}");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), rounds)
        .await
        .expect("no round may hang");
}

backend_tests!(
    migrated: a_failed_batch_reaches_every_waiter_and_is_not_cached,
    aborted_callers_do_not_disturb_the_others,
);
