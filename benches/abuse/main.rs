//! The release-built GraphQL server under the abuse of issue 17:
//! `cargo build --release -p roster-server && cargo bench --bench abuse --
//! --server target/release/roster-server`.
//!
//! Starts the server binary given (build it first with
//! `cargo build --release -p roster-server`) in a process of its
//! own on a fresh database per backend, fills the database so that heavy
//! queries the cost model allows really return that much (1,200 users, 60
//! groups of ~400 members), then sends what the issue sent: the 131-byte
//! 12-level query, a batch of 1,000 heavy reads, a batch of 1,000
//! `userInsert`s, the 26-level fragment bomb (also four at once), and
//! between them the heaviest reads the bounds allow, from 8 clients. It
//! checks every refusal (`BAD_USER_INPUT`, its `extensions.reason`, within
//! a second, no SQL statement issued according to `/metrics`, no row
//! written, one `warn` line each in the server's log) and the server's
//! resident memory against [`RSS_GROWTH_BOUND`] over its level after a
//! warm-up; prints a report (and writes `benches/ABUSE.md` unless
//! `--no-write`), and exits non-zero if a check failed. CI runs it on every
//! backend (`.ci/run`).
//!
//! ```text
//! cargo bench --bench abuse -- --server PATH [--backend sqlite|postgres|mysql|all]
//!                                [--rounds 3] [--heavy 8] [--no-write]
//! ```
//! PostgreSQL and MariaDB are reached through `ROSTER_TEST_POSTGRES` /
//! `ROSTER_TEST_MYSQL` (admin URLs, defaults as in the tests); the run uses
//! a database `roster_abuse` there, dropped and created afresh.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use roster::entity::{user, users_groups};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait, QueryOrder,
    QuerySelect,
};
use serde_json::{Value, json};

/// How much the server's resident memory may stay above its level after the
/// warm-up (the same heavy reads once) when the abuse is over.
const RSS_GROWTH_BOUND_MIB: f64 = 64.0;
/// The same bound on SQLite, where the database engine runs inside the
/// server: its page caches and the allocations of its connections' own
/// threads (one per pooled connection) are the server's resident memory too,
/// and how much of them the allocators keep after a round varies from run to
/// run (+1 to +104 MiB over the warm-up in six runs of 2 rounds here; the
/// other backends stay within +9 MiB).
const RSS_GROWTH_BOUND_SQLITE_MIB: f64 = 160.0;

/// The bound on the growth of resident memory for `backend`.
fn rss_growth_bound(backend: &str) -> f64 {
    if backend == "sqlite" {
        RSS_GROWTH_BOUND_SQLITE_MIB
    } else {
        RSS_GROWTH_BOUND_MIB
    }
}
/// A refusal must come within this.
const REFUSAL_BOUND: Duration = Duration::from_secs(1);
/// Users in the database (the demo's 300 and more).
const USERS: usize = 1_200;
/// Groups each user belongs to (of the demo's 60).
const GROUPS_PER_USER: usize = 20;

/// The issue's 131-byte query.
const TWELVE_LEVELS: &str = "{ users(limit: 1) { groups { users { groups { users { groups { users { groups { users { groups { users { id } } } } } } } } } } } }";
/// The heaviest reads the cost model allows, filled by the data above.
const HEAVY: [&str; 2] = [
    "{ groups(limit: 60) { id name users(limit: 400) { id name email } } }",
    "{ users(limit: 1000) { id name surname email externalId lastchange groups(limit: 20) { id name } } }",
];

