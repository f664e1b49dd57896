//! Bulk upsert on every backend: exact per-chunk counts, chunking under the
//! bind-parameter limit, concurrent writers, failing chunks, version-checked
//! upserts, duplicate keys, and chunks written side by side
//! ([`UpsertOptions::parallel`]) that still commit in order.

use std::time::Duration;

use futures::StreamExt;
use roster::entity::{group, user, users_groups};
use roster::store::{Error, InvalidReason, OnConflict, Refusal, Store, UpsertOptions, bind_limit};
use roster_testkit::{Backend, TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

/// Ids far above what the shared id sequence hands out in a test.
const BASE: i64 = 1_000_000;

fn person(id: i64, tag: &str) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(BASE + id),
        name: Set(Some(format!("{tag}-name"))),
        surname: Set(Some(format!("{tag}-surname"))),
        email: Set(Some(format!("{tag}@example.org"))),
        ..Default::default()
    }
}

async fn users_in(db: &TestDb) -> Vec<user::Model> {
    user::Entity::find()
        .filter(user::Column::Id.gte(BASE))
        .order_by_asc(user::Column::Id)
        .all(db.conn())
        .await
        .expect("read users")
}

async fn mixed_batch_counts_are_exact(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let first = store
        .upsert_all::<user::Entity>((0..3).map(|i| person(i, "old")), OnConflict::Update, None)
        .await
        .expect("first upsert");
    assert_eq!((first.inserted, first.updated, first.ignored), (3, 0, 0));
    let before = users_in(db).await;

    // 3 existing rows and 2 new ones: MySQL's 2 affected rows per update
    // must not leak into the counts.
    let mixed = store
        .upsert_all::<user::Entity>((0..5).map(|i| person(i, "new")), OnConflict::Update, None)
        .await
        .expect("mixed upsert");
    assert_eq!(
        (mixed.inserted, mixed.updated, mixed.ignored, mixed.chunks),
        (2, 3, 0, 1)
    );
    let after = users_in(db).await;
    assert_eq!(after.len(), 5);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(new.name.as_deref(), Some("new-name"));
        assert!(new.lastchange > old.lastchange, "lastchange was bumped");
    }

    // Everything present under Ignore: nothing written, no error.
    let ignored = store
        .upsert_all::<user::Entity>(
            (0..5).map(|i| person(i, "ignored")),
            OnConflict::Ignore,
            None,
        )
        .await
        .expect("ignore upsert");
    assert_eq!(
        (ignored.inserted, ignored.updated, ignored.ignored),
        (0, 0, 5)
    );
    assert_eq!(users_in(db).await, after, "Ignore left the rows alone");
}

async fn a_hundred_thousand_rows_are_chunked_under_the_limit(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let n = 100_000;
    let mut chunks = Vec::new();
    let mut stream = std::pin::pin!(store.upsert_many::<user::Entity>(
        (0..n).map(|i| person(i, "bulk")),
        OnConflict::Update,
        None,
    ));
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.expect("chunk"));
    }
    // 4 columns and lastchange per row.
    let per_chunk = bind_limit(db.conn().get_database_backend()) / 5;
    assert_eq!(chunks.len(), (n as usize).div_ceil(per_chunk));
    let mut next = 0;
    for chunk in &chunks {
        assert_eq!(
            chunk.rows.start, next,
            "the chunks cover the input in order"
        );
        assert!(chunk.rows.len() <= per_chunk);
        assert_eq!(chunk.inserted, chunk.rows.len() as u64);
        next = chunk.rows.end;
    }
    assert_eq!(next, n as usize);
    let stored = user::Entity::find()
        .filter(user::Column::Id.gte(BASE))
        .count(db.conn())
        .await
        .expect("count");
    assert_eq!(stored, n as u64);
}

