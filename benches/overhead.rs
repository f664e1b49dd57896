//! The loaders' own overhead, with no database: `cargo bench --bench overhead`.
//!
//! Every contender answers from the same in-memory table (a `HashMap` of
//! 10,000 user-shaped rows, each batch copying its rows out as a database
//! driver would decode them), so what differs is the loader: registering a
//! load, forming the batch, waking the caller, handing it its value.
//! Reported per load: nanoseconds (the median request of each run, median of
//! runs) and heap allocations (counted by a global allocator wrapper).
//!
//! ```text
//! cargo bench --bench overhead -- [--runs 5] [--requests 200] [--no-write]
//! ```
//! Workloads: a burst of 1,000 concurrent loads of distinct keys, 1,000
//! concurrent loads over 100 keys, and 1,000 loads awaited one by one. Each
//! request runs in a spawned task on a 2-worker multi-thread runtime, with a
//! fresh loader. Writes `benches/OVERHEAD.md` unless `--no-write`.

use std::alloc::System;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::future::try_join_all;
use roster::loader::{BatchSource, BoxError, Loader, LoaderOptions, LoaderScope};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A row shaped like `users`: an id, three short texts, a timestamp.
#[derive(Clone, Debug)]
struct Row {
    #[allow(dead_code)]
    id: i64,
    #[allow(dead_code)]
    name: Option<String>,
    #[allow(dead_code)]
    surname: Option<String>,
    #[allow(dead_code)]
    email: Option<String>,
    #[allow(dead_code)]
    lastchange: i64,
}

/// The in-memory "database" every contender reads.
type Table = Arc<HashMap<i64, Row>>;

fn table() -> Table {
    Arc::new(
        (1..=10_000)
            .map(|id| {
                let row = Row {
                    id,
                    name: Some(format!("user {id}")),
                    surname: Some(format!("surname {id}")),
                    email: Some(format!("user{id}@example.org")),
                    lastchange: id,
                };
                (id, row)
            })
            .collect(),
    )
}

fn rows(table: &Table, keys: &[i64]) -> HashMap<i64, Row> {
    keys.iter()
        .filter_map(|k| table.get(k).map(|row| (*k, row.clone())))
        .collect()
}

struct RosterSource(Table);

#[async_trait::async_trait]
impl BatchSource for RosterSource {
    type Value = Row;
    fn name(&self) -> &'static str {
        "memory"
    }
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Row>, BoxError> {
        Ok(rows(&self.0, keys))
    }
}

struct AgqlSource(Table);

impl async_graphql::dataloader::Loader<i64> for AgqlSource {
    type Value = Row;
    type Error = Arc<anyhow::Error>;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Row>, Self::Error> {
        Ok(rows(&self.0, keys))
    }
}

#[derive(Clone)]
struct DlSource(Table);

impl dataloader::BatchFn<i64, Option<Row>> for DlSource {
    async fn load(&mut self, keys: &[i64]) -> HashMap<i64, Option<Row>> {
        keys.iter().map(|k| (*k, self.0.get(k).cloned())).collect()
    }
}

type Agql =
    async_graphql::dataloader::DataLoader<AgqlSource, async_graphql::dataloader::HashMapCache>;
type Dl = dataloader::cached::Loader<i64, Option<Row>, DlSource>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    Roster,
    Agql,
    Agql0,
    Dl,
    Dl1000,
}

impl Contender {
    const ALL: [Contender; 5] = [
        Contender::Roster,
        Contender::Agql,
        Contender::Agql0,
        Contender::Dl,
        Contender::Dl1000,
    ];

    fn key(self) -> &'static str {
        match self {
            Contender::Roster => "roster",
            Contender::Agql => "agql",
            Contender::Agql0 => "agql0",
            Contender::Dl => "dl",
            Contender::Dl1000 => "dl1000",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Contender::Roster => "roster Loader",
            Contender::Agql => "async-graphql DataLoader (1 ms delay)",
            Contender::Agql0 => "async-graphql DataLoader, delay 0",
            Contender::Dl => "dataloader crate (batches of 200)",
            Contender::Dl1000 => "dataloader crate, batch 1000",
        }
    }
}

/// One request's loader.
enum Session {
    Roster(Loader<Row>),
    Agql(Agql),
    Dl(Dl),
}