struct Args {
    server: Option<String>,
    backends: Vec<String>,
    rounds: usize,
    heavy: usize,
    write: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        server: None,
        backends: vec!["sqlite".into()],
        rounds: 3,
        heavy: 8,
        write: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().context("a value after the flag");
        match arg.as_str() {
            "--server" => args.server = Some(value()?),
            "--backend" => {
                args.backends = match value()?.as_str() {
                    "all" => vec!["sqlite".into(), "postgres".into(), "mysql".into()],
                    one => vec![one.to_owned()],
                }
            }
            "--rounds" => args.rounds = value()?.parse()?,
            "--heavy" => args.heavy = value()?.parse()?,
            "--no-write" => args.write = false,
            "--bench" => {}
            other => bail!(
                "unknown argument {other}; use --server PATH, --backend sqlite|postgres|mysql|all, \
                 --rounds N, --heavy N, --no-write"
            ),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let server = args.server.clone().context(
        "--server PATH is required: build it with `cargo build --release -p roster-server` \
         and pass target/release/roster-server",
    )?;
    ensure!(
        std::path::Path::new(&server).is_file(),
        "no server binary at {server}: build it with `cargo build --release -p roster-server`"
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let mut report = String::new();
    writeln!(
        report,
        "# The release-built server under the abuse of issue 17"
    )?;
    writeln!(report)?;
    writeln!(
        report,
        "Produced by `cargo bench --bench abuse -- --server {server} --rounds {} --heavy {}` on \
         {} cores. \
         The server binary runs in its own process on a database with 1,200 users, 60 groups \
         and 24,000 memberships (each user in 20 groups, ~400 members per group). Each round: \
         the 12-level query ×20, a batch of 1,000 heavy reads ×3, a batch of 1,000 \
         `userInsert`s ×3, the 26-level fragment bomb ×5 and 4 at once, then the two heaviest \
         reads the bounds allow ({}; {}) from 8 clients, {} times each. Memory is the server's \
         resident set (VmRSS) and its peak (VmHWM), from /proc.",
        args.rounds,
        args.heavy,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        HEAVY[0],
        HEAVY[1],
        args.heavy,
    )?;
    let mut failed = Vec::new();
    for backend in &args.backends {
        match runtime.block_on(run(&server, backend, args.rounds, args.heavy)) {
            Ok(section) => report.push_str(&section),
            Err(e) => {
                writeln!(report, "\n## {backend}\n\n**FAILED**: {e:#}")?;
                failed.push(format!("{backend}: {e:#}"));
            }
        }
    }
    print!("{report}");
    if args.write {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/ABUSE.md");
        std::fs::write(path, &report)?;
        eprintln!("wrote {path}");
    }
    if !failed.is_empty() {
        bail!("abuse checks failed:\n{}", failed.join("\n"));
    }
    Ok(())
}

/// A fresh database for `backend` and its URL.
async fn fresh_database(backend: &str) -> anyhow::Result<(String, Option<tempfile::TempDir>)> {
    let admin = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.into());
    let (admin_url, create) = match backend {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("abuse.db").display()
            );
            return Ok((url, Some(dir)));
        }
        "postgres" => (
            admin(
                "ROSTER_TEST_POSTGRES",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            [
                "DROP DATABASE IF EXISTS roster_abuse WITH (FORCE)",
                "CREATE DATABASE roster_abuse",
            ],
        ),
        "mysql" => (
            admin("ROSTER_TEST_MYSQL", "mysql://root@127.0.0.1:3306/mysql"),
            [
                "DROP DATABASE IF EXISTS roster_abuse",
                "CREATE DATABASE roster_abuse",
            ],
        ),
        other => bail!("unknown backend {other}; use sqlite, postgres or mysql"),
    };
    let db = Database::connect(admin_url.as_str())
        .await
        .with_context(|| format!("connecting to {backend} at {admin_url}"))?;
    for sql in create {
        db.execute_unprepared(sql).await?;
    }
    db.close().await?;
    let (base, _) = admin_url
        .rsplit_once('/')
        .context("an admin URL ending in /<database>")?;
    Ok((format!("{base}/roster_abuse"), None))
}

