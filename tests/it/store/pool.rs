//! `roster_store::pool`: a statement abandoned half-way never leaves a
//! connection behind that hangs the next request, and the statement time
//! limit turns a statement stuck behind a lock into `Error::Timeout`.

use std::time::{Duration, Instant};

use roster::entity::user;
use roster::store::{Error, Operation, PoolSettings, Store, pool};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, TransactionTrait};

use super::{new_user, poll_at_most, rename};

async fn one_connection(db: &TestDb, settings: PoolSettings) -> DatabaseConnection {
    let settings = settings
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10));
    pool::connect(db.url(), &settings).await.expect("connect")
}

/// With a pool of one connection, a bound statement is dropped after 1, 2,
/// 3 … polls (mid-acquire, mid-prepare, mid-execute, mid-result); after each,
/// the same pool must answer the next statement within seconds. This is the
/// sqlx-mysql trap the MySQL release check exists for.
async fn abandoned_statements_leave_no_stuck_connection(db: &TestDb) {
    let conn = one_connection(db, PoolSettings::default()).await;
    let store = Store::new(conn.clone());
    let mut finished = false;
    let mut polls = 1;
    while !finished {
        let insert = store.insert::<user::Entity>(user::ActiveModel {
            name: Set(Some(format!("poll-{polls}"))),
            ..Default::default()
        });
        finished = poll_at_most(insert, polls).await.is_some();
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(15), async {
            // Read back through a bound statement, the path that prepares.
            user::Entity::find_by_id(1).one(&conn).await
        })
        .await
        .unwrap_or_else(|_| panic!("the pool hangs after a statement dropped at poll {polls}"));
        answer.unwrap_or_else(|e| panic!("after a drop at poll {polls}: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "after a drop at poll {polls} the next statement took {:?}",
            started.elapsed()
        );
        polls += 1;
        assert!(polls < 200, "the insert never completed");
    }
    // Each insert is one statement: it happened entirely or not at all.
    let rows = user::Entity::find().count(&conn).await.expect("count");
    assert!(
        rows >= 1 && rows < u64::from(polls),
        "{rows} rows after {polls} polls"
    );
}

/// A statement waiting on a row lock past the statement time limit fails
/// with `Error::Timeout` (not a hang, not a generic database error), and
/// the pool serves the next statement.
async fn statement_timeout_stops_a_blocked_update(db: &TestDb) {
    let settings = PoolSettings::default().statement_timeout(Some(Duration::from_millis(500)));
    let conn = pool::connect(db.url(), &settings).await.expect("connect");
    let store = Store::new(conn.clone());
    let ada = new_user(&store, "ada").await;
    // Another session holds the row lock in an open transaction.
    let holder = db.conn().begin().await.expect("begin");
    holder
        .execute_unprepared(&format!(
            "UPDATE users SET surname = 'held' WHERE id = {}",
            ada.id
        ))
        .await
        .expect("take the row lock");
    let started = Instant::now();
    let blocked = store
        .update::<user::Entity>(ada.id, ada.lastchange, rename("waited"))
        .await;
    let waited = started.elapsed();
    holder.rollback().await.expect("rollback");
    assert!(
        matches!(
            blocked,
            Err(Error::Timeout {
                operation: Operation::Update,
                table: "users",
                ..
            })
        ),
        "expected Timeout, got {blocked:?}"
    );
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "the limit is 500 ms, waited {waited:?}"
    );
    // The pool recovers: the same update goes through now.
    let row = tokio::time::timeout(
        Duration::from_secs(5),
        store.update::<user::Entity>(ada.id, ada.lastchange, rename("after")),
    )
    .await
    .expect("no hang")
    .expect("update after the lock is gone");
    assert_eq!(row.name.as_deref(), Some("after"));
}

/// Replies trickle in a byte at a time and each read is abandoned part-way
/// (mostly mid-packet); after each, the pool of one connection answers the
/// next statement within seconds. sqlx-mysql 0.9 loses a packet header when
/// a read is dropped between header and payload; the connection then waits
/// forever for a "packet" that never ends, and sqlx's own release ping waits
/// with it: without the release check the pool's only slot is gone.
async fn replies_cut_mid_packet_leave_no_stuck_connection(db: &TestDb) {
    let (proxy, url) = db.fault_proxy().await;
    let settings = PoolSettings::default()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10));
    let conn = pool::connect(&url, &settings).await.expect("connect");
    let store = Store::new(conn.clone());
    for i in 0..5 {
        new_user(
            &store,
            &format!("a name long enough to span packets {i:03}"),
        )
        .await;
    }
    for round in 0..6_u64 {
        proxy.trickle(Duration::from_millis(1));
        let cut_after = Duration::from_millis(60 + (round * 97) % 700);
        let read = tokio::time::timeout(cut_after, user::Entity::find().all(&conn)).await;
        proxy.pass();
        let started = Instant::now();
        let rows = tokio::time::timeout(Duration::from_secs(15), user::Entity::find().all(&conn))
            .await
            .unwrap_or_else(|_| {
                panic!("round {round}: the pool hangs after a reply cut at {cut_after:?}")
            })
            .unwrap_or_else(|e| panic!("round {round}: after a reply cut at {cut_after:?}: {e}"));
        assert_eq!(rows.len(), 5, "round {round}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "round {round} (cut at {cut_after:?}, first read finished: {}): the next statement took {:?}",
            read.is_ok(),
            started.elapsed()
        );
    }
}

backend_tests!(migrated: abandoned_statements_leave_no_stuck_connection);
backend_tests!(migrated on [postgres, mysql]: replies_cut_mid_packet_leave_no_stuck_connection);
// SQLite has no statement time limit (and no row locks to wait on).
backend_tests!(migrated on [postgres, mysql]: statement_timeout_stops_a_blocked_update);
