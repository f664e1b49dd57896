//! The GraphQL server under load (issue 8): `cargo bench --bench load`.
//!
//! Starts the server in a child process (this binary with `--serve`) on a
//! fresh database, drives it with `--clients` concurrent HTTP clients for
//! `--seconds` (a mix of nested reads, updates with a fresh or a stale
//! `lastchange`, inserts and memberships: see `driver.rs`), then checks the
//! database against every answer and writes `benches/LOAD.md`: throughput,
//! latency p50/p99 per kind, errors by code, the server's memory before and
//! after.
//!
//! ```text
//! cargo bench --bench load -- [--backend postgres|mysql|sqlite|pg-cluster] [--seconds 60]
//!                               [--clients 64] [--servers 1[,2,…]] [--reads-only] [--no-write]
//!                               [--auth]
//! ```
//! `--auth` runs the server with `ROSTER_AUTH=jwt` (HS256) and every request
//! carries a bearer token, which the server checks; the report then goes
//! to `benches/LOAD-AUTH.md`, beside the run without it in `LOAD.md`.
//! PostgreSQL and MariaDB are reached through `ROSTER_TEST_POSTGRES` /
//! `ROSTER_TEST_MYSQL` (admin URLs, defaults as in the tests); the run uses a
//! database `roster_load` there, dropped and created afresh.
//!
//! Scale-out: `--servers N` starts N server processes on the one database
//! (stateless servers side by side), and client `k` talks to server
//! `k % N`; a list (`--servers 1,2`) runs each count in turn, each on a
//! fresh database. `--backend pg-cluster` puts the database on a PostgreSQL
//! primary and gives every server its streaming replica to read from
//! (`ROSTER_TEST_PG_REPLICA`: the primary's and the replica's admin URLs,
//! first and second; see `cluster.rs`); the load starts once the replica has
//! replayed the seeded data. These runs write one table, a row per server
//! count, to `benches/LOAD-CLUSTER.md` (pg-cluster) or
//! `benches/LOAD-SERVERS.md` (another backend); see `scale.rs`.

mod cluster;
mod driver;
mod scale;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use roster::server::{self, Config};
use sea_orm::{ConnectionTrait, Database};

struct Args {
    backend: String,
    seconds: u64,
    clients: usize,
    write: bool,
    reads_only: bool,
    auth: bool,
    /// Server counts to run, one after the other (`--servers 1,2`).
    servers: Vec<usize>,
    /// Child mode: the server to run on this database URL.
    serve: Option<String>,
    /// Child mode: read replicas of that database.
    replicas: Vec<String>,
}

impl Args {
    /// Whether this is a scale-out run (a table of server counts) rather
    /// than the single-server report of `LOAD.md` / `LOAD-AUTH.md`.
    fn scale_out(&self) -> bool {
        self.backend == "pg-cluster" || self.servers != [1]
    }
}

/// The HS256 secret of `--auth` runs (a benchmark's, protecting nothing).
const BENCH_SECRET: &str = "roster-load-benchmark-secret-0123456789";

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        backend: "postgres".into(),
        seconds: 60,
        clients: 64,
        write: true,
        reads_only: false,
        auth: false,
        servers: vec![1],
        serve: None,
        replicas: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().context("a value after the flag");
        match arg.as_str() {
            "--backend" => args.backend = value()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--clients" => args.clients = value()?.parse()?,
            "--no-write" => args.write = false,
            "--reads-only" => args.reads_only = true,
            "--auth" => args.auth = true,
            "--servers" => args.servers = server_counts(&value()?)?,
            "--serve" => args.serve = Some(value()?),
            "--replica" => args.replicas.push(value()?),
            // Passed by `cargo bench`.
            "--bench" => {}
            other => bail!(
                "unknown argument {other}; use --backend postgres|mysql|sqlite|pg-cluster, \
                 --seconds N, --clients N, --servers N[,N…], --reads-only, --no-write, --auth"
            ),
        }
    }
    Ok(args)
}

