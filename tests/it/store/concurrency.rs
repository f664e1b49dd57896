//! Optimistic concurrency under real contention.

use std::sync::Arc;

use chrono::TimeDelta;
use futures::future::join_all;
use roster::entity::{group, user};
use roster::store::{Error, Store};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, EntityTrait};

use super::{new_counter, new_user, rename};

async fn same_version_32_writers_one_wins(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let row = new_user(&store, "start").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks = (0..32).map(|i| {
        let (conn, barrier) = (db.conn().clone(), barrier.clone());
        tokio::spawn(async move {
            let store = Store::new(conn);
            barrier.wait().await;
            store
                .update::<user::Entity>(row.id, row.lastchange, rename(&format!("writer {i}")))
                .await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let winners: Vec<&user::Model> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one writer wins: {results:?}");
    let winner = winners[0];
    let stored = user::Entity::find_by_id(row.id)
        .one(db.conn())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(&stored, winner, "the winner's row is what is stored");
    for result in &results {
        match result {
            Ok(_) => {}
            Err(Error::Conflict(conflict)) => {
                assert_eq!(conflict.current::<user::Model>(), Some(winner));
                assert_eq!(conflict.expected, row.lastchange);
            }
            Err(other) => panic!("expected a conflict, got {other:?}"),
        }
    }
}

async fn read_modify_write_loses_no_update(db: &TestDb) {
    let counter = new_counter(&Store::new(db.conn().clone())).await;
    let tasks = (0..16).map(|_| {
        let conn = db.conn().clone();
        tokio::spawn(async move {
            let store = Store::new(conn);
            let mut seen = store
                .get::<group::Entity>(counter.id)
                .await
                .expect("get")
                .expect("row");
            let mut conflicts = 0_u32;
            for _ in 0..50 {
                loop {
                    let next = seen.entry_year_id.unwrap_or(0) + 1;
                    let changes = group::ActiveModel {
                        entry_year_id: Set(Some(next)),
                        ..Default::default()
                    };
                    match store
                        .update::<group::Entity>(counter.id, seen.lastchange, changes)
                        .await
                    {
                        Ok(row) => {
                            seen = row;
                            break;
                        }
                        Err(Error::Conflict(conflict)) => {
                            conflicts += 1;
                            seen = conflict.current::<group::Model>().expect("a group").clone();
                        }
                        Err(other) => panic!("unexpected error: {other:?}"),
                    }
                }
            }
            conflicts
        })
    });
    let conflicts: u32 = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .sum();
    let stored = group::Entity::find_by_id(counter.id)
        .one(db.conn())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        stored.entry_year_id,
        Some(800),
        "after {conflicts} conflicts"
    );
}

async fn lastchange_strictly_increases_when_the_clock_lags(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let row = new_user(&store, "fast").await;
    // Put the row's version an hour ahead of the clock: every update now
    // happens "in the same tick" as far as `now` can tell.
    let ahead = row.lastchange + TimeDelta::hours(1);
    let literal = match db.db_backend() {
        sea_orm::DbBackend::MySql => ahead.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        _ => ahead.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
    };
    db.conn()
        .execute_unprepared(&format!(
            "UPDATE users SET lastchange = '{literal}' WHERE id = {}",
            row.id
        ))
        .await
        .expect("set ahead");
    let mut expected = ahead;
    let mut seen = Vec::with_capacity(1000);
    for i in 0..1000 {
        let row = store
            .update::<user::Entity>(row.id, expected, rename(&format!("n{i}")))
            .await
            .expect("update");
        seen.push(row.lastchange);
        expected = row.lastchange;
    }
    for pair in seen.windows(2) {
        assert_eq!(pair[1] - pair[0], TimeDelta::microseconds(1), "{pair:?}");
    }
    assert_eq!(seen[0], ahead + TimeDelta::microseconds(1));
}

backend_tests!(migrated:
    same_version_32_writers_one_wins,
    read_modify_write_loses_no_update,
    lastchange_strictly_increases_when_the_clock_lags,
);
