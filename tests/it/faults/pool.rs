//! Pool exhaustion: more concurrent requests than connections.

use std::time::{Duration, Instant};

use futures::future::{join_all, try_join_all};
use roster::entity::{group, user};
use roster::store::{Error, Store, TxOptions};
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ConnAcquireErr, ConnectOptions, Database, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait,
};

use super::{report, seed_users, within};

/// A direct pool (no proxy: the fault here is the pool's size) of `max`
/// connections with `acquire` as acquire timeout.
async fn small_pool(db: &TestDb, max: u32, acquire: Duration) -> DatabaseConnection {
    let mut options = ConnectOptions::new(db.url());
    options
        .max_connections(max)
        .acquire_timeout(acquire)
        .test_before_acquire(false)
        .sqlx_logging(false);
    Database::connect(options).await.expect("connect")
}

fn named(name: String) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(Some(name)),
        ..Default::default()
    }
}

/// One request: loader reads (users and their groups, concurrently), a
/// write, and a transaction that writes and reads back its row while it
/// holds its connection. Inside the transaction `get` reads through the
/// transaction's own connection, never the pool, so a request holding a
/// connection never waits for a second one.
async fn request(conn: DatabaseConnection, n: i64) -> Result<(), Error> {
    let store = Store::new(conn);
    let ids: Vec<i64> = (n * 3 + 1..=n * 3 + 3).collect();
    let loaders = store.loaders();
    let by_id = loaders.by_id::<user::Entity>();
    let groups_of_user = loaders
        .related::<user::Entity, group::Entity>()
        .expect("relation");
    let (users, groups) = tokio::join!(
        try_join_all(ids.iter().map(|&id| by_id.load(id))),
        try_join_all(ids.iter().map(|&id| groups_of_user.load(id))),
    );
    assert!(users?.iter().all(Option::is_some));
    groups?;
    store
        .insert::<user::Entity>(named(format!("plain-{n}")))
        .await?;
    store
        .transaction(TxOptions::new(), |tx| async move {
            let row = tx.insert::<user::Entity>(named(format!("tx-{n}"))).await?;
            let again = tx.get::<user::Entity>(row.id).await?;
            assert_eq!(again.map(|u| u.id), Some(row.id));
            Ok(())
        })
        .await
}

/// 64 concurrent requests on a pool of 2: they queue for connections and
/// all complete; every write is there.
async fn sixty_four_requests_on_two_connections_all_complete(db: &TestDb) {
    seed_users(db, 64 * 3).await;
    let conn = small_pool(db, 2, Duration::from_secs(20)).await;
    let started = Instant::now();
    let results = within(
        Duration::from_secs(60),
        "64 requests on 2 connections",
        join_all((0..64).map(|n| tokio::spawn(request(conn.clone(), n)))),
    )
    .await;
    for result in results {
        result.expect("request task").expect("request");
    }
    report(
        "pool",
        "64 requests on 2 connections completed",
        started.elapsed(),
    );
    let users = user::Entity::find().count(db.conn()).await.expect("count");
    assert_eq!(users, 64 * 3 + 64 * 2);
}

/// The classic trap, shown bounded: a transaction holds the pool's only
/// connection and reads through the request's loaders (which use the pool,
/// not the transaction). The load cannot get a connection; it fails with
/// the acquire timeout instead of waiting forever, and the transaction's
/// error rolls it back. (`Store::get` inside a transaction does not do
/// this: it reads through the transaction.)
async fn a_loader_read_inside_a_transaction_on_a_full_pool_fails_with_a_timeout(db: &TestDb) {
    seed_users(db, 3).await;
    let acquire = Duration::from_secs(1);
    let conn = small_pool(db, 1, acquire).await;
    let store = Store::new(conn);
    let started = Instant::now();
    let result = within(
        acquire * 5,
        "a loader read inside a transaction",
        store.transaction(TxOptions::new().max_attempts(1), |tx| async move {
            tx.insert::<user::Entity>(named("trapped".into())).await?;
            tx.loaders().by_id::<user::Entity>().load(1).await?;
            Ok(())
        }),
    )
    .await;
    let took = started.elapsed();
    match &result {
        Err(Error::Load(e)) => assert!(
            matches!(
                e.db_err(),
                Some(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
            ),
            "{e:?}"
        ),
        other => panic!("expected the acquire timeout, got {other:?}"),
    }
    assert!(took >= acquire && took < acquire * 3, "took {took:?}");
    report(
        "pool",
        "the trapped load failed with the acquire timeout",
        took,
    );
    let users = user::Entity::find().count(db.conn()).await.expect("count");
    assert_eq!(users, 3, "the transaction rolled back");
}

backend_tests!(
    migrated on [postgres, mysql]: sixty_four_requests_on_two_connections_all_complete,
    a_loader_read_inside_a_transaction_on_a_full_pool_fails_with_a_timeout,
);