/// `1,2,4`: server counts, each at least 1.
fn server_counts(list: &str) -> anyhow::Result<Vec<usize>> {
    let counts = list
        .split(',')
        .map(|n| match n.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("--servers takes counts of at least 1, like 1,2; got {n:?}"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(counts)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let runtime = tokio::runtime::Runtime::new()?;
    match &args.serve {
        Some(url) => runtime.block_on(serve(url, args.auth, &args.replicas)),
        None => runtime.block_on(bench(&args)),
    }
}

/// Child mode: prepare (migrate, seed) and serve on an ephemeral port,
/// reading from `replicas` if any, printing `listening <addr>` once ready;
/// stops when stdin closes.
async fn serve(url: &str, auth: bool, replicas: &[String]) -> anyhow::Result<()> {
    let mut config = Config {
        auth: auth.then(|| server::AuthSettings::Jwt {
            key: server::JwtKey::Secret(BENCH_SECRET.into()),
            issuer: None,
            audience: None,
        }),
        ..Config::new(url)
    };
    if !replicas.is_empty() {
        config.pool = config.pool.clone().replicas(replicas.iter().cloned());
    }
    let state = server::prepare(&config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    let parent_gone = async {
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        })
        .await;
    };
    server::serve(listener, state, parent_gone).await?;
    Ok(())
}

/// A fresh database for the run and its URL.
async fn fresh_database(backend: &str) -> anyhow::Result<(String, Option<tempfile::TempDir>)> {
    let admin = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.into());
    let (admin_url, create) = match backend {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
            return Ok((url, Some(dir)));
        }
        "postgres" => (
            admin(
                "ROSTER_TEST_POSTGRES",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            [
                "DROP DATABASE IF EXISTS roster_load WITH (FORCE)",
                "CREATE DATABASE roster_load",
            ],
        ),
        "mysql" => (
            admin("ROSTER_TEST_MYSQL", "mysql://root@127.0.0.1:3306/mysql"),
            [
                "DROP DATABASE IF EXISTS roster_load",
                "CREATE DATABASE roster_load",
            ],
        ),
        other => bail!("unknown backend {other}; use postgres, mysql, sqlite or pg-cluster"),
    };
    let db = Database::connect(admin_url.as_str()).await?;
    for sql in create {
        db.execute_unprepared(sql).await?;
    }
    db.close().await?;
    let (base, _) = admin_url
        .rsplit_once('/')
        .context("an admin URL ending in /<database>")?;
    Ok((format!("{base}/roster_load"), None))
}

/// A server's resident and peak memory (kB).
type Memory = Option<(u64, u64)>;

/// The server's resident and peak memory (kB), from /proc.
fn memory(child: &Child) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

