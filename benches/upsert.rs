//! Bulk upsert benchmark on PostgreSQL: Roster's `upsert_all` against
//! row-by-row upserts, sea-orm's own `insert_many` with `on_conflict`, and
//! the floor, `COPY … FROM STDIN`, side by side in one run on the same
//! database and rows. Reports the median of several runs and each
//! contender's throughput as a ratio to Roster's, on the terminal and in
//! `benches/UPSERT.md`.
//!
//! Run with `cargo bench --bench upsert -- [--rows N] [--runs N] [--chunk N] [--only A,B]`
//! (defaults 100,000 rows, 5 runs, Roster's default chunk size; `--only` runs some of the contenders,
//! e.g. to profile one, and prints without writing the report). It creates the database
//! `roster_bench_upsert` through `ROSTER_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use roster::entity::user;
use roster::migrations::{Action, run};
use roster::store::{OnConflict, Store, UpsertOptions};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict as SqlOnConflict;
use sea_orm::sqlx::postgres::PgPoolCopyExt;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait};

/// The contenders: the short name `--only` takes, and the report's name.
const NAMES: [(&str, &str); 7] = [
    ("insert", "Roster upsert_many (insert)"),
    ("update", "Roster upsert_many (update)"),
    ("insert2", "Roster upsert_many, parallel(2) (insert)"),
    ("update2", "Roster upsert_many, parallel(2) (update)"),
    ("insert_many", "sea-orm insert_many + on_conflict"),
    ("row_by_row", "row by row (sea-orm insert + on_conflict)"),
    ("copy", "COPY FROM STDIN (floor)"),
];

/// Rows the row-by-row contender writes (its rate is extrapolated).
const ROW_BY_ROW: usize = 2_000;

struct Args {
    rows: usize,
    runs: usize,
    /// Contenders to run (all when empty), by the short names in `NAMES`.
    only: Vec<String>,
    /// Rows per chunk for Roster (default: the bind-parameter bound).
    chunk: Option<usize>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        rows: 100_000,
        runs: 5,
        only: Vec::new(),
        chunk: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number =
            || -> anyhow::Result<usize> { Ok(it.next().context("a number")?.parse()?) };
        match arg.as_str() {
            "--rows" => args.rows = number()?,
            "--runs" => args.runs = number()?.max(1),
            "--chunk" => args.chunk = Some(number()?.max(1)),
            "--only" => {
                let list = it.next().context("--only needs a list")?;
                args.only = list.split(',').map(str::to_owned).collect();
                if let Some(bad) = args
                    .only
                    .iter()
                    .find(|o| !NAMES.iter().any(|(n, _)| n == o))
                {
                    anyhow::bail!(
                        "unknown contender {bad}; one of {:?}",
                        NAMES.map(|(n, _)| n)
                    );
                }
                if args.only.iter().any(|o| o == "update")
                    && !args.only.iter().any(|o| o == "insert")
                {
                    anyhow::bail!(
                        "update rewrites the rows insert wrote: use --only insert,update"
                    );
                }
            }
            // Passed by `cargo bench`.
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument {other}; use --rows N, --runs N, --chunk N, --only A,B"
            ),
        }
    }
    Ok(args)
}

fn person(i: usize, tag: &str) -> user::ActiveModel {
    let id = i as i64 + 1;
    user::ActiveModel {
        id: Set(id),
        name: Set(Some(format!("name {i}"))),
        surname: Set(Some(format!("{tag} {i}"))),
        email: Set(Some(format!("user{i}@example.org"))),
        external_id: Set(Some(id + 7_000_000)),
        ..Default::default()
    }
}

async fn empty(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("TRUNCATE users CASCADE").await?;
    Ok(())
}

/// Rows per second of one timed run of `f` writing `rows` rows.
async fn rate<F: AsyncFnOnce() -> anyhow::Result<()>>(rows: usize, f: F) -> anyhow::Result<f64> {
    let started = Instant::now();
    f().await?;
    Ok(rows as f64 / started.elapsed().max(Duration::from_nanos(1)).as_secs_f64())
}

