//! Roster's loader against its peers, side by side on one database and data
//! set.
//!
//! ```text
//! cargo bench --bench loader -- --backend all --runs 3
//! ```
//!
//! Options: `--backend postgres|sqlite|mysql|all` (default `all`), `--runs N`
//! (default 3; medians are reported), `--requests N` (requests per burst or
//! duplicates measurement, default 20), `--no-write` (print only; otherwise
//! `benches/RESULTS.md` and `benches/ratios.svg` are rewritten), `--only
//! raw,seaorm,agql,agql0,dataloader,dataloader1000,naive` (Roster and these
//! contenders only; implies `--no-write`).
//! PostgreSQL and MariaDB are found through `ROSTER_TEST_POSTGRES` and
//! `ROSTER_TEST_MYSQL` (the test suite's admin URLs); the benchmark creates,
//! seeds and finally drops its own database `roster_bench`.
//!
//! # Layout
//! - `dataset`: the database, Roster's migrations, the seeded data set.
//! - `contenders`: Roster's `Loader` and the alternatives, one session per request.
//! - `workloads`: burst, sequential, duplicates, peak memory, GraphQL fan-out.
//! - `report`: medians, ratios to Roster, the Markdown table, the SVG chart.

mod contenders;
mod dataset;
mod report;
mod workloads;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use peak_alloc::PeakAlloc;

use contenders::Contender;
use dataset::{Backend, BenchDb, PoolCheck};
use report::{BackendReport, Machine, PoolRow, median};
use workloads::{Sizes, Workload};

/// Counts heap bytes, for the peak memory per request.
#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

struct Args {
    backends: Vec<Backend>,
    runs: usize,
    requests: usize,
    write: bool,
    contenders: Vec<Contender>,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        backends: vec![Backend::Postgres, Backend::Sqlite, Backend::MySql],
        runs: 3,
        requests: 20,
        write: true,
        contenders: contenders::ALL.to_vec(),
    };
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            // `cargo bench` passes `--bench`; anything else that runs this
            // binary (`cargo test --benches`) does not, and gets a no-op.
            "--bench" => bench = true,
            "--backend" => {
                let value = it.next().context("--backend needs a value")?;
                args.backends = match value.as_str() {
                    "all" => vec![Backend::Postgres, Backend::Sqlite, Backend::MySql],
                    "postgres" => vec![Backend::Postgres],
                    "sqlite" => vec![Backend::Sqlite],
                    "mysql" | "mariadb" => vec![Backend::MySql],
                    other => bail!("unknown backend {other:?}: postgres, sqlite, mysql or all"),
                };
            }
            "--runs" => {
                args.runs = it.next().context("--runs needs a value")?.parse()?;
                anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
            }
            "--requests" => {
                args.requests = it.next().context("--requests needs a value")?.parse()?;
                anyhow::ensure!(args.requests > 0, "--requests must be at least 1");
            }
            "--no-write" => args.write = false,
            "--only" => {
                let value = it.next().context("--only needs a value")?;
                let keys: Vec<&str> = value.split(',').collect();
                args.contenders = contenders::ALL
                    .into_iter()
                    .filter(|c| *c == Contender::Roster || keys.contains(&c.key()))
                    .collect();
                // A partial run must not overwrite the published results.
                args.write = false;
            }
            other if other.starts_with("--") => {} // libtest flags such as --test
            _ => {}                                // a name filter: ignored
        }
    }
    Ok(bench.then_some(args))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        println!("loader benchmark: run it with `cargo bench --bench loader`");
        return Ok(());
    };
    let sizes = Sizes {
        requests: args.requests,
        sequential: 5_000,
    };
    let mut reports = Vec::new();
    for &backend in &args.backends {
        eprintln!("== {}: creating and seeding roster_bench", backend.name());
        let db = BenchDb::create(backend)
            .await
            .with_context(|| format!("prepare the {} database", backend.name()))?;
        let report = run_backend(&db, &args, sizes).await?;
        db.drop_database().await?;
        reports.push(report);
    }
    let machine = machine(&args)?;
    let markdown = report::markdown(&machine, &reports);
    println!("{markdown}");
    if args.write {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches");
        std::fs::write(dir.join("RESULTS.md"), &markdown).context("write RESULTS.md")?;
        report::chart(&dir.join("ratios.svg"), &reports)?;
        eprintln!("wrote benches/RESULTS.md and benches/ratios.svg");
    }
    Ok(())
}