struct ServerProcess {
    child: Child,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(
    url: &str,
    auth: bool,
    replicas: &[String],
) -> anyhow::Result<(ServerProcess, String)> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--serve", url]);
    if auth {
        command.arg("--auth");
    }
    for replica in replicas {
        command.args(["--replica", replica]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("the server's stdout")?;
    let process = ServerProcess { child };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .with_context(|| format!("the server did not start: {line:?}"))?
        .to_owned();
    Ok((process, format!("http://{addr}")))
}

/// One run: `servers` server processes on a fresh database, driven for
/// `--seconds`, and what they did.
struct Run {
    /// Server processes.
    servers: usize,
    /// The database's version string.
    version: String,
    /// What the clients saw.
    report: driver::LoadReport,
    /// The database checked against `report`.
    check: anyhow::Result<driver::DataCheck>,
    /// Per server: resident memory before the run, resident and peak after
    /// (kB).
    memory: Vec<(Memory, Memory)>,
    /// pg-cluster: transactions the run's database ran on the primary and on
    /// the replica during the load (from when it started to when the servers
    /// stopped).
    transactions: Option<(u64, u64)>,
    /// pg-cluster: how long the replica took to replay the seeded data.
    replay_wait: Option<Duration>,
}

async fn run_once(args: &Args, servers: usize) -> anyhow::Result<Run> {
    let nodes = if args.backend == "pg-cluster" {
        Some(cluster::Nodes::from_env()?)
    } else {
        None
    };
    let (url, _dir, replicas) = match &nodes {
        Some(nodes) => {
            nodes.fresh_database().await?;
            (nodes.primary_url()?, None, vec![nodes.replica_url()?])
        }
        None => {
            let (url, dir) = fresh_database(&args.backend).await?;
            (url, dir, Vec::new())
        }
    };
    let mut processes = Vec::with_capacity(servers);
    let mut bases = Vec::with_capacity(servers);
    for _ in 0..servers {
        let (process, base) = start_server(&url, args.auth, &replicas)?;
        processes.push(process);
        bases.push(base);
    }
    let replay_wait = match &nodes {
        Some(nodes) => Some(nodes.wait_for_replay().await?),
        None => None,
    };
    let db = Database::connect(url.as_str()).await?;
    let before_memberships = driver::memberships(&db).await?;
    let memory_before: Vec<_> = processes.iter().map(|p| memory(&p.child)).collect();
    let transactions_before = match &nodes {
        Some(nodes) => Some(nodes.transactions().await?),
        None => None,
    };
    let options = driver::LoadOptions {
        clients: args.clients,
        duration: Duration::from_secs(args.seconds),
        seed: 42,
        reads_only: args.reads_only,
        token: args.auth.then(token).transpose()?,
    };
    eprintln!(
        "driving {} ({}) with {} clients for {} s",
        bases.join(" "),
        args.backend,
        args.clients,
        args.seconds
    );
    let report = driver::run(&bases, &options).await?;
    let memory_after: Vec<_> = processes.iter().map(|p| memory(&p.child)).collect();
    let check = driver::check(&db, &report, before_memberships).await;
    drop(processes);
    let transactions = match (&nodes, transactions_before) {
        (Some(nodes), Some((primary, replica))) => {
            // Exiting backends flush their statistics; give them a moment.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (primary_after, replica_after) = nodes.transactions().await?;
            Some((
                primary_after.saturating_sub(primary),
                replica_after.saturating_sub(replica),
            ))
        }
        _ => None,
    };
    let version = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            match args.backend.as_str() {
                "sqlite" => "SELECT 'SQLite ' || sqlite_version()",
                _ => "SELECT version()",
            },
        ))
        .await?
        .and_then(|row| row.try_get_by_index::<String>(0).ok())
        .map(|v| v.split(" on ").next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    db.close().await?;
    Ok(Run {
        servers,
        version,
        report,
        check,
        memory: memory_before.into_iter().zip(memory_after).collect(),
        transactions,
        replay_wait,
    })
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    if args.scale_out() {
        return bench_scale_out(args).await;
    }
    let Run {
        version,
        report,
        check,
        memory,
        ..
    } = run_once(args, 1).await?;
    let (memory_before, memory_after) = memory.first().copied().unwrap_or_default();
    let mut text = markdown(args, &version, &report, &check, memory_before, memory_after)?;
    if args.auth {
        let costs: Vec<String> = token_check_cost()?
            .into_iter()
            .map(|(name, micros)| format!("{name} {micros:.1} µs"))
            .collect();
        writeln!(
            text,
            "\nOne token check in-process (`Auth::authenticate`, release build, one core, while \
             nothing else runs in this process): {}.",
            costs.join(", ")
        )?;
    }
    print!("{text}");
    if args.write {
        let path = if args.auth {
            concat!(env!("CARGO_MANIFEST_DIR"), "/benches/LOAD-AUTH.md")
        } else {
            concat!(env!("CARGO_MANIFEST_DIR"), "/benches/LOAD.md")
        };
        std::fs::write(path, &text)?;
        eprintln!("wrote {path}");
    }
    if let Err(e) = &check {
        bail!("the data check failed: {e:#}");
    }
    if report.unexpected_errors() > 0 {
        bail!("errors other than CONFLICT: {:?}", report.errors);
    }
    Ok(())
}

/// Runs each server count of `--servers` in turn and writes one table.
async fn bench_scale_out(args: &Args) -> anyhow::Result<()> {
    let mut runs = Vec::with_capacity(args.servers.len());
    for &servers in &args.servers {
        eprintln!("{servers} server(s):");
        runs.push(run_once(args, servers).await?);
    }
    let command: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    let text = scale::markdown(
        &format!("cargo bench --bench load -- {}", command.join(" ")),
        args,
        &runs,
    )?;
    print!("{text}");
    if args.write {
        let path = if args.backend == "pg-cluster" {
            concat!(env!("CARGO_MANIFEST_DIR"), "/benches/LOAD-CLUSTER.md")
        } else {
            concat!(env!("CARGO_MANIFEST_DIR"), "/benches/LOAD-SERVERS.md")
        };
        std::fs::write(path, &text)?;
        eprintln!("wrote {path}");
    }
    for run in &runs {
        if let Err(e) = &run.check {
            bail!("{} server(s): the data check failed: {e:#}", run.servers);
        }
        if run.report.unexpected_errors() > 0 {
            bail!(
                "{} server(s): errors other than CONFLICT: {:?}",
                run.servers,
                run.report.errors
            );
        }
    }
    Ok(())
}

/// What one token check costs in-process (`Auth::authenticate`: header
/// parsing, signature, claims), as (algorithm, microseconds), for HS256
/// with the bench's secret and RS256 and ES256 with the test keys.
fn token_check_cost() -> anyhow::Result<Vec<(&'static str, f64)>> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    use server::{Auth, AuthSettings, JwtKey};
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let read = |name: &str| std::fs::read_to_string(format!("{keys}/{name}"));
    let claims = serde_json::json!({
        "sub": "load-bench",
        "scope": "roster:read roster:write",
        "exp": jsonwebtoken::get_current_timestamp() + 86_400,
    });
    let public = |name: &str| -> anyhow::Result<AuthSettings> {
        Ok(AuthSettings::Jwt {
            key: JwtKey::PublicKeyPem {
                path: name.into(),
                pem: read(name)?,
            },
            issuer: None,
            audience: None,
        })
    };
    let kinds = [
        (
            "HS256",
            AuthSettings::Jwt {
                key: JwtKey::Secret(BENCH_SECRET.into()),
                issuer: None,
                audience: None,
            },
            Algorithm::HS256,
            EncodingKey::from_secret(BENCH_SECRET.as_bytes())?,
        ),
        (
            "RS256",
            public("rs256-public.pem")?,
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(read("rs256-private.pem")?.as_bytes())?,
        ),
        (
            "ES256",
            public("es256-public.pem")?,
            Algorithm::ES256,
            EncodingKey::from_ec_pem(read("es256-private.pem")?.as_bytes())?,
        ),
    ];
    let mut costs = Vec::new();
    for (name, settings, algorithm, key) in kinds {
        let auth = Auth::new(&settings)?;
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key)?;
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
        const N: u32 = 2_000;
        let started = std::time::Instant::now();
        for _ in 0..N {
            auth.authenticate(&headers)?;
        }
        costs.push((name, started.elapsed().as_secs_f64() * 1e6 / f64::from(N)));
    }
    Ok(costs)
}

