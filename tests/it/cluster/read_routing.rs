//! Read routing on a real PostgreSQL primary with two streaming replicas,
//! one of them replaying with a delay (`recovery_min_apply_delay`): reads
//! go to a replica and writes to the primary; a request reads its own
//! writes; a commit position makes a later request's reads include the
//! write; a lagging, stopped or failing replica is skipped.

use std::time::{Duration, Instant};

use roster::entity::user;
use roster_store::{Cluster, CommitPosition, PoolSettings, ReadFrom, Store};
use roster_testkit::FaultProxy;
use roster_testkit::cluster::{ClusterDb, pg_cluster};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, ConnectionTrait, Database, Statement};

use crate::graphql::Server;

/// How long a replica may take to get a fresh database (the delayed one
/// replays 5 s late).
const REPLAY: Duration = Duration::from_secs(30);

/// A migrated database on the cluster, present on both replicas, with the
/// node numbers of the streaming replica and the delayed one.
struct Setup {
    db: ClusterDb,
    streaming: usize,
    delayed: usize,
}

async fn setup(test: &str) -> Option<Setup> {
    let cluster = pg_cluster(test).await?;
    let db = cluster.create_db(test).await;
    db.migrate().await;
    let mut streaming = None;
    let mut delayed = None;
    for (i, admin) in cluster.replicas.iter().enumerate() {
        let node = i + 1;
        let conn = Database::connect(admin.as_str()).await.expect("replica");
        let row = conn
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT setting::int8 FROM pg_settings WHERE name = 'recovery_min_apply_delay'",
            ))
            .await
            .expect("delay")
            .expect("a row");
        let delay: i64 = row.try_get_by_index(0).expect("delay");
        let _ = conn.close().await;
        if delay > 0 {
            delayed.get_or_insert(node);
        } else {
            streaming.get_or_insert(node);
        }
    }
    let (streaming, delayed) = (
        streaming.expect("a streaming replica"),
        delayed.expect("a delayed replica"),
    );
    db.wait_for_database_on(streaming, REPLAY).await;
    db.wait_for_database_on(delayed, REPLAY).await;
    db.wait_for_replay_on(streaming, REPLAY).await;
    db.wait_for_replay_on(delayed, REPLAY).await;
    Some(Setup {
        db,
        streaming,
        delayed,
    })
}

/// Pool settings for the tests: quick checks, a wait that leaves a
/// streaming replica time to catch up.
fn settings(replicas: &[&str]) -> PoolSettings {
    PoolSettings::default()
        .max_connections(4)
        .replicas(replicas.iter().copied())
        .replica_check_every(Duration::from_millis(100))
        .replica_max_lag(Duration::from_secs(60))
        .causal_wait(Duration::from_millis(200))
}

fn named(name: &str) -> Condition {
    Condition::all().add(user::Column::Name.eq(name))
}