async fn run_backend(db: &BenchDb, args: &Args, sizes: Sizes) -> Result<BackendReport> {
    let conn = db.conn(PoolCheck::PingEveryCheckout).await?;
    let mut samples: Vec<(Workload, Contender, Vec<workloads::Sample>)> = Vec::new();
    for run in 0..args.runs {
        let seed = 1_000 + run as u64;
        let ids = &db.user_ids;
        let burst1000 = workloads::id_sets(ids, sizes.requests, 1000, 1000, seed);
        let burst999 = workloads::id_sets(ids, sizes.requests, 999, 999, seed + 1);
        let duplicates = workloads::id_sets(ids, sizes.requests, 1000, 100, seed + 2);
        let sequential = workloads::id_sets(ids, 1, sizes.sequential, sizes.sequential, seed + 3)
            .pop()
            .unwrap_or_default();
        for workload in Workload::ALL {
            for &contender in &args.contenders {
                let sample = match workload {
                    Workload::Burst1000 => {
                        workloads::throughput(contender, &conn, &burst1000).await
                    }
                    Workload::Burst999 => workloads::throughput(contender, &conn, &burst999).await,
                    Workload::Duplicates => {
                        workloads::throughput(contender, &conn, &duplicates).await
                    }
                    Workload::Sequential => {
                        workloads::sequential(contender, &conn, &sequential).await
                    }
                }
                .with_context(|| format!("{} / {}", workload.name(), contender.name()))?;
                eprintln!(
                    "{} run {}/{}: {:<11} {:<34} {:>10.0} {} ({:.0} statements/request)",
                    db.backend.name(),
                    run + 1,
                    args.runs,
                    workload.name(),
                    contender.name(),
                    sample.value,
                    workload.unit(),
                    sample.statements
                );
                match samples
                    .iter_mut()
                    .find(|(w, c, _)| *w == workload && *c == contender)
                {
                    Some((_, _, list)) => list.push(sample),
                    None => samples.push((workload, contender, vec![sample])),
                }
            }
        }
    }
    let mut fan_out = Vec::new();
    let mut fan_out_connections = Vec::new();
    for run in 0..args.runs {
        for (query, kind, into) in [
            (workloads::FAN_OUT_QUERY, "lists      ", &mut fan_out),
            (
                workloads::FAN_OUT_CONNECTION_QUERY,
                "connections",
                &mut fan_out_connections,
            ),
        ] {
            let sample = workloads::fan_out(&conn, sizes.requests, query)
                .await
                .context("fan-out")?;
            eprintln!(
                "{} run {}/{}: fan-out {kind} roster GraphQL schema {:>10.0} requests/s ({:.0} statements/request)",
                db.backend.name(),
                run + 1,
                args.runs,
                sample.value,
                sample.statements
            );
            into.push(sample);
        }
    }
    let mut memory = Vec::new();
    let burst = workloads::id_sets(&db.user_ids, 1, 1000, 1000, 42)
        .pop()
        .unwrap_or_default();
    for &contender in &args.contenders {
        let bytes = workloads::bytes_per_row(contender, &conn, &burst).await?;
        memory.push((contender, bytes));
    }
    conn.db.clone().close().await.ok();
    let full = args.contenders.len() == contenders::ALL.len();
    let pool = if db.backend == Backend::Postgres && full {
        pool_settings(db, args, sizes).await?
    } else {
        Vec::new()
    };
    Ok(BackendReport {
        backend: db.backend,
        server_version: db.server_version.clone(),
        samples,
        memory,
        pool,
        fan_out,
        fan_out_connections,
    })
}

/// Roster and the raw floor, burst and sequential, under each pool checkout setting.
async fn pool_settings(db: &BenchDb, args: &Args, sizes: Sizes) -> Result<Vec<PoolRow>> {
    let mut rows = Vec::new();
    for check in [
        PoolCheck::PingEveryCheckout,
        PoolCheck::NoPing,
        PoolCheck::PingIfIdle30s,
    ] {
        let conn = db.conn(check).await?;
        for contender in [Contender::Roster, Contender::RawSqlx] {
            let (mut burst, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
            for run in 0..args.runs {
                let seed = 2_000 + run as u64;
                let sets = workloads::id_sets(&db.user_ids, sizes.requests, 1000, 1000, seed);
                burst.push(workloads::throughput(contender, &conn, &sets).await?.value);
                let seq =
                    workloads::id_sets(&db.user_ids, 1, sizes.sequential, sizes.sequential, seed)
                        .pop()
                        .unwrap_or_default();
                let s = workloads::sequential(contender, &conn, &seq).await?;
                p50.push(s.value);
                p99.push(s.p99.unwrap_or(f64::NAN));
            }
            let row = PoolRow {
                check,
                contender,
                burst: median(burst),
                sequential_p50: median(p50),
                sequential_p99: median(p99),
            };
            eprintln!(
                "pool {:<40} {:<20} burst {:>8.0} rows/s, sequential p50 {:.0} µs",
                check.label(),
                contender.name(),
                row.burst,
                row.sequential_p50
            );
            rows.push(row);
        }
        conn.db.clone().close().await.ok();
    }
    Ok(rows)
}

fn machine(args: &Args) -> Result<Machine> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "rustc (unknown)".to_owned());
    let lock =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
            .context("read Cargo.lock")?;
    let crates = [
        "sea-orm",
        "sea-query",
        "sqlx",
        "tokio",
        "async-graphql",
        "dataloader",
    ]
    .iter()
    .map(|name| (name.to_string(), locked_version(&lock, name)))
    .collect();
    let backend_arg = if args.backends.len() == 3 {
        "all".to_owned()
    } else {
        args.backends
            .iter()
            .map(|b| match b {
                Backend::Postgres => "postgres",
                Backend::Sqlite => "sqlite",
                Backend::MySql => "mysql",
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    Ok(Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        ram_gib: ram_kib / 1024.0 / 1024.0,
        rustc,
        crates,
        runs: args.runs,
        requests: args.requests,
        command: format!(
            "cargo bench --bench loader -- --backend {backend_arg} --runs {}",
            args.runs
        ),
    })
}

/// The version of `name` in `Cargo.lock`.
fn locked_version(lock: &str, name: &str) -> String {
    let needle = format!("name = \"{name}\"\n");
    lock.split("[[package]]")
        .find(|block| block.contains(&needle))
        .and_then(|block| {
            block
                .lines()
                .find_map(|l| l.strip_prefix("version = \""))
                .map(|v| v.trim_end_matches('"').to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}
