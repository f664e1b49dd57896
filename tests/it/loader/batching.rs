//! Coalescing, deduplication, caching and statement counts.

use std::collections::HashSet;

use futures::future::join_all;
use roster::entity::user;
use roster::loader::{EntitySource, Loader, LoaderOptions, sql::MAX_IN_LIST};
use roster_testkit::{Backend, TestDb, backend_tests};
use sea_orm::ColumnTrait;

use super::{users, users_with};
use crate::fixtures;

async fn thousand_concurrent_loads_make_one_statement(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=1000).await;
    let (conn, log) = db.logged_conn().await;
    let loader = users(&conn);
    let loaded = join_all((1..=1000).map(|id| loader.load(id))).await;
    for (id, result) in (1..=1000).zip(loaded) {
        let user = result.expect("load").expect("present");
        assert_eq!(
            (user.id, user.name.clone()),
            (id, Some(format!("user {id}")))
        );
    }
    // 1,000 ids fit one `= ANY($1)` and one padded IN list (1,024 <= 4,096).
    assert_eq!(log.selects(), 1, "{:?}", log.all());
    let metrics = loader.metrics().snapshot();
    assert_eq!((metrics.batches, metrics.statements), (1, 1));
}

async fn thousand_loads_of_hundred_ids_make_one_batch_of_hundred(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=100).await;
    let (conn, log) = db.logged_conn().await;
    let loader = users(&conn);
    let ids: Vec<i64> = (0..1000).map(|i| i % 100 + 1).collect();
    let loaded = join_all(ids.iter().map(|&id| loader.load(id))).await;
    for (&id, result) in ids.iter().zip(loaded) {
        assert_eq!(result.expect("load").map(|u| u.id), Some(id));
    }
    assert_eq!(log.selects(), 1);
    let metrics = loader.metrics().snapshot();
    assert_eq!(metrics.batches, 1);
    assert_eq!(metrics.batch_size.sum, 100, "one batch of 100 distinct ids");
    assert_eq!(metrics.deduplicated, 900);
}

/// Loads ids 1..=500 from 500 separately spawned tasks; returns the number
/// of statements issued.
async fn spawned_loads(db: &TestDb) -> usize {
    fixtures::seed_users(db.conn(), 1..=500).await;
    let (conn, log) = db.logged_conn().await;
    let loader = users(&conn);
    let tasks: Vec<_> = (1..=500)
        .map(|id| {
            let loader = loader.clone();
            tokio::spawn(async move { loader.load(id).await })
        })
        .collect();
    for (id, task) in (1..=500).zip(tasks) {
        let user = task.await.expect("task").expect("load");
        assert_eq!(user.map(|u| u.id), Some(id));
    }
    log.selects()
}

async fn spawned_tasks_coalesce_exactly_on_one_thread(db: &TestDb) {
    assert_eq!(spawned_loads(db).await, 1);
}

/// Separately spawned tasks on two workers start at independent moments:
/// coalescing them is best-effort (one to three statements on a quiet
/// machine; a machine busy with other processes has shown more than 25,
/// when the spawning task is descheduled mid-way), never one statement per
/// task: at least five loads per statement on average.
async fn spawned_tasks_mostly_coalesce_on_two_workers(db: &TestDb) {
    let statements = spawned_loads(db).await;
    assert!(
        statements <= 100,
        "{statements} statements for 500 spawned loads"
    );
}

async fn sequential_loads_without_cache_issue_one_statement_each(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=10).await;
    let (conn, log) = db.logged_conn().await;
    let loader = users_with(&conn, LoaderOptions::new().cache_enabled(false));
    for round in 0..3 {
        for id in 1..=10 {
            let user = loader.load(id).await.expect("load");
            assert_eq!(user.map(|u| u.id), Some(id), "round {round}");
        }
    }
    assert_eq!(log.selects(), 30);
}

async fn cached_ids_and_misses_are_not_asked_again(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=3).await;
    let (conn, log) = db.logged_conn().await;
    let loader = users(&conn);
    for _ in 0..5 {
        assert!(loader.load(1).await.expect("load").is_some());
        assert!(loader.load(404).await.expect("load").is_none());
    }
    assert_eq!(log.selects(), 2, "one per id, the miss included");
    assert_eq!(loader.load_many(&[1, 404]).await.expect("load").len(), 2);
    assert_eq!(log.selects(), 2);
    let metrics = loader.metrics().snapshot();
    assert_eq!(metrics.loads, 12);
    assert_eq!(metrics.cache_hits, 10);
}

