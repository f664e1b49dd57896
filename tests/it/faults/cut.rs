//! Connections cut: under 1,000 in-flight loads, and inside a transaction.

use std::sync::Arc;

use std::time::{Duration, Instant};

use futures::future::join_all;
use roster::entity::user;
use roster::store::{Error, Loaders, Store, TxOptions};
use roster_testkit::{Backend, TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use tokio::task::JoinHandle;

use super::{ACQUIRE, pool, recover, report, within};
use crate::fixtures;

type LoadTask = JoinHandle<(i64, roster::loader::Result<Option<Arc<user::Model>>>)>;

/// Ten requests (each with loaders of its own, so ten batches competing
/// for the pool) of 100 loads each: users 1..=1000.
fn spawn_loads(conn: &DatabaseConnection) -> Vec<LoadTask> {
    (0..10_i64)
        .flat_map(|request| {
            let loaders = Loaders::new(conn.clone());
            (1..=100).map(move |i| {
                let users = loaders.by_id::<user::Entity>().clone();
                let id = request * 100 + i;
                tokio::spawn(async move { (id, users.load(id).await) })
            })
        })
        .collect()
}

/// A database restart under load: the proxy stalls so that 1,000 loads are
/// provably in flight (sent, or waiting for a connection), then refuses new
/// connections and cuts the open ones. Every waiter gets an error within the
/// pool's acquire timeout; once the proxy passes traffic, the same pool
/// serves the same 1,000 loads again.
async fn cut_under_1000_loads_fails_every_waiter_then_recovers(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=1000).await;
    let (proxy, url) = db.fault_proxy().await;
    let conn = pool(&url, 4).await;
    within(
        ACQUIRE * 2,
        "warm-up",
        Loaders::new(conn.clone()).by_id::<user::Entity>().load(1),
    )
    .await
    .expect("warm-up load");

    proxy.stall();
    let loads = spawn_loads(&conn);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        loads.iter().all(|task| !task.is_finished()),
        "a stalled database answers nothing"
    );
    proxy.refuse();
    let cut_at = Instant::now();
    proxy.cut();
    let results = within(
        ACQUIRE + Duration::from_secs(3),
        "the loads after the cut",
        join_all(loads),
    )
    .await;
    let took = cut_at.elapsed();
    for result in results {
        let (id, result) = result.expect("load task");
        assert!(result.is_err(), "load {id} after the cut: {result:?}");
    }
    // The acquire timeout plus scheduling slack for a loaded 2-core machine
    // (the bound that matters: not the 30 s of an unbounded wait).
    assert!(
        took <= ACQUIRE + Duration::from_secs(2),
        "errors within the acquire timeout, took {took:?}"
    );
    report("cut", &format!("{} loads failed after the cut", 1000), took);

    proxy.pass();
    let (failed, took, ()) = recover(8, ACQUIRE * 3, || async {
        for task in join_all(spawn_loads(&conn)).await {
            let (id, result) = task.expect("load task");
            assert_eq!(result?.map(|u| u.id), Some(id));
        }
        Ok::<_, roster::loader::Error>(())
    })
    .await;
    report(
        "cut",
        &format!("1,000 loads served again after {failed} failed round(s)"),
        took,
    );
}

fn named(name: &str) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(Some(name.to_owned())),
        ..Default::default()
    }
}

async fn count_named(db: &TestDb, prefix: &str) -> u64 {
    user::Entity::find()
        .filter(user::Column::Name.starts_with(prefix))
        .count(db.conn())
        .await
        .expect("count through a direct connection")
}

/// A transaction inserting two rows loses its connection between them: the
/// store returns an error, and neither row is visible (the server rolled
/// back the session's work); the same store then commits a transaction.
async fn a_transaction_cut_midway_leaves_no_row(db: &TestDb) {
    let (proxy, url) = db.fault_proxy().await;
    let conn = pool(&url, 2).await;
    let store = Store::new(conn);
    let proxy = &proxy;
    let once = TxOptions::new().max_attempts(1);
    let started = Instant::now();
    let result = within(
        ACQUIRE * 2,
        "the cut transaction",
        store.transaction(once.clone(), |tx| async move {
            tx.insert::<user::Entity>(named("cut-first")).await?;
            proxy.cut();
            tx.insert::<user::Entity>(named("cut-second")).await?;
            Ok(())
        }),
    )
    .await;
    let error = result.expect_err("a transaction whose connection was cut fails");
    report(
        "transaction",
        &format!("cut transaction failed ({error})"),
        started.elapsed(),
    );
    assert_eq!(
        count_named(db, "cut-").await,
        0,
        "nothing partially visible"
    );

    let (failed, took, ()) = recover(4, ACQUIRE * 2, || {
        store.transaction(once.clone(), |tx| async move {
            tx.insert::<user::Entity>(named("after-first")).await?;
            tx.insert::<user::Entity>(named("after-second")).await?;
            Ok(())
        })
    })
    .await;
    report(
        "transaction",
        &format!("a transaction committed after {failed} failed attempt(s)"),
        took,
    );
    assert_eq!(
        count_named(db, "cut-").await,
        0,
        "still nothing of the cut one"
    );
    assert_eq!(count_named(db, "after-").await, 2);
}

