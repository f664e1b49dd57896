//! The store on a three-node MariaDB Galera cluster, one pool per node, all
//! writing the same rows: optimistic updates stay exact across nodes, and a
//! transaction that loses Galera's certification (MariaDB 1213 at `COMMIT`)
//! is retried like a deadlock.
//!
//! Galera does not lock rows across nodes: two nodes may both update a row
//! and the first to commit wins; the other's `COMMIT` fails certification,
//! or its open transaction is aborted by the winner's replicated write, with
//! error 1213. A store call outside a transaction gives that error back;
//! in [`Store::transaction`] it is retried, and the retry reads the winner's
//! row (or meets it as an [`Error::Conflict`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::join_all;
use roster::entity::{group, user};
use roster::store::{Error, PoolSettings, Store, TxOptions, pool};
use roster_testkit::cluster::{self, ClusterDb};
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::store::{new_counter, new_user, rename};

/// How long a node may take to apply another node's committed write.
const APPLY: Duration = Duration::from_secs(10);

/// A migrated database on the Galera cluster and a pool on each node.
struct Nodes {
    db: ClusterDb,
    pools: Vec<DatabaseConnection>,
}

impl Nodes {
    /// `None` (the test skips) without a Galera cluster.
    async fn new(test: &str) -> Option<Nodes> {
        let galera = cluster::galera(test).await?;
        let db = galera.create_db(test).await;
        db.migrate().await;
        let mut pools = Vec::new();
        for url in db.urls() {
            let settings = PoolSettings::default().max_connections(16);
            pools.push(pool::connect(url, &settings).await.expect("connect"));
        }
        Some(Nodes { db, pools })
    }

    /// A store on node `node` (round robin over the nodes).
    fn store(&self, node: usize) -> Store {
        Store::new(self.pools[node % self.pools.len()].clone())
    }

    /// Waits until every node has applied the write that made `check` true
    /// of group `id`, and returns the row each node holds.
    async fn group_everywhere(
        &self,
        id: i64,
        check: impl Fn(&group::Model) -> bool,
    ) -> Vec<group::Model> {
        let mut rows = Vec::new();
        for (node, conn) in self.pools.iter().enumerate() {
            rows.push(wait_for(conn, id, &check, node).await);
        }
        rows
    }

    async fn close(self) {
        for conn in self.pools {
            let _ = conn.close().await;
        }
        drop(self.db);
    }
}

/// Group `id` as node `node` holds it, once `check` is true of it.
async fn wait_for(
    conn: &DatabaseConnection,
    id: i64,
    check: impl Fn(&group::Model) -> bool,
    node: usize,
) -> group::Model {
    let deadline = tokio::time::Instant::now() + APPLY;
    loop {
        let row = group::Entity::find_by_id(id).one(conn).await.expect("read");
        match row {
            Some(row) if check(&row) => return row,
            row => assert!(
                tokio::time::Instant::now() < deadline,
                "node {node} does not hold the expected group {id} after {APPLY:?}: {row:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 16 writers, spread round robin over the three nodes, each add 1 to a
/// group's `entryYearId` 50 times: read it, then write it back plus one
/// under the version read, in a retried transaction. A version that changed
/// meanwhile (a writer on the same node) is a conflict and the writer reads
/// again; a write that lost certification to another node's (1213) is
/// retried by the transaction. Every node ends at exactly 800.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_writers_on_three_nodes_lose_no_increment() {
    let Some(nodes) = Nodes::new("cluster::galera::sixteen_writers_on_three_nodes").await else {
        return;
    };
    let counter = new_counter(&nodes.store(0)).await;
    nodes.group_everywhere(counter.id, |_| true).await;
    let attempts = Arc::new(AtomicU32::new(0));
    let writers = (0..16).map(|writer| {
        let (store, attempts) = (nodes.store(writer), attempts.clone());
        tokio::spawn(async move {
            let mut conflicts = 0_u32;
            for _ in 0..50 {
                loop {
                    let added = store
                        .transaction(TxOptions::new().max_attempts(100), |tx| {
                            let attempts = attempts.clone();
                            async move {
                                attempts.fetch_add(1, Ordering::Relaxed);
                                let seen = tx.get::<group::Entity>(counter.id).await?;
                                let seen = seen.expect("the counter exists on every node");
                                let next = group::ActiveModel {
                                    entry_year_id: Set(Some(seen.entry_year_id.unwrap_or(0) + 1)),
                                    ..Default::default()
                                };
                                tx.update::<group::Entity>(counter.id, seen.lastchange, next)
                                    .await
                            }
                        })
                        .await;
                    match added {
                        Ok(_) => break,
                        Err(Error::Conflict(_)) => conflicts += 1,
                        Err(other) => panic!("writer {writer}: unexpected error: {other:?}"),
                    }
                }
            }
            conflicts
        })
    });
    let conflicts: u32 = join_all(writers)
        .await
        .into_iter()
        .map(|r| r.expect("writer"))
        .sum();
    // Every attempt that neither committed nor ended in a conflict was a
    // retry after a retryable error (1213 from certification).
    let retries = attempts.load(Ordering::Relaxed) - 800 - conflicts;
    eprintln!("galera: 800 increments over 3 nodes: {conflicts} conflicts, {retries} retries");
    let rows = nodes
        .group_everywhere(counter.id, |row| row.entry_year_id >= Some(800))
        .await;
    for (node, row) in rows.iter().enumerate() {
        assert_eq!(
            row.entry_year_id,
            Some(800),
            "node {node} after {conflicts} conflicts and {retries} retries"
        );
        assert_eq!(row, &rows[0], "node {node} holds what node 0 holds");
    }
    nodes.close().await;
}

/// 32 writers over the three nodes, all with the same (soon stale) version
/// of one user: exactly one wins; the 31 others get [`Error::Conflict`]
/// with the winner's row, whether they met the new version on their node
/// or lost certification to it first and were retried. Every node ends
/// with the winner's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_racers_on_three_nodes_one_wins() {
    let Some(nodes) = Nodes::new("cluster::galera::thirty_two_racers").await else {
        return;
    };
    let row = contested_row(&nodes).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let attempts = Arc::new(AtomicU32::new(0));
    let racers = (0..32).map(|i| {
        let (store, barrier, attempts, row) = (
            nodes.store(i),
            barrier.clone(),
            attempts.clone(),
            row.clone(),
        );
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .transaction(TxOptions::new().max_attempts(100), |tx| {
                    let (attempts, row) = (attempts.clone(), row.clone());
                    async move {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        tx.update::<user::Entity>(
                            row.id,
                            row.lastchange,
                            rename(&format!("racer {i}")),
                        )
                        .await
                    }
                })
                .await
        })
    });
    let results: Vec<_> = join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("racer"))
        .collect();
    let retries = attempts.load(Ordering::Relaxed) - 32;
    eprintln!("galera: 32 racers over 3 nodes: {retries} retries");
    assert_one_winner(&nodes, &row, &results).await;
    nodes.close().await;
}