async fn concurrent_overlapping_upserts_leave_whole_rows(db: &TestDb) {
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = Store::new(db.conn().clone());
            tokio::spawn(async move {
                // Overlapping, in a different order per writer.
                let mut ids: Vec<i64> = (0..300).collect();
                ids.rotate_left(w * 37);
                store
                    .upsert_all::<user::Entity>(
                        ids.into_iter().map(|i| person(i, &format!("w{w}"))),
                        OnConflict::Update,
                        Some(50),
                    )
                    .await
            })
        })
        .collect();
    let mut inserted = 0;
    for writer in writers {
        let totals = writer.await.expect("task").expect("no error");
        assert_eq!(totals.inserted + totals.updated, 300);
        inserted += totals.inserted;
    }
    assert_eq!(inserted, 300, "each row inserted once in all");
    let rows = users_in(db).await;
    assert_eq!(rows.len(), 300, "no duplicate, none missing");
    for row in rows {
        let tag = row.name.as_deref().and_then(|n| n.strip_suffix("-name"));
        let tag = tag.expect("a writer's name");
        assert_eq!(
            row.surname,
            Some(format!("{tag}-surname")),
            "torn row {}",
            row.id
        );
        assert_eq!(
            row.email,
            Some(format!("{tag}@example.org")),
            "torn row {}",
            row.id
        );
    }
}

async fn a_failing_chunk_names_the_row_and_leaves_the_others(db: &TestDb) {
    let one_at_a_time = UpsertOptions::new().chunk(10);
    for options in [one_at_a_time, one_at_a_time.parallel(3)] {
        failing_chunk_case(db, options).await;
        group::Entity::delete_many()
            .filter(group::Column::Id.gte(BASE))
            .exec(db.conn())
            .await
            .expect("clean up");
    }
}

async fn failing_chunk_case(db: &TestDb, options: UpsertOptions) {
    let store = Store::new(db.conn().clone());
    let rows = (0..30).map(|i| group::ActiveModel {
        id: Set(BASE + i),
        name: Set(Some(format!("g{i}"))),
        // Row 15 names a group type that does not exist.
        grouptype_id: Set((i == 15).then_some(BASE * 7)),
        ..Default::default()
    });
    let results: Vec<_> = store
        .upsert_many::<group::Entity>(rows, OnConflict::Update, options)
        .collect()
        .await;
    assert_eq!(results.len(), 3, "{options:?}");
    assert_eq!(results[0].as_ref().expect("chunk 0").inserted, 10);
    match &results[1] {
        Err(Error::BadRow { row, source, .. }) => {
            assert_eq!(*row, 15);
            assert!(
                matches!(
                    **source,
                    Error::Invalid {
                        reason: InvalidReason::UnknownReference,
                        ..
                    }
                ),
                "{source:?}"
            );
        }
        other => panic!("expected BadRow with {options:?}, got {other:?}"),
    }
    assert_eq!(results[2].as_ref().expect("chunk 2").inserted, 10);
    let ids: Vec<i64> = group::Entity::find()
        .filter(group::Column::Id.gte(BASE))
        .order_by_asc(group::Column::Id)
        .all(db.conn())
        .await
        .expect("groups")
        .into_iter()
        .map(|g| g.id - BASE)
        .collect();
    let expected: Vec<i64> = (0..10).chain(20..30).collect();
    assert_eq!(
        ids, expected,
        "the failed chunk wrote nothing ({options:?})"
    );
}

async fn update_if_unchanged_reports_exactly_the_stale_rows(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    store
        .upsert_all::<user::Entity>((0..6).map(|i| person(i, "read")), OnConflict::Update, None)
        .await
        .expect("seed");
    let read = users_in(db).await;
    // Someone else changes rows 1 and 4 after we read them.
    for i in [1, 4] {
        store
            .update::<user::Entity>(read[i].id, read[i].lastchange, super::rename("theirs"))
            .await
            .expect("their update");
    }
    let rows = read.iter().map(|m| user::ActiveModel {
        id: Set(m.id),
        name: Set(Some("mine".into())),
        lastchange: Set(m.lastchange),
        ..Default::default()
    });
    // Plus one new row.
    let new = user::ActiveModel {
        id: Set(BASE + 99),
        name: Set(Some("mine".into())),
        lastchange: Set(read[0].lastchange),
        ..Default::default()
    };
    let totals = store
        .upsert_all::<user::Entity>(rows.chain([new]), OnConflict::UpdateIfUnchanged, None)
        .await
        .expect("upsert");
    assert_eq!((totals.inserted, totals.updated), (1, 4));
    let mut stale: Vec<i64> = totals.conflicts.iter().map(|m| m.id - BASE).collect();
    stale.sort_unstable();
    assert_eq!(stale, vec![1, 4]);
    assert!(
        totals
            .conflicts
            .iter()
            .all(|m| m.name.as_deref() == Some("theirs"))
    );
    let after = users_in(db).await;
    let names: Vec<_> = after
        .iter()
        .map(|m| m.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["mine", "theirs", "mine", "mine", "theirs", "mine", "mine"]
    );
    for (old, new) in read.iter().zip(&after) {
        if new.name.as_deref() == Some("mine") {
            assert!(new.lastchange > old.lastchange);
        }
    }
}