impl Session {
    fn new(contender: Contender, table: &Table) -> Session {
        match contender {
            Contender::Roster => Session::Roster(Loader::with_options(
                RosterSource(table.clone()),
                LoaderOptions::new().scope(LoaderScope::new()),
            )),
            Contender::Agql | Contender::Agql0 => {
                let loader = async_graphql::dataloader::DataLoader::with_cache(
                    AgqlSource(table.clone()),
                    tokio::spawn,
                    async_graphql::dataloader::HashMapCache::default(),
                );
                Session::Agql(if contender == Contender::Agql0 {
                    loader.delay(Duration::ZERO)
                } else {
                    loader
                })
            }
            Contender::Dl => Session::Dl(Dl::new(DlSource(table.clone()))),
            Contender::Dl1000 => {
                Session::Dl(Dl::new(DlSource(table.clone())).with_max_batch_size(1000))
            }
        }
    }

    /// All loads at once; how many found their row.
    async fn burst(&self, keys: &[i64]) -> Result<usize> {
        Ok(match self {
            Session::Roster(l) => found(&try_join_all(keys.iter().map(|&k| l.load(k))).await?),
            Session::Agql(l) => found(
                &try_join_all(keys.iter().map(|&k| l.load_one(k)))
                    .await
                    .map_err(|e| anyhow!("{e}"))?,
            ),
            Session::Dl(l) => found(&try_join_all(keys.iter().map(|&k| l.try_load(k))).await?),
        })
    }

    /// One load after another; how many found their row.
    async fn sequential(&self, keys: &[i64]) -> Result<usize> {
        let mut n = 0;
        for &k in keys {
            let hit = match self {
                Session::Roster(l) => l.load(k).await?.is_some(),
                Session::Agql(l) => l.load_one(k).await.map_err(|e| anyhow!("{e}"))?.is_some(),
                Session::Dl(l) => l.try_load(k).await?.is_some(),
            };
            n += usize::from(hit);
        }
        Ok(n)
    }
}

fn found<T>(answers: &[Option<T>]) -> usize {
    answers.iter().flatten().count()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Burst,
    Duplicates,
    Sequential,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Burst, Workload::Duplicates, Workload::Sequential];

    fn name(self) -> &'static str {
        match self {
            Workload::Burst => "burst 1000",
            Workload::Duplicates => "duplicates 1000 over 100",
            Workload::Sequential => "sequential 1000",
        }
    }

    /// The keys of request `i`: every request different, every key present.
    fn keys(self, i: usize) -> Vec<i64> {
        let start = (i as i64 * 997) % 9_000;
        match self {
            Workload::Burst | Workload::Sequential => (start + 1..=start + 1000).collect(),
            Workload::Duplicates => (0..1000).map(|j| start + 1 + (j * 37) % 100).collect(),
        }
    }
}

/// One measurement: per load, ns (median request) and allocations (mean).
#[derive(Clone, Copy, Debug)]
struct Sample {
    ns: f64,
    allocs: f64,
}