async fn insert(store: &Store, name: &str) -> user::Model {
    store
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some(name.into())),
            ..Default::default()
        })
        .await
        .expect("insert")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_run_on_the_replica_and_a_request_reads_its_own_writes() {
    let Some(setup) = setup("replica_routing").await else {
        return;
    };
    // The delayed replica shows where a read ran: it is 5 s behind.
    let cluster = Cluster::connect(setup.db.url(0), &settings(&[setup.db.url(setup.delayed)]))
        .await
        .expect("cluster");

    let writer = cluster.store(None).await.expect("store");
    assert!(writer.loaders().route().on_replica());
    let ada = insert(&writer, "Ada").await; // on the primary: the replica is read-only
    // The same request reads the row back with SQL, not the cache: the
    // write pinned its reads to the primary.
    assert!(!writer.loaders().route().on_replica());
    assert_eq!(
        writer
            .filter::<user::Entity>(named("Ada"))
            .await
            .expect("filter")
            .len(),
        1
    );

    // A later request without a position reads the replica, which has not
    // replayed the insert yet.
    let stale = cluster.store(None).await.expect("store");
    assert!(stale.loaders().route().on_replica());
    assert_eq!(
        stale
            .filter::<user::Entity>(named("Ada"))
            .await
            .expect("filter"),
        []
    );
    assert_eq!(stale.get::<user::Entity>(ada.id).await.expect("get"), None);
    assert_eq!(
        stale
            .count::<user::Entity>(named("Ada"))
            .await
            .expect("count"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_commit_position_makes_later_reads_include_the_write() {
    let Some(setup) = setup("replica_causal").await else {
        return;
    };
    let delayed = Cluster::connect(setup.db.url(0), &settings(&[setup.db.url(setup.delayed)]))
        .await
        .expect("cluster");
    let streaming = Cluster::connect(setup.db.url(0), &settings(&[setup.db.url(setup.streaming)]))
        .await
        .expect("cluster");

    let writer = delayed.store(None).await.expect("store");
    let ada = insert(&writer, "Ada").await;
    let position = delayed
        .position()
        .await
        .expect("position")
        .expect("PostgreSQL has one");
    assert!(matches!(position, CommitPosition::Postgres { .. }));
    // The token survives the trip through a client as text.
    let position: CommitPosition = position.to_string().parse().expect("round trip");

    // Without it, the delayed replica answers: the write is missing.
    let without = delayed.read_route(None).await.expect("route");
    assert_eq!(without.from, ReadFrom::Replica(0));
    let store = without.into_store();
    assert_eq!(store.get::<user::Entity>(ada.id).await.expect("get"), None);

    // With it, the delayed replica cannot reach it within the causal wait:
    // the primary answers, after waiting about that long.
    let started = Instant::now();
    let with = delayed.read_route(Some(&position)).await.expect("route");
    let waited = started.elapsed();
    assert_eq!(with.from, ReadFrom::Primary);
    assert!(
        waited >= Duration::from_millis(200),
        "gave up after {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    let store = with.into_store();
    assert_eq!(read_id(&store, ada.id).await, Some(ada.id));

    // A streaming replica gets there within the wait: it answers, with the write.
    let with = streaming.read_route(Some(&position)).await.expect("route");
    assert_eq!(with.from, ReadFrom::Replica(0));
    let store = with.into_store();
    assert_eq!(read_id(&store, ada.id).await, Some(ada.id));

    // A MariaDB position means nothing to a PostgreSQL cluster.
    let gtid: CommitPosition = "gtid:0-1-1".parse().expect("gtid");
    assert!(streaming.read_route(Some(&gtid)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_replica_lagging_beyond_the_allowed_lag_is_skipped() {
    let Some(setup) = setup("replica_lag").await else {
        return;
    };
    let settings = settings(&[setup.db.url(setup.delayed), setup.db.url(setup.streaming)])
        .replica_max_lag(Duration::from_secs(1));
    let cluster = Cluster::connect(setup.db.url(0), &settings)
        .await
        .expect("cluster");
    // Both replicas are caught up (setup waited): both serve reads.
    let mut seen: Vec<ReadFrom> = Vec::new();
    for _ in 0..4 {
        seen.push(cluster.read_route(None).await.expect("route").from);
    }
    assert!(
        seen.contains(&ReadFrom::Replica(0)) && seen.contains(&ReadFrom::Replica(1)),
        "{seen:?}"
    );

    // A write the delayed replica will not replay for 5 s: once it is more
    // than 1 s behind, only the streaming replica serves reads.
    let writer = cluster.store(None).await.expect("store");
    insert(&writer, "Ada").await;
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let status = &cluster.replicas()[0];
        if !status.healthy {
            assert!(
                status.lag.is_some_and(|lag| lag > Duration::from_secs(1)),
                "{status:?}"
            );
            assert!(
                status
                    .problem
                    .as_deref()
                    .is_some_and(|p| p.contains("lags")),
                "{status:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delayed replica was never skipped: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.replicas()[1].healthy, "{:?}", cluster.replicas());
    for _ in 0..6 {
        assert_eq!(
            cluster.read_route(None).await.expect("route").from,
            ReadFrom::Replica(1)
        );
    }
    // When it has replayed the write, it is used again.
    setup.db.wait_for_replay_on(setup.delayed, REPLAY).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while !cluster.replicas()[0].healthy {
        assert!(Instant::now() < deadline, "{:?}", cluster.replicas());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stopped_or_failing_replica_is_skipped_and_reads_keep_working() {
    let Some(setup) = setup("replica_down").await else {
        return;
    };
    let streaming = setup.db.url(setup.streaming);
    let upstream = endpoint_addr(streaming);
    let proxy = FaultProxy::start(upstream).await;
    let proxied = streaming.replace(&upstream.to_string(), &proxy.addr().to_string());
    // A replica nobody listens for: stopped since before the server started.
    let stopped = streaming.replace(&upstream.to_string(), &closed_port());
    let cluster = Cluster::connect(setup.db.url(0), &settings(&[&stopped, &proxied]))
        .await
        .expect("a stopped replica does not stop the cluster from starting");
    let ada = insert(&cluster.store(None).await.expect("store"), "Ada").await;
    setup.db.wait_for_replay_on(setup.streaming, REPLAY).await;
    cluster.check_now().await;
    let status = cluster.replicas();
    assert!(!status[0].healthy && status[1].healthy, "{status:?}");
    for _ in 0..4 {
        assert_eq!(
            cluster.read_route(None).await.expect("route").from,
            ReadFrom::Replica(1)
        );
    }

    // The proxied replica goes away in the middle of a request: its read
    // runs again on the primary, and the replica is skipped at once.
    let store = cluster.store(None).await.expect("store");
    assert!(store.loaders().route().on_replica());
    proxy.refuse();
    proxy.cut();
    let read = store
        .get::<user::Entity>(ada.id)
        .await
        .expect("read from the primary");
    assert_eq!(read.map(|u| u.id), Some(ada.id));
    assert!(!store.loaders().route().on_replica());
    assert!(!cluster.replicas()[1].healthy, "{:?}", cluster.replicas());
    assert_eq!(
        cluster.read_route(None).await.expect("route").from,
        ReadFrom::Primary
    );
    let store = cluster.store(None).await.expect("store");
    assert_eq!(
        store.page::<user::Entity>(0, 10).await.expect("page").len(),
        1
    );

    // Back: the next check finds it well and reads go there again.
    proxy.pass();
    cluster.check_now().await;
    assert!(cluster.replicas()[1].healthy, "{:?}", cluster.replicas());
    assert_eq!(
        cluster.read_route(None).await.expect("route").from,
        ReadFrom::Replica(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_server_hands_out_positions_and_honours_them() {
    let Some(setup) = setup("replica_http").await else {
        return;
    };
    let cluster = Cluster::connect(setup.db.url(0), &settings(&[setup.db.url(setup.delayed)]))
        .await
        .expect("cluster");
    let server = Server::start(roster::server::AppState::with_cluster(
        cluster,
        Default::default(),
    ))
    .await;
    let client = server.client();
    let post = |query: &'static str, after: Option<String>| {
        let mut request = client
            .post(server.url("/graphql"))
            .json(&serde_json::json!({ "query": query }));
        if let Some(after) = after {
            request = request.header("x-roster-after", after);
        }
        request.send()
    };

    let response = post(
        r#"mutation { userInsert(user: { name: "Ada" }) { id } }"#,
        None,
    )
    .await
    .expect("mutation");
    let header = response
        .headers()
        .get("x-roster-position")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a mutation answers with its position");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["extensions"]["consistency"]["position"],
        header.as_str()
    );
    assert!(header.starts_with("pg:"), "{header}");
    let id = body["data"]["userInsert"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // A query does not write: no position.
    let query = r#"{ users(limit: 10) { id } }"#;
    let response = post(query, None).await.expect("query");
    assert!(response.headers().get("x-roster-position").is_none());
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["data"]["users"],
        serde_json::json!([]),
        "the delayed replica answered"
    );
    assert!(body["extensions"]["consistency"].is_null());

    // With the position: the write is there, read from the primary.
    let response = post(query, Some(header.clone())).await.expect("query");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["data"]["users"], serde_json::json!([{ "id": id }]));
    assert_eq!(body["extensions"]["consistency"]["readFrom"], "primary");

    // `/metrics` says where reads went and how the replica is.
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let replica = setup
        .db
        .url(setup.delayed)
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("host:port")
        .to_owned();
    for line in [
        format!("roster_replica_healthy{{replica=\"{replica}\"}} 1"),
        "roster_reads_total{from=\"replica\"} 2".to_owned(),
        "roster_reads_total{from=\"primary\"} 1".to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert!(
        metrics.contains(&format!(
            "roster_replica_lag_seconds{{replica=\"{replica}\"}}"
        )),
        "{metrics}"
    );

    // A position that is not one is refused before anything runs.
    for bad in ["pg:zz", "gtid:0-1-1", &"9".repeat(2000)] {
        let response = post(query, Some(bad.to_owned())).await.expect("query");
        assert_eq!(response.status(), 400, "{bad:.20}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
}

/// `host:port` of a URL's server, as a socket address.
fn endpoint_addr(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    let authority = rest.split(['/', '?']).next().expect("authority");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.parse().expect("host:port of a loopback URL")
}

/// `127.0.0.1:<port>` where nothing listens.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}

/// The id of user `id` as `store` reads it (`None`: not there).
async fn read_id(store: &Store, id: i64) -> Option<i64> {
    let read = store.get::<user::Entity>(id).await.expect("get");
    read.map(|u| u.id)
}
