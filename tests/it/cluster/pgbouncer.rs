//! Roster's pool through PgBouncer 1.18 in front of the cluster's primary
//! (`scripts/cluster.sh`): what transaction pooling breaks, and that session
//! pooling runs the store.
//!
//! sqlx 0.9 runs every statement with parameters (all of sea-orm's) as a
//! protocol-level prepared statement: `Parse` (named `sqlx_s_<n>`, counted
//! per client connection) and `Sync`, then `Bind`/`Execute` and a second
//! `Sync`. In transaction pooling PgBouncer hands the server connection back
//! to its pool at each `Sync` outside a transaction, so:
//! - a second client connection prepares `sqlx_s_1` on a server connection
//!   where the first one already did: "prepared statement already exists"
//!   (42P05);
//! - a statement prepared (and cached) on one server connection is bound on
//!   another: "prepared statement does not exist" (26000), or, worse, binds
//!   another client's statement of the same name.
//!
//! Turning sqlx's statement cache off (`statement_cache_capacity(0)`) does
//! not help: sqlx 0.9 still names each statement (and never closes it), and
//! an unnamed one would still span two `Sync`s. PgBouncer 1.18 cannot track
//! prepared statements (1.21's `max_prepared_statements` can). What works
//! with 1.18 is session pooling, here for the user
//! [`SESSION_USER`].
//!
//! A pool with [`PoolSettings::statement_timeout`] sends it in the startup
//! packet's `options`, which PgBouncer 1.18 refuses; set the limit on the
//! role or database instead (`ALTER ROLE … SET statement_timeout`).
//!
//! Migrations run against the primary directly, never through PgBouncer:
//! they hold a session-level advisory lock (and set `lock_timeout` for the
//! session), which transaction pooling would leave on whichever server
//! connection ran it, for other clients to inherit, and the unlock would
//! run on another.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::join_all;
use roster::entity::{group, user};
use roster::loader::db_error;
use roster::store::{Error, PoolSettings, Store, TxOptions, pool};
use roster_testkit::cluster::{self, ClusterDb, PgBouncer};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, TransactionTrait,
};

use crate::store::{new_counter, new_user};

/// The user `scripts/cluster.sh`'s PgBouncer pools in session mode (every
/// other user: transaction mode).
const SESSION_USER: &str = "roster_session";

/// A migrated database on the cluster's primary, and PgBouncer.
async fn setup(test: &str) -> Option<(PgBouncer, ClusterDb)> {
    let bouncer = cluster::pgbouncer(test).await?;
    let db = bouncer.cluster.create_db(test).await;
    // Directly on the primary: see the module's documentation.
    db.migrate().await;
    Some((bouncer, db))
}

/// A pool of `max` connections to `url`, with `settings`' other values.
async fn connect(url: &str, max: u32) -> DatabaseConnection {
    let settings = PoolSettings::default().max_connections(max);
    pool::connect(url, &settings).await.expect("connect")
}

/// The PostgreSQL SQLSTATE of `err`.
fn sqlstate(err: &DbErr) -> Option<String> {
    db_error::backend_code(err)
        .filter(|code| code.backend == DbBackend::Postgres)
        .map(|code| code.code)
}

/// Two pools of one connection each, taking turns, in transaction mode.
/// Nothing runs at once, so PgBouncer serves both from one server
/// connection: the second pool's first statement is prepared as
/// `sqlx_s_1`, which the first pool's already is on that server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_pooling_makes_prepared_statements_collide() {
    let Some((bouncer, db)) = setup("cluster::pgbouncer::statements_collide").await else {
        return;
    };
    let ada = new_user(&Store::new(connect(db.url(0), 1).await), "Ada").await;
    let url = bouncer.url_of(&db);
    let (first, second) = (connect(&url, 1).await, connect(&url, 1).await);
    let found = user::Entity::find_by_id(ada.id).one(&first).await;
    assert_eq!(found.expect("the first pool reads"), Some(ada.clone()));
    let err = user::Entity::find_by_id(ada.id)
        .one(&second)
        .await
        .expect_err("sqlx_s_1 exists on the server connection already");
    assert_eq!(sqlstate(&err).as_deref(), Some("42P05"), "{err}");
    assert!(
        !Error::from(err).is_retryable(),
        "not retryable: it fails again"
    );
}

/// The first pool's cached statement, bound while its server connection is
/// busy with the second pool's transaction: PgBouncer gives it a new server
/// connection, where `sqlx_s_1` was never prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_pooling_loses_prepared_statements() {
    let Some((bouncer, db)) = setup("cluster::pgbouncer::statements_lost").await else {
        return;
    };
    let ada = new_user(&Store::new(connect(db.url(0), 1).await), "Ada").await;
    let url = bouncer.url_of(&db);
    let (first, second) = (connect(&url, 1).await, connect(&url, 1).await);
    let found = user::Entity::find_by_id(ada.id).one(&first).await;
    assert_eq!(found.expect("prepared and cached"), Some(ada.clone()));
    // A transaction keeps its server connection (simple protocol: no
    // statement of its own is prepared).
    let holder = second.begin().await.expect("begin");
    holder.execute_unprepared("SELECT 1").await.expect("select");
    let err = user::Entity::find_by_id(ada.id)
        .one(&first)
        .await
        .expect_err("sqlx_s_1 is not on the new server connection");
    assert_eq!(sqlstate(&err).as_deref(), Some("26000"), "{err}");
    holder.rollback().await.expect("rollback");
}