async fn roster_insert(
    db: &DatabaseConnection,
    rows: usize,
    options: UpsertOptions,
) -> anyhow::Result<f64> {
    empty(db).await?;
    let store = Store::new(db.clone());
    rate(rows, async || {
        let totals = store
            .upsert_all::<user::Entity>(
                (0..rows).map(|i| person(i, "new")),
                OnConflict::Update,
                options,
            )
            .await?;
        anyhow::ensure!(
            totals.inserted == rows as u64,
            "inserted {}",
            totals.inserted
        );
        Ok(())
    })
    .await
}

async fn roster_update(
    db: &DatabaseConnection,
    rows: usize,
    options: UpsertOptions,
) -> anyhow::Result<f64> {
    let store = Store::new(db.clone());
    rate(rows, async || {
        let totals = store
            .upsert_all::<user::Entity>(
                (0..rows).map(|i| person(i, "upd")),
                OnConflict::Update,
                options,
            )
            .await?;
        anyhow::ensure!(totals.updated == rows as u64, "updated {}", totals.updated);
        Ok(())
    })
    .await
}

fn sea_orm_on_conflict() -> SqlOnConflict {
    SqlOnConflict::column(user::Column::Id)
        .update_columns([
            user::Column::Name,
            user::Column::Surname,
            user::Column::Email,
            user::Column::ExternalId,
            user::Column::Lastchange,
        ])
        .to_owned()
}

fn stamped(i: usize, tag: &str, now: chrono::DateTime<chrono::Utc>) -> user::ActiveModel {
    let mut row = person(i, tag);
    row.lastchange = Set(now);
    row
}

async fn sea_orm_insert_many(db: &DatabaseConnection, rows: usize) -> anyhow::Result<f64> {
    empty(db).await?;
    let now = roster::store::truncate_to_micros(chrono::Utc::now());
    // The same chunk size as Roster's: 6 columns under 65,535 parameters.
    let chunk = 65_535 / 6;
    rate(rows, async || {
        for start in (0..rows).step_by(chunk) {
            let end = (start + chunk).min(rows);
            user::Entity::insert_many((start..end).map(|i| stamped(i, "many", now)))
                .on_conflict(sea_orm_on_conflict())
                .exec(db)
                .await?;
        }
        Ok(())
    })
    .await
}

async fn row_by_row(db: &DatabaseConnection) -> anyhow::Result<f64> {
    empty(db).await?;
    let now = roster::store::truncate_to_micros(chrono::Utc::now());
    rate(ROW_BY_ROW, async || {
        for i in 0..ROW_BY_ROW {
            user::Entity::insert(stamped(i, "one", now))
                .on_conflict(sea_orm_on_conflict())
                .exec(db)
                .await?;
        }
        Ok(())
    })
    .await
}