async fn duplicate_keys_in_one_call_the_last_wins(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let rows = [person(1, "first"), person(2, "only"), person(1, "last")];
    let totals = store
        .upsert_all::<user::Entity>(rows, OnConflict::Update, None)
        .await
        .expect("upsert");
    assert_eq!((totals.inserted, totals.superseded), (2, 1));
    let names: Vec<_> = users_in(db).await.into_iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [Some("last-name".to_owned()), Some("only-name".to_owned())]
    );
}

async fn memberships_upsert_on_their_unique_key(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let ada = super::new_user(&store, "Ada").await;
    let counter = super::new_counter(&store).await;
    let link = || users_groups::ActiveModel {
        user_id: Set(ada.id),
        group_id: Set(counter.id),
        ..Default::default()
    };
    let first = store
        .upsert_all::<users_groups::Entity>([link(), link()], OnConflict::Ignore, None)
        .await
        .expect("first");
    assert_eq!((first.inserted, first.superseded), (1, 1));
    let again = store
        .upsert_all::<users_groups::Entity>([link()], OnConflict::Update, None)
        .await
        .expect("again");
    assert_eq!((again.inserted, again.ignored), (0, 1));
    let members = store
        .loaders()
        .related::<group::Entity, user::Entity>()
        .expect("relation")
        .load(counter.id)
        .await
        .expect("load");
    assert_eq!(members.map(|m| m.len()), Some(1));
}

async fn bad_input_is_refused_before_sending(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let mixed = [
        person(1, "a"),
        user::ActiveModel {
            id: Set(BASE + 2),
            ..Default::default()
        },
    ];
    let err = store
        .upsert_all::<user::Entity>(mixed, OnConflict::Update, None)
        .await
        .expect_err("rows setting different columns");
    assert_eq!(
        err.as_refusal(),
        Some(&Refusal::ColumnsDiffer {
            row: 1,
            columns: Box::from(["id"]),
            first: Box::from(["id", "name", "surname", "email"]),
        }),
        "{err:?}"
    );
    let no_key = user::ActiveModel {
        name: Set(Some("x".into())),
        ..Default::default()
    };
    let err = store
        .upsert_all::<user::Entity>([no_key], OnConflict::Update, None)
        .await
        .expect_err("no key");
    assert_eq!(
        err.as_refusal(),
        Some(&Refusal::MissingKey {
            row: 0,
            key: Box::from(["id"])
        }),
        "{err:?}"
    );
    let err = store
        .upsert_all::<user::Entity>([person(1, "a")], OnConflict::UpdateIfUnchanged, None)
        .await
        .expect_err("no version to compare");
    assert_eq!(
        err.as_refusal(),
        Some(&Refusal::MissingVersion { row: 0 }),
        "{err:?}"
    );
    let membership = users_groups::ActiveModel {
        user_id: Set(1),
        group_id: Set(1),
        ..Default::default()
    };
    let err = store
        .upsert_all::<users_groups::Entity>([membership], OnConflict::UpdateIfUnchanged, None)
        .await
        .expect_err("memberships have no version");
    assert_eq!(err.as_refusal(), Some(&Refusal::NotVersioned), "{err:?}");
    let err = store
        .upsert_all::<user::Entity>([person(1, "a")], OnConflict::Update, Some(0))
        .await
        .expect_err("a chunk of no rows");
    assert_eq!(err.as_refusal(), Some(&Refusal::ZeroChunk), "{err:?}");
    assert!(users_in(db).await.is_empty(), "nothing written");
}

async fn a_nul_byte_names_its_row_on_postgres(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let rows = (0..5).map(|i| person(i, if i == 3 { "bad\0" } else { "ok" }));
    let err = store
        .upsert_all::<user::Entity>(rows, OnConflict::Update, None)
        .await
        .expect_err("NUL byte");
    assert!(matches!(err, Error::BadRow { row: 3, .. }), "{err:?}");
    assert!(users_in(db).await.is_empty(), "the chunk wrote nothing");
}