/// Turning sqlx's statement cache off does not help: each statement is
/// still named `sqlx_s_<n>` from 1 per connection, and left prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_statement_cache_does_not_help() {
    let Some((bouncer, db)) = setup("cluster::pgbouncer::empty_cache").await else {
        return;
    };
    let ada = new_user(&Store::new(connect(db.url(0), 1).await), "Ada").await;
    let url = bouncer.url_of(&db);
    let uncached = async || {
        let mut options = pool::connect_options(&url, &PoolSettings::default().max_connections(1));
        options.map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0));
        sea_orm::Database::connect(options).await.expect("connect")
    };
    let (first, second) = (uncached().await, uncached().await);
    let found = user::Entity::find_by_id(ada.id).one(&first).await;
    assert_eq!(found.expect("the first pool reads"), Some(ada.clone()));
    let err = user::Entity::find_by_id(ada.id)
        .one(&second)
        .await
        .expect_err("sqlx_s_1 exists on the server connection already");
    assert_eq!(sqlstate(&err).as_deref(), Some("42P05"), "{err}");
}

/// A statement time limit travels in the startup packet's `options`, which
/// PgBouncer 1.18 refuses (08P01): the pool does not open, rather than run
/// without its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_timeout_is_refused_at_connect() {
    let Some((bouncer, db)) = setup("cluster::pgbouncer::statement_timeout").await else {
        return;
    };
    let settings = PoolSettings::default().statement_timeout(Some(Duration::from_secs(5)));
    let err = pool::connect(&bouncer.url_of(&db), &settings)
        .await
        .expect_err("PgBouncer refuses the options parameter");
    assert_eq!(sqlstate(&err).as_deref(), Some("08P01"), "{err}");
    assert!(err.to_string().contains("options"), "{err}");
}

/// Adds 1 to group `id`'s `entryYearId` under the version read, in a
/// retried transaction; counts the attempts.
async fn increment(
    store: &Store,
    id: i64,
    attempts: &Arc<AtomicU32>,
) -> Result<group::Model, Error> {
    store
        .transaction(TxOptions::new(), |tx| {
            let attempts = attempts.clone();
            async move {
                attempts.fetch_add(1, Ordering::Relaxed);
                let seen = tx.get::<group::Entity>(id).await?.expect("the counter");
                let next = group::ActiveModel {
                    entry_year_id: Set(Some(seen.entry_year_id.unwrap_or(0) + 1)),
                    ..Default::default()
                };
                tx.update::<group::Entity>(id, seen.lastchange, next).await
            }
        })
        .await
}

/// `url` with its user replaced by `user`.
fn as_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

/// Session pooling, under load: eight tasks over one pool of six
/// connections insert users, batch them through the loader, rename them
/// under their version, and add to a shared counter in retried
/// transactions. Every row is as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_pooling_runs_the_store_under_load() {
    let Some((bouncer, db)) = setup("cluster::pgbouncer::session_pooling").await else {
        return;
    };
    let conn = connect(&as_user(&bouncer.url_of(&db), SESSION_USER), 6).await;
    let counter = new_counter(&Store::new(conn.clone())).await;
    let attempts = Arc::new(AtomicU32::new(0));
    let tasks = (0..8).map(|task| {
        let (conn, attempts) = (conn.clone(), attempts.clone());
        tokio::spawn(async move {
            let store = Store::new(conn.clone());
            let mut ids = Vec::new();
            for i in 0..10 {
                ids.push(new_user(&store, &format!("t{task}-{i}")).await.id);
            }
            // A fresh store: its loader reads the ten in one batch.
            let fresh = Store::new(conn);
            let loaded = fresh
                .loaders()
                .by_id::<user::Entity>()
                .load_many(&ids)
                .await;
            let loaded = loaded.expect("load");
            for (id, row) in ids.iter().zip(&loaded) {
                let row = row.as_ref().expect("loaded");
                let renamed = user::ActiveModel {
                    name: Set(Some(format!("renamed {id}"))),
                    ..Default::default()
                };
                store
                    .update::<user::Entity>(*id, row.lastchange, renamed)
                    .await
                    .expect("rename");
            }
            for _ in 0..5 {
                // A conflict (another task's increment came first) reads again.
                while let Err(err) = increment(&store, counter.id, &attempts).await {
                    assert!(err.as_conflict().is_some(), "{err:?}");
                }
            }
            ids
        })
    });
    let ids: Vec<i64> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("task"))
        .collect();
    // Read back on the primary itself, not through PgBouncer.
    let primary = connect(db.url(0), 2).await;
    let users = user::Entity::find().all(&primary).await.expect("users");
    assert_eq!(users.len(), 80);
    for id in ids {
        let row = users.iter().find(|u| u.id == id).expect("each user");
        assert_eq!(row.name.as_deref(), Some(format!("renamed {id}").as_str()));
    }
    let stored = group::Entity::find_by_id(counter.id)
        .one(&primary)
        .await
        .expect("read")
        .expect("row");
    let attempts = attempts.load(Ordering::Relaxed);
    assert_eq!(stored.entry_year_id, Some(40), "after {attempts} attempts");
}
