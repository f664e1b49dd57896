//! The workloads. Each request runs in a spawned task (as a server runs a
//! request) with a fresh [`Session`]; requests of one measurement run one
//! after another over the same pool.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::contenders::{Contender, Session};
use crate::dataset::Conn;

/// What a workload measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// 1,000 concurrent distinct loads per request.
    Burst1000,
    /// 999 concurrent distinct loads per request.
    Burst999,
    /// 5,000 loads awaited one by one.
    Sequential,
    /// 1,000 concurrent loads over 100 distinct ids.
    Duplicates,
}

impl Workload {
    pub const ALL: [Workload; 4] = [
        Workload::Burst1000,
        Workload::Burst999,
        Workload::Sequential,
        Workload::Duplicates,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Burst1000 => "burst 1000",
            Workload::Burst999 => "burst 999",
            Workload::Sequential => "sequential",
            Workload::Duplicates => "duplicates",
        }
    }

    /// The unit of the headline figure.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::Burst1000 | Workload::Burst999 => "rows/s",
            Workload::Sequential => "p50 µs/load",
            Workload::Duplicates => "loads/s",
        }
    }

    /// Whether a higher headline figure is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Workload::Sequential)
    }
}

/// One measurement of one contender on one workload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// rows/s, loads/s, or p50 µs per load.
    pub value: f64,
    /// p99 µs per load (sequential only).
    pub p99: Option<f64>,
    /// SQL statements per request.
    pub statements: f64,
}

/// Sizes of a workload.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Requests per burst/duplicates measurement.
    pub requests: usize,
    /// Loads of the sequential request.
    pub sequential: usize,
}

/// The id sets of `requests` requests of `loads` loads each: distinct ids
/// when `distinct` is `loads`, else `loads` loads over `distinct` ids.
pub fn id_sets(
    user_ids: &[i64],
    requests: usize,
    loads: usize,
    distinct: usize,
    seed: u64,
) -> Vec<Vec<i64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..requests)
        .map(|_| {
            let mut picked = user_ids.to_vec();
            picked.shuffle(&mut rng);
            picked.truncate(distinct);
            let mut set: Vec<i64> = picked.iter().copied().cycle().take(loads).collect();
            set.shuffle(&mut rng);
            set
        })
        .collect()
}

/// Runs one request of `ids` (all issued concurrently) and returns how
/// many rows it found.
async fn one_request(contender: Contender, conn: &Conn, ids: &[i64]) -> Result<usize> {
    let conn = conn.clone();
    let ids = ids.to_vec();
    tokio::spawn(async move {
        let session = Session::new(contender, &conn);
        session.load_all(&ids).await
    })
    .await
    .context("request task")?
}

/// Burst or duplicates: requests one after another. The figure is loads per
/// second of the median request (every load of these sets finds its row, so
/// loads/s = rows/s): the median, not the total, so that a neighbour's burst
/// of CPU use on a shared machine does not decide the result.
pub async fn throughput(contender: Contender, conn: &Conn, sets: &[Vec<i64>]) -> Result<Sample> {
    // Warm-up: prepares statements on the pool's connections.
    one_request(contender, conn, &sets[0]).await?;
    let before = conn.statements.get();
    let trace = std::env::var_os("ROSTER_BENCH_TRACE").is_some();
    let mut rates = Vec::with_capacity(sets.len());
    for ids in sets {
        let started = Instant::now();
        let found = one_request(contender, conn, ids).await?;
        let elapsed = started.elapsed();
        if trace {
            eprintln!("  {} request: {elapsed:?}", contender.name());
        }
        anyhow::ensure!(
            found == ids.len(),
            "{}: {found} of {} rows",
            contender.name(),
            ids.len()
        );
        rates.push(found as f64 / elapsed.as_secs_f64());
    }
    let statements = conn.statements.get() - before;
    Ok(Sample {
        value: crate::report::median(rates),
        p99: None,
        statements: statements as f64 / sets.len() as f64,
    })
}