/// A user every node has, for the racers to fight over.
async fn contested_row(nodes: &Nodes) -> user::Model {
    let row = new_user(&nodes.store(0), "start").await;
    for conn in &nodes.pools {
        wait_for_user(conn, row.id, |stored| stored == &row).await;
    }
    row
}

/// Of racers that all updated `row` with its version: exactly one won;
/// every other got a conflict showing the winner's row; every node ends
/// with the winner's row.
async fn assert_one_winner(
    nodes: &Nodes,
    row: &user::Model,
    results: &[Result<user::Model, Error>],
) {
    let winners: Vec<&user::Model> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one racer wins: {results:?}");
    let winner = winners[0];
    for result in results {
        match result {
            Ok(_) => {}
            Err(Error::Conflict(conflict)) => {
                assert_eq!(conflict.current::<user::Model>(), Some(winner));
                assert_eq!(conflict.expected, row.lastchange);
            }
            Err(other) => panic!("expected a conflict, got {other:?}"),
        }
    }
    for conn in &nodes.pools {
        let stored =
            wait_for_user(conn, row.id, |stored| stored.lastchange != row.lastchange).await;
        assert_eq!(&stored, winner, "every node stores the winner's row");
    }
}

/// User `id` on `conn`, once `check` is true of it.
async fn wait_for_user(
    conn: &DatabaseConnection,
    id: i64,
    check: impl Fn(&user::Model) -> bool,
) -> user::Model {
    let deadline = tokio::time::Instant::now() + APPLY;
    loop {
        let row = user::Entity::find_by_id(id).one(conn).await.expect("read");
        if let Some(row) = row
            && check(&row)
        {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "user {id} not as expected after {APPLY:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Transaction A on node 0 adds 1 to a counter (read, then write under the
/// version read) and, before it commits, B on node 1 sets the same counter
/// to 100 and commits. B's write reaches node 0 while A still holds its
/// row: A loses certification, and its `COMMIT` fails with 1213. Returns
/// A's outcome, how many times its closure ran, and the row as node 0
/// holds it afterwards.
async fn lose_certification_once(
    nodes: &Nodes,
    max_attempts: u32,
) -> (Result<group::Model, Error>, u32, group::Model) {
    let counter = new_counter(&nodes.store(0)).await;
    nodes.group_everywhere(counter.id, |_| true).await;
    let (a, b) = (nodes.store(0), nodes.store(1));
    let node0 = nodes.pools[0].clone();
    let attempts = Arc::new(AtomicU32::new(0));
    let outcome = a
        .transaction(TxOptions::new().max_attempts(max_attempts), |tx| {
            let (b, node0, attempts) = (b.clone(), node0.clone(), attempts.clone());
            async move {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                let seen = tx.get::<group::Entity>(counter.id).await?.expect("counter");
                let next = group::ActiveModel {
                    entry_year_id: Set(Some(seen.entry_year_id.unwrap_or(0) + 1)),
                    ..Default::default()
                };
                let written = tx
                    .update::<group::Entity>(counter.id, seen.lastchange, next)
                    .await?;
                if attempt == 1 {
                    // B, on node 1, where A holds no lock: it commits.
                    let hundred = group::ActiveModel {
                        entry_year_id: Set(Some(100)),
                        ..Default::default()
                    };
                    b.update::<group::Entity>(counter.id, counter.lastchange, hundred)
                        .await
                        .expect("B commits on node 1");
                    // Node 0 applies B's write (aborting A to do so).
                    wait_for(&node0, counter.id, |row| row.entry_year_id == Some(100), 0).await;
                }
                Ok(written)
            }
        })
        .await;
    let attempts = attempts.load(Ordering::SeqCst);
    let stored = group::Entity::find_by_id(counter.id)
        .one(&nodes.pools[0])
        .await
        .expect("read")
        .expect("row");
    (outcome, attempts, stored)
}

/// Without retries, the certification failure reaches the caller as the
/// retryable MariaDB 1213, and B's value stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certification_failure_is_a_retryable_1213() {
    let Some(nodes) = Nodes::new("cluster::galera::certification_failure").await else {
        return;
    };
    let (outcome, attempts, stored) = lose_certification_once(&nodes, 1).await;
    let err = outcome.expect_err("A loses certification");
    assert_eq!(err.code(), Some("1213"), "{err:?}");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(attempts, 1);
    assert_eq!(
        stored.entry_year_id,
        Some(100),
        "B's write stays, A's is gone"
    );
    nodes.close().await;
}

/// With retries, the transaction runs again after losing certification,
/// reads B's 100 and commits 101, on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_lost_certification_is_retried() {
    let Some(nodes) = Nodes::new("cluster::galera::certification_retried").await else {
        return;
    };
    let (outcome, attempts, _) = lose_certification_once(&nodes, 8).await;
    let written = outcome.expect("A commits on its second attempt");
    assert_eq!(attempts, 2, "one retry after the certification failure");
    assert_eq!(written.entry_year_id, Some(101));
    let rows = nodes
        .group_everywhere(written.id, |row| row.entry_year_id == Some(101))
        .await;
    assert!(rows.iter().all(|row| row == &written), "{rows:?}");
    nodes.close().await;
}

/// MariaDB commit positions: a write through node 1 answers with a GTID
/// position; with nodes 2 and 3 as read replicas, a later request given the
/// position reads from a node that has applied the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gtid_position_routes_reads_to_a_node_that_has_the_write() {
    use roster::store::{Cluster, CommitPosition, ReadFrom};

    let Some(galera) = cluster::galera("galera_position").await else {
        return;
    };
    let db = galera.create_db("galera_position").await;
    db.migrate().await;
    let settings = PoolSettings::default()
        .replicas([db.url(1), db.url(2)])
        .replica_check_every(Duration::from_millis(100))
        .causal_wait(Duration::from_secs(2));
    let cluster = Cluster::connect(db.url(0), &settings)
        .await
        .expect("cluster");
    let status = cluster.replicas();
    assert!(status.iter().all(|r| r.healthy), "{status:?}");

    let writer = cluster.store(None).await.expect("store");
    let ada = writer
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some("Ada".into())),
            ..Default::default()
        })
        .await
        .expect("insert");
    let position = cluster
        .position()
        .await
        .expect("position")
        .expect("a binary log: a GTID position");
    assert!(matches!(position, CommitPosition::Gtid(_)), "{position}");
    let position: CommitPosition = position.to_string().parse().expect("round trip");

    let target = cluster.read_route(Some(&position)).await.expect("route");
    assert!(
        matches!(target.from, ReadFrom::Replica(_)),
        "{:?}",
        target.from
    );
    let reader = target.into_store();
    let read = reader.get::<user::Entity>(ada.id).await.expect("read");
    assert_eq!(read.map(|u| u.id), Some(ada.id));
    // A PostgreSQL position means nothing here.
    let lsn: CommitPosition = "pg:1:0/1".parse().expect("lsn");
    assert!(cluster.read_route(Some(&lsn)).await.is_err());
}

/// The same race with plain `update`s, as the GraphQL mutations make them
/// (no transaction): a write that lost certification was rolled back, so
/// the store runs it again, and it meets the winner's row as a conflict.
/// Exactly one winner, 31 [`Error::Conflict`]s, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_plain_updates_on_three_nodes_one_wins() {
    let Some(nodes) = Nodes::new("cluster::galera::plain_racers").await else {
        return;
    };
    let row = contested_row(&nodes).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let racers = (0..32).map(|i| {
        let (store, barrier, row) = (nodes.store(i), barrier.clone(), row.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .update::<user::Entity>(row.id, row.lastchange, rename(&format!("racer {i}")))
                .await
        })
    });
    let results: Vec<_> = join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("racer"))
        .collect();
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Err(Error::Conflict(_))))
            .count(),
        31,
        "{results:?}"
    );
    assert_one_winner(&nodes, &row, &results).await;
    nodes.close().await;
}