async fn copy(db: &DatabaseConnection, rows: usize) -> anyhow::Result<f64> {
    empty(db).await?;
    let pool = db.get_postgres_connection_pool();
    let now = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string();
    rate(rows, async || {
        let mut data = String::with_capacity(rows * 80);
        for i in 0..rows {
            let id = i + 1;
            writeln!(
                data,
                "{id}\tname {i}\tcopy {i}\tuser{i}@example.org\t{}\t{now}",
                id + 7_000_000
            )?;
        }
        let mut copy = pool
            .copy_in_raw(
                "COPY users (id, name, surname, email, \"externalId\", lastchange) FROM STDIN",
            )
            .await?;
        copy.send(data.as_bytes()).await?;
        let copied = copy.finish().await?;
        anyhow::ensure!(copied == rows as u64, "copied {copied}");
        Ok(())
    })
    .await
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let admin = std::env::var("ROSTER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin_db = Database::connect(&admin)
        .await
        .context("PostgreSQL admin URL")?;
    admin_db
        .execute_unprepared("DROP DATABASE IF EXISTS roster_bench_upsert WITH (FORCE)")
        .await?;
    admin_db
        .execute_unprepared("CREATE DATABASE roster_bench_upsert")
        .await?;
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/roster_bench_upsert"),
        None => anyhow::bail!("ROSTER_TEST_POSTGRES has no database part: {admin}"),
    };
    run(&url, Action::Up { steps: None }).await?;
    let db = Database::connect(&url).await?;

    let selected = |i: usize| args.only.is_empty() || args.only.iter().any(|o| o == NAMES[i].0);
    let one = UpsertOptions::from(args.chunk);
    let two = one.parallel(2);
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); NAMES.len()];
    for run_no in 0..args.runs {
        for (i, sample) in samples.iter_mut().enumerate() {
            if !selected(i) {
                continue;
            }
            sample.push(match i {
                0 => roster_insert(&db, args.rows, one).await?,
                1 => roster_update(&db, args.rows, one).await?,
                2 => roster_insert(&db, args.rows, two).await?,
                3 => roster_update(&db, args.rows, two).await?,
                4 => sea_orm_insert_many(&db, args.rows).await?,
                5 => row_by_row(&db).await?,
                _ => copy(&db, args.rows).await?,
            });
        }
        eprintln!("run {}/{} done", run_no + 1, args.runs);
    }
    if !args.only.is_empty() {
        for ((name, _), sample) in NAMES.iter().zip(samples) {
            if !sample.is_empty() {
                println!(
                    "{name}: {:.0} rows/s (median of {})",
                    median(sample),
                    args.runs
                );
            }
        }
        println!("(a partial run: benches/UPSERT.md left as it was)");
        return Ok(());
    }
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    let (roster, roster2) = (medians[0], medians[2]);
    let (row_by_row_rate, copy_rate) = (medians[5], medians[6]);

    let mut table = String::new();
    writeln!(
        table,
        "| contender | rows/s (median of {}) | Roster ÷ contender | Roster parallel(2) ÷ contender |\n|---|---:|---:|---:|",
        args.runs
    )?;
    for ((_, name), rate) in NAMES.iter().zip(&medians) {
        writeln!(
            table,
            "| {name} | {rate:.0} | {:.2}× | {:.2}× |",
            roster / rate,
            roster2 / rate
        )?;
    }
    let verdict = |label: &str, rate: f64| {
        let copy_ratio = rate / copy_rate;
        let row_ratio = rate / row_by_row_rate;
        format!(
            "{label}: {:.2}× COPY (target 0.5×: {}), {:.0}× row by row (target 20×: {}).",
            copy_ratio,
            if copy_ratio >= 0.5 { "met" } else { "missed" },
            row_ratio,
            if row_ratio >= 20.0 { "met" } else { "missed" },
        )
    };
    let verdict = format!(
        "{}\n{}",
        verdict("Roster, one connection", roster),
        verdict(
            "Roster, parallel(2): two connections (COPY uses one)",
            roster2
        )
    );
    println!("{table}\n{verdict}");

    let version = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SHOW server_version",
        ))
        .await?
        .and_then(|r| r.try_get_by_index::<String>(0).ok())
        .unwrap_or_default();
    let report = format!(
        "# Bulk upsert benchmark (PostgreSQL)\n\n\
         Produced by `cargo bench --bench upsert -- --rows {} --runs {}` on {} cores, PostgreSQL {version}, \
         loopback. {} new user rows per run into an emptied table (the update row: the same rows \
         again, all existing); row by row writes {ROW_BY_ROW} rows and its rate is per row. \
         `parallel(2)` writes two chunks at once on two pooled connections, committed in order \
         (`UpsertOptions::parallel`). Ratios above 1 mean Roster is faster.\n\n{table}\n{verdict}\n",
        args.rows,
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.rows,
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/UPSERT.md");
    std::fs::write(path, report)?;
    println!("written to benches/UPSERT.md");
    drop(db);
    admin_db
        .execute_unprepared("DROP DATABASE IF EXISTS roster_bench_upsert WITH (FORCE)")
        .await?;
    Ok(())
}