/// Sequential: one request awaiting each load before the next.
pub async fn sequential(contender: Contender, conn: &Conn, ids: &[i64]) -> Result<Sample> {
    let task_conn = conn.clone();
    let ids = ids.to_vec();
    let before = conn.statements.get();
    let mut latencies = tokio::spawn(async move {
        let warm = Session::new(contender, &task_conn);
        for &id in ids.iter().rev().take(20) {
            warm.load(id).await?;
        }
        let session = Session::new(contender, &task_conn);
        let mut latencies = Vec::with_capacity(ids.len());
        for &id in &ids {
            let started = Instant::now();
            let found = session.load(id).await?;
            latencies.push(started.elapsed());
            anyhow::ensure!(found, "{}: no row for {id}", contender.name());
        }
        Ok::<_, anyhow::Error>(latencies)
    })
    .await
    .context("request task")??;
    let statements = conn.statements.get() - before;
    latencies.sort();
    Ok(Sample {
        value: micros(percentile(&latencies, 0.50)),
        p99: Some(micros(percentile(&latencies, 0.99))),
        statements: statements.saturating_sub(20) as f64,
    })
}

/// Peak heap growth during one burst request, per loaded row. Measured
/// alone (nothing else runs), with the counting global allocator.
pub async fn bytes_per_row(contender: Contender, conn: &Conn, ids: &[i64]) -> Result<f64> {
    one_request(contender, conn, ids).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let baseline = crate::PEAK.current_usage();
    crate::PEAK.reset_peak_usage();
    let rows = one_request(contender, conn, ids).await?;
    let peak = crate::PEAK.peak_usage();
    Ok(peak.saturating_sub(baseline) as f64 / rows.max(1) as f64)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The GraphQL fan-out query of the GraphQL issue: groups, each group's type
/// and users, and each user's groups.
/// Each user has 5 groups and a group ~100 members in the bench's data.
pub const FAN_OUT_QUERY: &str =
    "{ groups(limit: 50) { groupType { name } users(limit: 100) { groups(limit: 5) { name } } } }";
/// Its loader levels: the page of groups, then `groupType` and `users` (one
/// loader each), then the users' `groups`.
pub const FAN_OUT_LEVELS: f64 = 4.0;
/// The same fan-out through cursor connections (the same rows, plus
/// `pageInfo` at each level).
pub const FAN_OUT_CONNECTION_QUERY: &str = "{ groupsConnection(first: 50) { nodes { groupType { name } \
     usersConnection(first: 100) { pageInfo { hasNextPage } nodes { groupsConnection(first: 5) { \
     nodes { name } } } } } } }";

/// Fan-out: the nested query through Roster's schema, in-process, one fresh
/// loader set per request (as the server makes them). The figure is
/// requests per second of the median request.
pub async fn fan_out(conn: &Conn, requests: usize, query: &'static str) -> Result<Sample> {
    let schema = roster::graphql::schema();
    let metrics = std::sync::Arc::new(roster::loader::LoaderMetrics::new());
    let one = || {
        let schema = schema.clone();
        let metrics = metrics.clone();
        let db = conn.db.clone();
        tokio::spawn(async move {
            let loaders = roster::graphql::request_loaders(&db, &metrics);
            let request =
                roster::graphql::request_data(async_graphql::Request::new(query), &loaders, &db);
            let response = schema.execute(request).await;
            anyhow::ensure!(response.errors.is_empty(), "fan-out: {:?}", response.errors);
            Ok::<_, anyhow::Error>(())
        })
    };
    one().await.context("request task")??;
    let before = conn.statements.get();
    let mut rates = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        one().await.context("request task")??;
        rates.push(1.0 / started.elapsed().as_secs_f64());
    }
    let statements = conn.statements.get() - before;
    Ok(Sample {
        value: crate::report::median(rates),
        p99: None,
        statements: statements as f64 / requests as f64,
    })
}