async fn odd_ids_load_as_none(db: &TestDb) {
    fixtures::seed_users(db.conn(), [1, i64::MAX]).await;
    let (conn, log) = db.logged_conn().await;
    let loader = users(&conn);
    let ids = [-1, 0, i64::MIN, i64::MAX, 1, 2, -1];
    let loaded = loader.load_many(&ids).await.expect("load_many");
    let found: Vec<Option<i64>> = loaded.iter().map(|u| u.as_ref().map(|u| u.id)).collect();
    assert_eq!(
        found,
        [None, None, None, Some(i64::MAX), Some(1), None, None]
    );
    assert_eq!(log.selects(), 1);

    assert!(loader.load_many(&[]).await.expect("empty").is_empty());
    assert_eq!(log.selects(), 1, "an empty load_many issues nothing");
}

async fn hundred_thousand_ids_are_split_and_kept_in_order(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=1000).await;
    let (conn, log) = db.logged_conn().await;
    let loader = users(&conn);
    // Descending, so input order differs from any database order.
    let ids: Vec<i64> = (1..=100_000).rev().collect();
    let loaded = loader.load_many(&ids).await.expect("load_many");
    assert_eq!(loaded.len(), ids.len());
    for (&id, user) in ids.iter().zip(&loaded) {
        let expected = (id <= 1000).then_some(id);
        assert_eq!(user.as_ref().map(|u| u.id), expected);
    }
    // Ten batches of the default 10,000 ids; each is one `= ANY($1)` on
    // PostgreSQL and three IN lists (4,096 + 4,096 + 1,808) elsewhere.
    let batches = 100_000 / roster::loader::DEFAULT_MAX_BATCH;
    let per_batch = match db.backend() {
        Backend::Postgres => 1,
        _ => roster::loader::DEFAULT_MAX_BATCH.div_ceil(MAX_IN_LIST),
    };
    assert_eq!(log.selects(), batches * per_batch);
    assert_eq!(loader.metrics().snapshot().batches, batches as u64);
}

async fn statement_text_is_stable_across_batch_sizes(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=64).await;
    let (conn, log) = db.logged_conn().await;
    for n in 1..=64 {
        let loader = users(&conn);
        let ids: Vec<i64> = (1..=n).collect();
        let loaded = loader.load_many(&ids).await.expect("load_many");
        assert!(loaded.iter().all(Option::is_some));
    }
    let texts: HashSet<String> = log.all().into_iter().collect();
    let expected = match db.backend() {
        Backend::Postgres => 1,
        _ => 7, // IN lists of 1, 2, 4, 8, 16, 32 and 64
    };
    assert_eq!(texts.len(), expected, "{texts:#?}");
}

async fn prime_and_clear_control_the_cache(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=2).await;
    let (conn, log) = db.logged_conn().await;
    let loader = users(&conn);
    let mut written = fixtures::owned(loader.load(1).await.expect("load")).expect("present");
    written.name = Some("renamed in this request".into());
    loader.prime(1, Some(std::sync::Arc::new(written.clone())));
    assert_eq!(
        fixtures::owned(loader.load(1).await.expect("load")),
        Some(written)
    );
    assert_eq!(log.selects(), 1);

    loader.clear(&1);
    let fresh = loader.load(1).await.expect("load").expect("present");
    assert_eq!(
        fresh.name.as_deref(),
        Some("user 1"),
        "cleared: read from the database"
    );
    assert_eq!(log.selects(), 2);

    loader.prime(2, None);
    assert_eq!(
        loader.load(2).await.expect("load"),
        None,
        "primed as deleted"
    );
    loader.clear_all();
    assert!(loader.load(2).await.expect("load").is_some());
    assert_eq!(log.selects(), 3);
}

async fn a_source_filter_hides_rows(db: &TestDb) {
    fixtures::seed_users(db.conn(), 1..=3).await;
    // A request that may only see users whose name is not "user 2".
    let visible = sea_orm::Condition::all().add(user::Column::Name.ne("user 2"));
    let loader =
        Loader::new(EntitySource::<user::Entity>::new(db.conn().clone()).with_filter(visible));
    let loaded = loader.load_many(&[1, 2, 3]).await.expect("load_many");
    let found: Vec<Option<i64>> = loaded.iter().map(|u| u.as_ref().map(|u| u.id)).collect();
    assert_eq!(found, [Some(1), None, Some(3)]);
}

backend_tests!(
    migrated: thousand_concurrent_loads_make_one_statement,
    thousand_loads_of_hundred_ids_make_one_batch_of_hundred,
    sequential_loads_without_cache_issue_one_statement_each,
    cached_ids_and_misses_are_not_asked_again,
    odd_ids_load_as_none,
    hundred_thousand_ids_are_split_and_kept_in_order,
    statement_text_is_stable_across_batch_sizes,
    prime_and_clear_control_the_cache,
    a_source_filter_hides_rows,
);
backend_tests!(migrated: spawned_tasks_mostly_coalesce_on_two_workers);
backend_tests!(current_thread migrated: spawned_tasks_coalesce_exactly_on_one_thread);