/// PostgreSQL: sessions of this test's database other than the asking
/// one that are inside a transaction, and how many of those are idle in it.
async fn open_transactions(db: &TestDb) -> (i64, i64) {
    let row = db
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            db.db_backend(),
            "SELECT count(*), count(*) FILTER (WHERE state = 'idle in transaction') \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend' AND xact_start IS NOT NULL",
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row");
    (
        row.try_get_by_index(0).expect("count"),
        row.try_get_by_index(1).expect("idle count"),
    )
}

/// Polls `open_transactions` every 20 ms for up to 10 s until `done`
/// holds; the last value seen.
async fn wait_for_transactions(db: &TestDb, done: impl Fn((i64, i64)) -> bool) -> (i64, i64) {
    let mut seen = open_transactions(db).await;
    for _ in 0..500 {
        if done(seen) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = open_transactions(db).await;
    }
    seen
}

async fn parallel_chunks_commit_in_order_when_reported(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    let options = UpsertOptions::new().chunk(10).parallel(3);
    let postgres = db.backend() == Backend::Postgres;
    let mut stream = Box::pin(store.upsert_many::<user::Entity>(
        (0..50).map(|i| person(i, "ahead")),
        OnConflict::Update,
        options,
    ));
    let first = stream.next().await.expect("a report").expect("chunk 0");
    assert_eq!((first.rows.clone(), first.inserted), (0..10, 10));
    if postgres {
        // Chunks 1 and 2 are written ahead, each in its own open
        // transaction, waiting for their turn to commit.
        let seen = wait_for_transactions(db, |(_, idle)| idle == 2).await;
        assert_eq!(seen, (2, 2), "two chunks wait ahead");
    }
    assert_eq!(
        users_in(db).await.len(),
        10,
        "only the reported chunk is committed"
    );
    let second = stream.next().await.expect("a report").expect("chunk 1");
    assert_eq!((second.rows, second.inserted), (10..20, 10));
    assert_eq!(users_in(db).await.len(), 20);

    // Dropping the stream rolls back the chunks that ran ahead.
    drop(stream);
    if postgres {
        let seen = wait_for_transactions(db, |(open, _)| open == 0).await;
        assert_eq!(seen, (0, 0), "no transaction left open");
    }
    assert_eq!(
        users_in(db).await.len(),
        20,
        "nothing after the last report"
    );
    // Their rows are not locked either: the rest goes in at once.
    let rest = tokio::time::timeout(
        Duration::from_secs(10),
        store.upsert_all::<user::Entity>(
            (0..50).map(|i| person(i, "rest")),
            OnConflict::Ignore,
            options,
        ),
    )
    .await
    .expect("no lock left behind")
    .expect("upsert");
    assert_eq!((rest.inserted, rest.ignored, rest.chunks), (30, 20, 5));
    assert_eq!(users_in(db).await.len(), 50);
}

/// A table with a second unique key (`code`) and a foreign key to itself
/// (`parent_id`): what lets a chunk depend on another chunk of the same
/// call.
mod node {
    use roster::entity::StoreEntity;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, StoreEntity)]
    #[sea_orm(table_name = "nodes")]
    #[store(crate = "roster::entity")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub code: String,
        pub parent_id: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Node `i` with the given code and parent.
fn a_node(i: i64, code: &str, parent: Option<i64>) -> node::ActiveModel {
    node::ActiveModel {
        id: Set(i),
        code: Set(code.to_owned()),
        parent_id: Set(parent),
    }
}

/// Creates `nodes` with row 0, and holds row 0 in another transaction, so
/// that chunk 0 of an upsert including row 0 waits while chunk 1 runs
/// ahead. Roll the transaction back to let chunk 0 go on.
async fn nodes_with_row_zero_held(db: &TestDb) -> sea_orm::DatabaseTransaction {
    db.conn()
        .execute_unprepared(
            "CREATE TABLE nodes (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, \
             parent_id bigint REFERENCES nodes (id)); \
             INSERT INTO nodes VALUES (0, 'zero', NULL)",
        )
        .await
        .expect("nodes");
    let blocker = db.conn().begin().await.expect("begin");
    blocker
        .execute_unprepared("SELECT 1 FROM nodes WHERE id = 0 FOR UPDATE")
        .await
        .expect("lock row 0");
    blocker
}