/// The server process; killed on drop. Its log (stdout) is collected.
struct ServerProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts `binary` on `url`, on an ephemeral port; returns it and its
    /// base URL once it logs where it listens.
    fn start(binary: &str, url: &str) -> anyhow::Result<(Self, String)> {
        let mut child = Command::new(binary)
            .env("DATABASE_URL", url)
            .env("ROSTER_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            // The example logs to stdout (tracing-subscriber's default).
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let output = child.stdout.take().context("the server's stdout")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("GraphiQL at http://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or_default();
                    let _ = tx.send(addr.to_owned());
                }
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
        });
        let process = ServerProcess { child, log };
        let addr = rx.recv_timeout(Duration::from_secs(120)).with_context(|| {
            let log = process.log.lock().map(|l| l.join("\n")).unwrap_or_default();
            format!("the server did not say where it listens within 120 s; its log:\n{log}")
        })?;
        Ok((process, format!("http://{addr}")))
    }

    /// Resident and peak memory in MiB.
    fn memory(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/<pid>/status"))?;
            let kb: f64 = line
                .split_whitespace()
                .nth(1)
                .context("a number")?
                .parse()?;
            Ok(kb / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Log lines that record a refusal with `reason`.
    fn refusals_logged(&self, reason: &str) -> usize {
        let needle = format!("reason=\"{reason}\"");
        let alt = format!("reason={reason}");
        self.log.lock().map_or(0, |lines| {
            lines
                .iter()
                .filter(|l| l.contains("refused a GraphQL request"))
                .filter(|l| l.contains(&needle) || l.contains(&alt))
                .count()
        })
    }
}

/// 1,200 users, each in 20 of the 60 groups (the demo's memberships
/// replaced).
async fn fill(db: &DatabaseConnection) -> anyhow::Result<()> {
    let now = roster::store::truncate_to_micros(chrono::Utc::now());
    let existing = usize::try_from(user::Entity::find().count(db).await?)?;
    let more: Vec<user::ActiveModel> = (existing..USERS)
        .map(|u| user::ActiveModel {
            id: NotSet,
            name: Set(Some(format!("Name{u}"))),
            surname: Set(Some(format!("Surname{u}"))),
            email: Set(Some(format!("user{u}@example.org"))),
            lastchange: Set(now),
            external_id: Set(Some(100_000 + i64::try_from(u).unwrap_or(0))),
        })
        .collect();
    for chunk in more.chunks(200) {
        user::Entity::insert_many(chunk.to_vec()).exec(db).await?;
    }
    users_groups::Entity::delete_many().exec(db).await?;
    let users: Vec<i64> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .order_by_asc(user::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let groups: Vec<i64> = roster::entity::group::Entity::find()
        .select_only()
        .column(roster::entity::group::Column::Id)
        .order_by_asc(roster::entity::group::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    ensure!(
        groups.len() == 60,
        "the demo's 60 groups, found {}",
        groups.len()
    );
    let rows: Vec<users_groups::ActiveModel> = users
        .iter()
        .enumerate()
        .flat_map(|(u, &user_id)| {
            let groups = &groups;
            (0..GROUPS_PER_USER).map(move |k| users_groups::ActiveModel {
                id: NotSet,
                user_id: Set(user_id),
                group_id: Set(groups[(u * 7 + k * 3) % groups.len()]),
            })
        })
        .collect();
    for chunk in rows.chunks(500) {
        users_groups::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// One HTTP client against the server.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(&self, body: &Value) -> anyhow::Result<(Value, Duration, usize)> {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(body)
            .send()
            .await?;
        let bytes = response.bytes().await?;
        let took = started.elapsed();
        Ok((serde_json::from_slice(&bytes)?, took, bytes.len()))
    }

    async fn statements(&self) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("roster_sql_statements_total "))
            .context("roster_sql_statements_total in /metrics")?
            .trim()
            .parse()
            .context("a counter")
    }
}

/// What one kind of abusive request showed.
#[derive(Default)]
struct Refused {
    count: usize,
    slowest: Duration,
    statements: u64,
}

/// Sends `body` `times` times (`parallel` at once) and checks that each is
/// refused with `reason`, quickly, with no SQL.
async fn refuse(
    client: &Client,
    body: &Value,
    reason: &str,
    times: usize,
    parallel: usize,
    tally: &mut Refused,
) -> anyhow::Result<()> {
    for _ in 0..times {
        let before = client.statements().await?;
        let answers = futures::future::join_all((0..parallel).map(|_| client.post(body))).await;
        let after = client.statements().await?;
        for answer in answers {
            let (answer, took, _) = answer?;
            let error = &answer["errors"][0];
            ensure!(
                error["extensions"]["code"] == "BAD_USER_INPUT"
                    && error["extensions"]["reason"] == reason,
                "expected a `{reason}` refusal, got {}",
                truncate(&answer.to_string())
            );
            ensure!(
                answer.get("data").is_none_or(Value::is_null),
                "a refusal with data"
            );
            ensure!(took < REFUSAL_BOUND, "a `{reason}` refusal took {took:?}");
            tally.count += 1;
            tally.slowest = tally.slowest.max(took);
        }
        // The two /metrics scrapes issue no SQL either.
        tally.statements += after - before;
    }
    ensure!(
        tally.statements == 0,
        "`{reason}` refusals issued {} SQL statements",
        tally.statements
    );
    Ok(())
}

fn truncate(text: &str) -> &str {
    &text[..text.len().min(300)]
}

/// The heavy reads, `per_client` times from each of 8 clients; the largest
/// answer in bytes and the slowest.
async fn heavy(client: &Client, per_client: usize) -> anyhow::Result<(usize, Duration)> {
    let tasks = (0..8).map(|c| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut largest = (0, Duration::ZERO);
            for i in 0..per_client {
                let query = HEAVY[(c + i) % HEAVY.len()];
                let (answer, took, bytes) = client.post(&json!({ "query": query })).await?;
                ensure!(
                    answer.get("errors").is_none(),
                    "a heavy read within the bounds failed: {}",
                    truncate(&answer.to_string())
                );
                largest = (largest.0.max(bytes), largest.1.max(took));
            }
            Ok::<_, anyhow::Error>(largest)
        })
    });
    let mut largest = (0, Duration::ZERO);
    for task in futures::future::join_all(tasks).await {
        let (bytes, took) = task??;
        largest = (largest.0.max(bytes), largest.1.max(took));
    }
    Ok(largest)
}

