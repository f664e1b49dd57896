//! Failover on a real PostgreSQL pair (`scripts/cluster.sh pg-pair`, a
//! throwaway primary and synchronous streaming replica): the primary dies
//! under a write load, the replica is promoted, and a [`Cluster`] whose URL
//! lists both hosts finds the new primary by itself. Writes during the
//! switch fail with a retryable error; none that was acknowledged is lost.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roster::entity::user;
use roster_store::{Cluster, Error, PoolSettings};
use roster_testkit::cluster::pg_cluster;
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait, Statement};

/// The pair's directory; `pg-pair-down` on drop, whatever the test did.
struct Pair {
    dir: tempfile::TempDir,
    primary: u16,
    replica: u16,
}

impl Pair {
    fn start() -> Pair {
        let dir = tempfile::tempdir().expect("tempdir");
        let (primary, replica) = (free_port(), free_port());
        let status = Command::new("bash")
            .arg(script())
            .args(["pg-pair", &dir.path().display().to_string()])
            .args([primary.to_string(), replica.to_string()])
            .status()
            .expect("run scripts/cluster.sh pg-pair");
        assert!(status.success(), "scripts/cluster.sh pg-pair failed");
        Pair {
            dir,
            primary,
            replica,
        }
    }

    fn url(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    /// Stops the primary the hard way (SIGQUIT: immediate shutdown, no
    /// checkpoint), as a crash would.
    fn kill_primary(&self) {
        let pid_file = self.dir.path().join("primary/data/postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
        let pid = pid.lines().next().expect("a pid").trim().to_owned();
        let status = Command::new("kill")
            .args(["-QUIT", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -QUIT {pid}");
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["pg-pair-down", &self.dir.path().display().to_string()])
            .status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

async fn sql(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn scalar_text(db: &DatabaseConnection, sql: &str) -> String {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row");
    row.try_get_by_index(0).expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failover_to_the_promoted_replica_loses_nothing_acknowledged() {
    // The pair is made by the same script as the shared cluster: run where
    // that cluster is expected.
    if pg_cluster("failover").await.is_none() {
        return;
    }
    let pair = Pair::start();
    let primary_admin = Database::connect(Pair::url(pair.primary))
        .await
        .expect("primary");
    // Synchronous replication: a commit is acknowledged once the replica
    // has it, which is what makes "nothing acknowledged is lost" hold.
    sql(
        &primary_admin,
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
    )
    .await;
    sql(&primary_admin, "SELECT pg_reload_conf()").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while scalar_text(
        &primary_admin,
        "SELECT COALESCE(string_agg(sync_state, ','), '') FROM pg_stat_replication",
    )
    .await
        != "sync"
    {
        assert!(
            Instant::now() < deadline,
            "the replica never became synchronous"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = primary_admin.close().await;
    roster_migrations::run(
        &Pair::url(pair.primary),
        roster_migrations::Action::Up { steps: None },
    )
    .await
    .expect("migrate");

    let both = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres",
        pair.primary, pair.replica
    );
    let settings = PoolSettings::default()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(1))
        .replica_check_every(Duration::from_millis(100));
    let cluster = Cluster::connect(&both, &settings).await.expect("cluster");
    assert_eq!(
        cluster.primary_endpoint(),
        format!("127.0.0.1:{}", pair.primary)
    );

    // Four writers insert users one request at a time until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (cluster, stop) = (cluster.clone(), stop.clone());
            let (acknowledged, failures) = (acknowledged.clone(), failures.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let name = format!("w{w}-{i}");
                    let store = cluster.store(None).await.expect("store");
                    let inserted = store
                        .insert::<user::Entity>(user::ActiveModel {
                            name: Set(Some(name.clone())),
                            ..Default::default()
                        })
                        .await;
                    match inserted {
                        Ok(_) => acknowledged
                            .lock()
                            .expect("lock")
                            .push((name, cluster.primary_endpoint())),
                        Err(e) => {
                            // Refused or no connection (nothing written,
                            // retryable), or the connection broke under the
                            // insert (outcome unknown: not acknowledged).
                            let kind = match &e {
                                Error::Unavailable { .. } => "unavailable",
                                Error::Timeout { .. } => "timeout",
                                Error::WriteUnknown { .. } => "unknown",
                                other => panic!("a write during the switch failed with {other:?}"),
                            };
                            assert_eq!(e.is_retryable(), kind == "unavailable", "{e}");
                            failures.lock().expect("lock").push(kind.to_owned());
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = acknowledged.lock().expect("lock").len();
    assert!(before > 0, "no write succeeded before the failover");
    pair.kill_primary();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replica_admin = Database::connect(Pair::url(pair.replica))
        .await
        .expect("replica");
    sql(&replica_admin, "SELECT pg_promote(true, 30)").await;

    let new_primary = format!("127.0.0.1:{}", pair.replica);
    let deadline = Instant::now() + Duration::from_secs(15);
    while cluster.primary_endpoint() != new_primary {
        assert!(
            Instant::now() < deadline,
            "the cluster never found the promoted replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let switched = Instant::now();
    let switched_after = switched.duration_since(killed);
    // Writes go on against the new primary.
    loop {
        let on_new = acknowledged
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, at)| *at == new_primary)
            .count();
        if on_new >= 20 {
            break;
        }
        assert!(
            switched.elapsed() < Duration::from_secs(15),
            "writes did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }

    let acknowledged = acknowledged.lock().expect("lock").clone();
    let failures = failures.lock().expect("lock").clone();
    assert!(
        !failures.is_empty(),
        "the switch went unnoticed: the primary was not killed?"
    );
    let stored: BTreeSet<String> = user::Entity::find()
        .all(&replica_admin)
        .await
        .expect("users on the new primary")
        .into_iter()
        .filter_map(|u| u.name)
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(name, _)| !stored.contains(name))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let count = |kind: &str| failures.iter().filter(|k| *k == kind).count();
    eprintln!(
        "failover: {} writes acknowledged ({before} before the kill), {} failed during the switch \
         ({} unavailable, {} timed out waiting for a connection, {} broken in flight), none lost; \
         writing to the promoted replica {:?} after the kill (promoted 300 ms after it)",
        acknowledged.len(),
        failures.len(),
        count("unavailable"),
        count("timeout"),
        count("unknown"),
        switched_after,
    );
}