/// Upserts `rows` into `nodes` in chunks of 10, two at a time, in a task.
fn spawn_node_upsert(
    db: &TestDb,
    rows: Vec<node::ActiveModel>,
    options: UpsertOptions,
) -> tokio::task::JoinHandle<Vec<Result<roster::store::ChunkReport<node::Model>, Error>>> {
    let store = Store::new(db.conn().clone());
    tokio::spawn(async move {
        store
            .upsert_many::<node::Entity>(rows, OnConflict::Update, options.chunk(10).parallel(2))
            .collect::<Vec<_>>()
            .await
    })
}

async fn stored_nodes(db: &TestDb) -> Vec<node::Model> {
    node::Entity::find()
        .order_by_asc(node::Column::Id)
        .all(db.conn())
        .await
        .expect("nodes")
}

/// Chunk 0 needs a unique value that chunk 1, running ahead, already took:
/// chunk 0 waits for chunk 1's transaction, which waits for its turn after
/// chunk 0. Chunk 1 gives way after `wait_ahead` (3 s here, so the test can
/// see the cycle) and is written again at its turn, where it fails on the
/// taken value, as it would one chunk at a time.
async fn a_chunk_waiting_on_a_later_chunk_is_not_stuck(db: &TestDb) {
    let blocker = nodes_with_row_zero_held(db).await;
    let rows = (0..20)
        .map(|i| {
            let code = if i == 9 || i == 10 {
                "dup".to_owned()
            } else {
                format!("n{i}")
            };
            a_node(i, &code, None)
        })
        .collect();
    let options = UpsertOptions::new().wait_ahead(Duration::from_secs(3));
    let upsert = spawn_node_upsert(db, rows, options);
    // Release row 0 once the blocker and chunk 1 (done, waiting for its
    // turn) are idle in their transactions and chunk 0 waits for the lock.
    let seen = wait_for_transactions(db, |(open, idle)| open == 3 && idle == 2).await;
    assert_eq!(seen, (3, 2), "chunk 1 ran ahead while chunk 0 waits");
    blocker.rollback().await.expect("release row 0");

    let results = tokio::time::timeout(Duration::from_secs(30), upsert)
        .await
        .expect("the upsert is not stuck")
        .expect("task");
    assert_eq!(results.len(), 2);
    let first = results[0].as_ref().expect("chunk 0 commits");
    assert_eq!((first.inserted, first.updated), (9, 1));
    match &results[1] {
        Err(Error::BadRow {
            row: 10, source, ..
        }) => assert!(
            matches!(
                **source,
                Error::Invalid {
                    reason: InvalidReason::Duplicate,
                    ..
                }
            ),
            "{source:?}"
        ),
        other => panic!("expected row 10 refused as a duplicate, got {other:?}"),
    }
    let stored = stored_nodes(db).await;
    let ids: Vec<i64> = stored.iter().map(|n| n.id).collect();
    assert_eq!(ids, (0..10).collect::<Vec<_>>(), "chunk 1 wrote nothing");
    assert_eq!(stored[9].code, "dup");
}

/// Chunk 1 references a row chunk 0 inserts. Running ahead, before chunk 0
/// has committed, it fails the foreign key; that failure is provisional,
/// and written again at its turn chunk 1 succeeds, as it would one chunk at
/// a time.
async fn a_chunk_that_failed_ahead_is_written_again_at_its_turn(db: &TestDb) {
    let blocker = nodes_with_row_zero_held(db).await;
    let rows = (0..20)
        .map(|i| a_node(i, &format!("n{i}"), (i == 10).then_some(5)))
        .collect();
    let upsert = spawn_node_upsert(db, rows, UpsertOptions::new());
    // Chunk 1 has failed ahead once only the blocker's and chunk 0's
    // transactions are open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = wait_for_transactions(db, |(open, idle)| open == 2 && idle == 1).await;
    assert_eq!(
        seen,
        (2, 1),
        "chunk 0 waits for row 0, chunk 1 is not holding on"
    );
    blocker.rollback().await.expect("release row 0");
    let results = tokio::time::timeout(Duration::from_secs(30), upsert)
        .await
        .expect("not stuck")
        .expect("task");
    let counts: Vec<_> = results
        .into_iter()
        .map(|r| r.map(|c| (c.rows, c.inserted, c.updated)))
        .collect::<Result<_, _>>()
        .expect("both chunks succeed");
    assert_eq!(counts, [(0..10, 9, 1), (10..20, 10, 0)]);
    let stored = stored_nodes(db).await;
    assert_eq!(stored.len(), 20);
    assert_eq!(stored[10].parent_id, Some(5));
}