fn fragment_bomb() -> String {
    let mut bomb = String::from("{ users(limit: 1) { ...F25 } } fragment F0 on User { id }");
    for i in 1..26 {
        bomb.push_str(&format!(
            " fragment F{i} on User {{ ...F{p} a{i}: id ...F{p} }}",
            p = i - 1
        ));
    }
    bomb
}

async fn run(
    binary: &str,
    backend: &str,
    rounds: usize,
    per_client: usize,
) -> anyhow::Result<String> {
    let (url, _dir) = fresh_database(backend).await?;
    let (server, base) = ServerProcess::start(binary, &url)?;
    let db = Database::connect(url.as_str()).await?;
    fill(&db).await?;
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        base,
    };
    let started = server.memory()?;
    // Warm-up: every heavy read once from each client.
    let (warm_bytes, warm_took) = heavy(&client, HEAVY.len()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warm = server.memory()?;
    let users_before = user::Entity::find().count(&db).await?;

    let bodies = {
        let read = json!({ "query": "{ users(limit: 1000) { groups { users { id } } } }" });
        let insert = json!({ "query": r#"mutation { userInsert(user: { name: "x" }) { id } }"# });
        [
            (
                "the 12-level query",
                json!({ "query": TWELVE_LEVELS }),
                "cost",
                20,
                1,
            ),
            (
                "1,000 heavy reads in one batch",
                Value::Array(vec![read; 1000]),
                "batch",
                3,
                1,
            ),
            (
                "1,000 `userInsert`s in one batch",
                Value::Array(vec![insert; 1000]),
                "batch",
                3,
                1,
            ),
            (
                "the 26-level fragment bomb",
                json!({ "query": fragment_bomb() }),
                "fragments",
                5,
                1,
            ),
            (
                "the fragment bomb, 4 at once",
                json!({ "query": fragment_bomb() }),
                "fragments",
                1,
                4,
            ),
        ]
    };
    let mut tallies: Vec<Refused> = bodies.iter().map(|_| Refused::default()).collect();
    let mut largest = (warm_bytes, warm_took);
    let mut peak_rss_after_round: f64 = 0.0;
    for _ in 0..rounds {
        for ((_, body, reason, times, parallel), tally) in bodies.iter().zip(&mut tallies) {
            refuse(&client, body, reason, *times, *parallel, tally).await?;
        }
        let (bytes, took) = heavy(&client, per_client).await?;
        largest = (largest.0.max(bytes), largest.1.max(took));
        peak_rss_after_round = peak_rss_after_round.max(server.memory()?.0);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.memory()?;
    let users_after = user::Entity::find().count(&db).await?;
    ensure!(
        users_after == users_before,
        "rows were written: {users_before} users before, {users_after} after"
    );
    for reason in ["cost", "batch", "fragments"] {
        let expected: usize = bodies
            .iter()
            .zip(&tallies)
            .filter(|((_, _, r, _, _), _)| *r == reason)
            .map(|(_, t)| t.count)
            .sum();
        let logged = server.refusals_logged(reason);
        ensure!(
            logged == expected,
            "{expected} `{reason}` refusals, {logged} logged at warn"
        );
    }
    let growth = after.0 - warm.0;
    let bound = rss_growth_bound(backend);

    let mut s = String::new();
    writeln!(s, "\n## {backend}\n")?;
    writeln!(s, "| abuse | refused | reason | slowest | SQL statements |")?;
    writeln!(s, "|---|--:|---|--:|--:|")?;
    for ((name, _, reason, _, _), tally) in bodies.iter().zip(&tallies) {
        writeln!(
            s,
            "| {name} | {} | `{reason}` | {:.1} ms | {} |",
            tally.count,
            tally.slowest.as_secs_f64() * 1000.0,
            tally.statements
        )?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "Rows written by the refused batches: none ({users_after} users before and after). \
         Every refusal logged once at `warn` with its reason. Heavy reads: largest answer \
         {:.1} MiB, slowest {:.0} ms.",
        largest.0 as f64 / 1_048_576.0,
        largest.1.as_secs_f64() * 1000.0
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "Server memory (MiB, resident): {:.1} at start, {:.1} after the warm-up, at most {:.1} \
         after a round, **{:.1} at the end** (+{growth:.1} over the warm-up; bound \
         {bound}); peak {:.1}.",
        started.0, warm.0, peak_rss_after_round, after.0, after.1
    )?;
    drop(server);
    ensure!(
        growth <= bound,
        "resident memory grew by {growth:.1} MiB over the warm-up (bound {bound} MiB)\n{s}"
    );
    Ok(s)
}