/// The connection is cut as the client sends `COMMIT`: once before the
/// server sees it (the server rolls back), once right after (the server
/// commits, the answer is lost). Both times the store reports
/// `Error::CommitUnknown` after one attempt (never retried: that could
/// apply the work twice), the work is all there or not at all, the
/// request's loader cache was cleared, and the next transaction commits.
async fn a_cut_during_commit_is_reported_as_unknown_never_retried(db: &TestDb) {
    use std::sync::atomic::{AtomicU32, Ordering};

    super::seed_users(db, 1).await;
    let (proxy, url) = db.fault_proxy().await;
    // The proxy reads the client's bytes: no TLS (sqlx prefers it when the
    // server offers it, as Debian's PostgreSQL does).
    let url = match db.backend() {
        Backend::Postgres => format!(
            "{url}{}sslmode=disable",
            if url.contains('?') { '&' } else { '?' }
        ),
        _ => url,
    };
    for (forward, tag) in [(false, "unsent-"), (true, "sent-")] {
        // A fresh connection per round: PostgreSQL's sqlx caches `COMMIT` as
        // a prepared statement, so only a connection's first commit carries
        // the text the proxy looks for.
        let store = Store::new(pool(&url, 1).await);
        let users = store.loaders().by_id::<user::Entity>();
        within(ACQUIRE, "a first load", users.load(1))
            .await
            .expect("load");
        proxy.cut_when_client_sends(b"COMMIT", forward);
        let attempts = AtomicU32::new(0);
        let attempts = &attempts;
        let result = within(
            ACQUIRE * 2,
            "the transaction cut at COMMIT",
            store.transaction(TxOptions::new(), |tx| async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                tx.insert::<user::Entity>(named(&format!("{tag}first")))
                    .await?;
                tx.insert::<user::Entity>(named(&format!("{tag}second")))
                    .await?;
                Ok(())
            }),
        )
        .await;
        assert!(proxy.trigger_fired(), "the proxy saw COMMIT ({result:?})");
        assert!(
            matches!(result, Err(Error::CommitUnknown { .. })),
            "forward {forward}: {result:?}"
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "not retried");
        // The server may still be finishing the commit it received: watch
        // for up to 2 s; never half the rows.
        let deadline = Instant::now() + Duration::from_secs(2);
        let rows = loop {
            // One statement, one snapshot ("{tag}after" comes later).
            let rows = count_named(db, tag).await;
            assert!(rows == 0 || rows == 2, "{rows} of 2 rows: half committed");
            if !forward || rows == 2 || Instant::now() > deadline {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if forward {
            assert_eq!(rows, 2, "the server received COMMIT: all of it committed");
        } else {
            assert_eq!(rows, 0, "the server never saw COMMIT: nothing committed");
        }
        // The user loaded (and cached) before the cut is read from the
        // database again: the request's cache was cleared.
        let batches = users.metrics().snapshot().batches;
        let again = within(ACQUIRE * 3, "a load after the cut", users.load(1)).await;
        assert_eq!(users.metrics().snapshot().batches, batches + 1, "{again:?}");
        let (failed, took, ()) = recover(4, ACQUIRE * 2, || {
            store.transaction(TxOptions::new().max_attempts(1), |tx| async move {
                tx.insert::<user::Entity>(named(&format!("{tag}after")))
                    .await?;
                Ok(())
            })
        })
        .await;
        report(
            "commit cut",
            &format!("forward {forward}: {rows} rows; next transaction after {failed} failures"),
            took,
        );
    }
}

backend_tests!(
    migrated on [postgres, mysql]: cut_under_1000_loads_fails_every_waiter_then_recovers,
    a_transaction_cut_midway_leaves_no_row,
    a_cut_during_commit_is_reported_as_unknown_never_retried,
);
