//! The PostgreSQL cluster as the tests of reads from replicas expect it
//! (`roster_testkit::cluster::pg_cluster`): a database made on the primary
//! reaches every replica, the streaming replica replays a write within
//! moments, and the delayed one holds it back for its
//! `recovery_min_apply_delay`; the testkit's waits see both.

use std::time::{Duration, Instant};

use roster::entity::user;
use roster::store::{PoolSettings, Store, pool};
use roster_testkit::cluster;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, Statement};

use crate::store::new_user;

/// How long a replica may take to catch up, its delay included.
const CATCH_UP: Duration = Duration::from_secs(30);

async fn connect(url: &str) -> DatabaseConnection {
    let settings = PoolSettings::default().max_connections(2);
    pool::connect(url, &settings).await.expect("connect")
}

/// The replica's `recovery_min_apply_delay`, in PostgreSQL's words (`0`, `5s`).
async fn apply_delay(admin_url: &str) -> String {
    let conn = Database::connect(admin_url).await.expect("connect");
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SHOW recovery_min_apply_delay",
        ))
        .await
        .expect("show")
        .expect("a row");
    let delay = row.try_get_by_index::<String>(0).expect("text");
    let _ = conn.close().await;
    delay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reaches_the_streaming_replica_at_once_and_the_delayed_one_later() {
    let test = "cluster::replicas::a_write_reaches";
    let Some(cluster) = cluster::pg_cluster(test).await else {
        return;
    };
    let mut delays = Vec::new();
    for url in &cluster.replicas {
        delays.push(apply_delay(url).await);
    }
    let streaming = 1 + delays
        .iter()
        .position(|d| d == "0")
        .expect("a replica without delay");
    let delayed = 1 + delays
        .iter()
        .position(|d| d != "0")
        .expect("a delayed replica");
    let db = cluster.create_db(test).await;
    db.migrate().await;
    for node in 1..=cluster.replicas.len() {
        db.wait_for_database_on(node, CATCH_UP).await;
        db.wait_for_replay_on(node, CATCH_UP).await;
    }
    let (primary, fast, slow) = (
        connect(db.url(0)).await,
        connect(db.url(streaming)).await,
        connect(db.url(delayed)).await,
    );
    let wrote = Instant::now();
    let ada = new_user(&Store::new(primary.clone()), "Ada").await;
    let on_slow = user::Entity::find_by_id(ada.id)
        .one(&slow)
        .await
        .expect("read");
    // Unless this test itself stalled for most of the delay, the delayed
    // replica cannot have it yet.
    if wrote.elapsed() < Duration::from_secs(4) {
        assert_eq!(
            on_slow,
            None,
            "the delayed replica ({}) applies later",
            delays[delayed - 1]
        );
    }
    db.wait_for_replay_on(streaming, Duration::from_secs(5))
        .await;
    let on_fast = user::Entity::find_by_id(ada.id)
        .one(&fast)
        .await
        .expect("read");
    assert_eq!(on_fast.as_ref(), Some(&ada));
    db.wait_for_replay_on(delayed, CATCH_UP).await;
    assert!(
        wrote.elapsed() >= Duration::from_secs(4),
        "held back for its delay"
    );
    let on_slow = user::Entity::find_by_id(ada.id)
        .one(&slow)
        .await
        .expect("read");
    assert_eq!(on_slow.as_ref(), Some(&ada));
    for conn in [primary, fast, slow] {
        let _ = conn.close().await;
    }
}