/// A token for the `--auth` run: both scopes, valid for a day.
fn token() -> anyhow::Result<String> {
    let claims = serde_json::json!({
        "sub": "load-bench",
        "scope": "roster:read roster:write",
        "exp": jsonwebtoken::get_current_timestamp() + 86_400,
    });
    let key = jsonwebtoken::EncodingKey::from_secret(BENCH_SECRET.as_bytes())?;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}

fn markdown(
    args: &Args,
    version: &str,
    report: &driver::LoadReport,
    check: &anyhow::Result<driver::DataCheck>,
    before: Option<(u64, u64)>,
    after: Option<(u64, u64)>,
) -> anyhow::Result<String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = String::new();
    writeln!(s, "# GraphQL server under load")?;
    writeln!(s)?;
    writeln!(
        s,
        "Produced by `cargo bench --bench load -- --backend {} --seconds {} --clients {}{}` on \
         {cores} cores, {version}, loopback; the server (release build, default `Config`: pool \
         of 10, 5 s acquire, 10 s statement, 30 s request limits; {}) runs in its own process on the \
         demo data (5 group types, 60 groups, 300 users, 900 memberships), the clients in \
         another. Mix per request: 55% nested read (`groups(limit: 10) {{ groupType users(limit: 100) {{ \
         groups(limit: 20) }} }}`), 20% update of one of 20 hot users (read its `lastchange`, then \
         `userUpdate`), 5% update with a stale `lastchange`, 10% `userInsert` + \
         `membershipAdd`, 10% `membershipAdd` of a random pair.",
        args.backend,
        args.seconds,
        args.clients,
        if args.auth { " --auth" } else { "" },
        if args.auth {
            "`ROSTER_AUTH=jwt`, HS256: every request carries a bearer token the server checks"
        } else {
            "authentication off"
        }
    )?;
    writeln!(s)?;
    let overall = report.overall();
    writeln!(
        s,
        "**{} requests in {:.1} s: {:.0} requests/s; p50 {:.1} ms, p99 {:.1} ms.**",
        report.requests(),
        report.elapsed.as_secs_f64(),
        report.throughput(),
        overall.value_at_quantile(0.5) as f64 / 1000.0,
        overall.value_at_quantile(0.99) as f64 / 1000.0
    )?;
    writeln!(s)?;
    writeln!(s, "| request | count | p50 ms | p99 ms | max ms |")?;
    writeln!(s, "|---|--:|--:|--:|--:|")?;
    for (kind, h) in &report.latency {
        writeln!(
            s,
            "| {kind} | {} | {:.1} | {:.1} | {:.1} |",
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        )?;
    }
    writeln!(s)?;
    let errors: Vec<String> = report
        .errors
        .iter()
        .map(|(code, n)| format!("`{code}` {n}"))
        .collect();
    writeln!(
        s,
        "Errors by code: {} (stale updates sent: {}, accepted: {}); only `CONFLICT` is expected.",
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        },
        report.latency.get("stale update").map_or(0, |h| h.len()),
        report.stale_accepted
    )?;
    writeln!(s)?;
    let mb = |kb: u64| kb as f64 / 1024.0;
    match (before, after) {
        (Some((rss0, _)), Some((rss1, peak))) => writeln!(
            s,
            "Server memory (resident): {:.1} MiB before the run, {:.1} MiB after, peak {:.1} MiB.",
            mb(rss0),
            mb(rss1),
            mb(peak)
        )?,
        _ => writeln!(s, "Server memory: not available (no /proc).")?,
    }
    writeln!(s)?;
    match check {
        Ok(c) => writeln!(
            s,
            "Data check: passed. {} successful updates: for each of the {} users updated, the \
             last one (by the `lastchange` the server returned) is what is stored; {} inserted \
             users all present; {} `membershipAdd` answers, every pair present once, memberships \
             {} → {} (= before + the answers that said `true`); no duplicates.",
            report.updates.len(),
            c.updated_users,
            c.inserted_users,
            report.memberships.len(),
            c.memberships_before,
            c.memberships_after
        )?,
        Err(e) => writeln!(s, "Data check: **FAILED**: {e:#}")?,
    }
    Ok(s)
}