/// The caller, between two polls, writes a row that a chunk running ahead
/// holds: the chunk gives way after `wait_ahead` instead of holding the
/// caller up until the next poll, and is written again at its turn.
async fn a_caller_writing_between_polls_is_not_stuck(db: &TestDb) {
    let store = Store::new(db.conn().clone());
    store
        .upsert_all::<user::Entity>((0..20).map(|i| person(i, "old")), OnConflict::Update, None)
        .await
        .expect("seed");
    let mut stream = Box::pin(store.upsert_many::<user::Entity>(
        (0..20).map(|i| person(i, "chunk")),
        OnConflict::Update,
        UpsertOptions::new().chunk(10).parallel(2),
    ));
    let first = stream.next().await.expect("a report").expect("chunk 0");
    assert_eq!(first.updated, 10);
    // Chunk 1 (rows 10..20) is written and holds its rows' locks.
    let seen = wait_for_transactions(db, |(_, idle)| idle == 1).await;
    assert_eq!(seen, (1, 1), "chunk 1 waits ahead");
    let theirs = tokio::time::timeout(
        Duration::from_secs(20),
        db.conn().execute_unprepared(&format!(
            "UPDATE users SET name = 'caller' WHERE id = {}",
            BASE + 15
        )),
    )
    .await
    .expect("the caller's write is not held up by a chunk waiting ahead")
    .expect("update");
    assert_eq!(theirs.rows_affected(), 1);
    let second = stream.next().await.expect("a report").expect("chunk 1");
    assert_eq!((second.rows, second.updated), (10..20, 10));
    assert!(stream.next().await.is_none());
    let names: Vec<_> = users_in(db).await.into_iter().map(|u| u.name).collect();
    assert!(
        names.iter().all(|n| n.as_deref() == Some("chunk-name")),
        "chunk 1, written again at its turn, came after the caller's write: {names:?}"
    );
}

/// `parallel` is capped at the pool size minus one: with a pool of 3, one
/// chunk runs ahead, not two.
async fn parallel_is_capped_below_the_pool_size(db: &TestDb) {
    let pool = sea_orm::Database::connect(
        sea_orm::ConnectOptions::new(db.url())
            .max_connections(3)
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .expect("pool of 3");
    let store = Store::new(pool);
    let mut stream = Box::pin(store.upsert_many::<user::Entity>(
        (0..50).map(|i| person(i, "capped")),
        OnConflict::Update,
        UpsertOptions::new().chunk(10).parallel(8),
    ));
    stream.next().await.expect("a report").expect("chunk 0");
    let seen = wait_for_transactions(db, |(_, idle)| idle >= 1).await;
    // Give a second chunk ahead, were there one, the time to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((seen, open_transactions(db).await), ((1, 1), (1, 1)));
    let rest = futures::TryStreamExt::try_collect::<Vec<_>>(stream)
        .await
        .expect("the rest");
    assert_eq!(rest.len(), 4);
    assert_eq!(users_in(db).await.len(), 50);
}

backend_tests!(migrated:
    mixed_batch_counts_are_exact,
    a_hundred_thousand_rows_are_chunked_under_the_limit,
    concurrent_overlapping_upserts_leave_whole_rows,
    a_failing_chunk_names_the_row_and_leaves_the_others,
    update_if_unchanged_reports_exactly_the_stale_rows,
    duplicate_keys_in_one_call_the_last_wins,
    memberships_upsert_on_their_unique_key,
    bad_input_is_refused_before_sending,
    parallel_chunks_commit_in_order_when_reported,
);
backend_tests!(migrated on [postgres]:
    a_nul_byte_names_its_row_on_postgres,
    a_chunk_waiting_on_a_later_chunk_is_not_stuck,
    a_caller_writing_between_polls_is_not_stuck,
    parallel_is_capped_below_the_pool_size,
    a_chunk_that_failed_ahead_is_written_again_at_its_turn,
);
