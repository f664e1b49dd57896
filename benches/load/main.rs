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
//! cargo bench --bench load -- [--backend postgres|mysql|sqlite] [--seconds 60] [--clients 64]
//!                               [--reads-only] [--no-write] [--auth]
//! ```
//! `--auth` runs the server with `ROSTER_AUTH=jwt` (HS256) and every request
//! carries a bearer token, which the server checks; the report then goes
//! to `benches/LOAD-AUTH.md`, beside the run without it in `LOAD.md`.
//! PostgreSQL and MariaDB are reached through `ROSTER_TEST_POSTGRES` /
//! `ROSTER_TEST_MYSQL` (admin URLs, defaults as in the tests); the run uses a
//! database `roster_load` there, dropped and created afresh.

mod driver;

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
    serve: Option<String>,
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
        serve: None,
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
            "--serve" => args.serve = Some(value()?),
            // Passed by `cargo bench`.
            "--bench" => {}
            other => bail!(
                "unknown argument {other}; use --backend postgres|mysql|sqlite, \
                 --seconds N, --clients N, --reads-only, --no-write, --auth"
            ),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let runtime = tokio::runtime::Runtime::new()?;
    match &args.serve {
        Some(url) => runtime.block_on(serve(url, args.auth)),
        None => runtime.block_on(bench(&args)),
    }
}

/// Child mode: prepare (migrate, seed) and serve on an ephemeral port,
/// printing `listening <addr>` once ready; stops when stdin closes.
async fn serve(url: &str, auth: bool) -> anyhow::Result<()> {
    let config = Config {
        auth: auth.then(|| server::AuthSettings::Jwt {
            key: server::JwtKey::Secret(BENCH_SECRET.into()),
            issuer: None,
            audience: None,
        }),
        ..Config::new(url)
    };
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
        other => bail!("unknown backend {other}; use postgres, mysql or sqlite"),
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

fn start_server(url: &str, auth: bool) -> anyhow::Result<(ServerProcess, String)> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--serve", url]);
    if auth {
        command.arg("--auth");
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

async fn bench(args: &Args) -> anyhow::Result<()> {
    let (url, _dir) = fresh_database(&args.backend).await?;
    let (server, base) = start_server(&url, args.auth)?;
    let db = Database::connect(url.as_str()).await?;
    let before_memberships = driver::memberships(&db).await?;
    let memory_before = memory(&server.child);
    let options = driver::LoadOptions {
        clients: args.clients,
        duration: Duration::from_secs(args.seconds),
        seed: 42,
        reads_only: args.reads_only,
        token: args.auth.then(token).transpose()?,
    };
    eprintln!(
        "driving {base} ({}) with {} clients for {} s",
        args.backend, args.clients, args.seconds
    );
    let report = driver::run(&base, &options).await?;
    let memory_after = memory(&server.child);
    let check = driver::check(&db, &report, before_memberships).await;
    drop(server);

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