async fn measure(
    contender: Contender,
    workload: Workload,
    table: &Table,
    requests: usize,
) -> Result<Sample> {
    // The 1 ms delay makes sequential requests take over a second each.
    let requests = match (contender, workload) {
        (Contender::Agql, Workload::Sequential) => requests.min(5),
        _ => requests,
    };
    let mut times = Vec::with_capacity(requests);
    let mut allocs = 0_usize;
    for i in 0..=requests {
        let keys = workload.keys(i);
        let table = table.clone();
        let before = GLOBAL.stats();
        let started = Instant::now();
        let found = tokio::spawn(async move {
            let session = Session::new(contender, &table);
            match workload {
                Workload::Sequential => session.sequential(&keys).await,
                _ => session.burst(&keys).await,
            }
        })
        .await
        .context("request task")??;
        let elapsed = started.elapsed();
        let after = GLOBAL.stats();
        anyhow::ensure!(found == 1000, "{}: {found} of 1000", contender.name());
        if i == 0 {
            continue; // warm-up
        }
        times.push(elapsed.as_nanos() as f64 / 1000.0);
        allocs +=
            after.allocations + after.reallocations - before.allocations - before.reallocations;
    }
    Ok(Sample {
        ns: median(times),
        allocs: allocs as f64 / (requests * 1000) as f64,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

struct Args {
    runs: usize,
    requests: usize,
    write: bool,
    contenders: Vec<Contender>,
    workloads: Vec<Workload>,
}

fn args() -> Result<Option<Args>> {
    let mut args = Args {
        runs: 5,
        requests: 200,
        write: true,
        contenders: Contender::ALL.to_vec(),
        workloads: Workload::ALL.to_vec(),
    };
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => bench = true,
            "--runs" => args.runs = it.next().context("--runs N")?.parse()?,
            "--requests" => args.requests = it.next().context("--requests N")?.parse()?,
            "--no-write" => args.write = false,
            // A subset (e.g. to profile one contender): implies --no-write.
            "--only" => {
                let keys = it.next().context("--only roster,agql,agql0,dl,dl1000")?;
                args.contenders = Contender::ALL
                    .into_iter()
                    .filter(|c| keys.split(',').any(|k| k == c.key()))
                    .collect();
                args.write = false;
            }
            "--workload" => {
                let keys = it
                    .next()
                    .context("--workload burst,duplicates,sequential")?;
                args.workloads = Workload::ALL
                    .into_iter()
                    .filter(|w| keys.split(',').any(|k| w.name().starts_with(k)))
                    .collect();
                args.write = false;
            }
            other => anyhow::bail!(
                "unknown argument {other}: --runs N, --requests N, --no-write, --only A,B, --workload W"
            ),
        }
    }
    anyhow::ensure!(
        args.runs > 0 && args.requests > 0,
        "--runs and --requests must be at least 1"
    );
    Ok(bench.then_some(args))
}

fn main() -> Result<()> {
    let Some(args) = args()? else {
        return Ok(()); // `cargo test --benches`: nothing to do
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let table = table();
    let mut results: Vec<(Workload, Contender, Sample)> = Vec::new();
    for &workload in &args.workloads {
        for &contender in &args.contenders {
            let mut ns = Vec::new();
            let mut allocs = Vec::new();
            for _ in 0..args.runs {
                let sample =
                    runtime.block_on(measure(contender, workload, &table, args.requests))?;
                ns.push(sample.ns);
                allocs.push(sample.allocs);
            }
            let sample = Sample {
                ns: median(ns),
                allocs: median(allocs),
            };
            eprintln!(
                "{:<26} {:<40} {:>9.1} ns/load {:>6.2} allocs/load",
                workload.name(),
                contender.name(),
                sample.ns,
                sample.allocs
            );
            results.push((workload, contender, sample));
        }
    }
    let report = report(&args, &results);
    print!("{report}");
    if args.write {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/OVERHEAD.md");
        std::fs::write(path, &report).with_context(|| format!("writing {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

fn report(args: &Args, results: &[(Workload, Contender, Sample)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Loader overhead, no database\n");
    let _ = writeln!(
        out,
        "Produced by `cargo bench --bench overhead -- --runs {} --requests {}`; do not edit by hand. \
         Every contender reads the same in-memory table of 10,000 user-shaped rows (each batch copies \
         its rows out, as a driver decodes them), so the figures are the loaders' own cost: \
         nanoseconds per load (median request of each run, median of {} runs) and heap allocations \
         per load (everything allocated during the request, loader creation included, divided by \
         its 1,000 loads). Each request runs in a spawned task on a tokio multi-thread runtime with \
         2 workers, with a fresh loader; rustc {}. **× Roster** is the contender's ns per load \
         divided by Roster's: above 1.00 the contender is slower.\n",
        args.runs,
        args.requests,
        args.runs,
        rustc_version(),
    );
    for &workload in &args.workloads {
        let _ = writeln!(out, "## {}\n", workload.name());
        let _ = writeln!(out, "| contender | ns/load | allocations/load | × Roster |");
        let _ = writeln!(out, "|---|--:|--:|--:|");
        let roster = results
            .iter()
            .find(|(w, c, _)| *w == workload && *c == Contender::Roster)
            .map_or(f64::NAN, |(_, _, s)| s.ns);
        for (_, contender, sample) in results.iter().filter(|(w, _, _)| *w == workload) {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.2} | {:.2} |",
                contender.name(),
                sample.ns,
                sample.allocs,
                sample.ns / roster
            );
        }
        let _ = writeln!(out);
    }
    out
}

fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |v| v.trim().to_owned())
}
