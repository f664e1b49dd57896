//! Imports users from a CSV file with Roster's bulk upsert: a progress bar
//! per chunk written, a report of the rejected lines (line number and
//! reason), and the totals.
//!
//! Run with `cargo run --example import_csv [-- path/to/users.csv]`; the
//! default file is `examples/data/users.csv` (500 users, three bad lines, a
//! repeated id). The columns are `id,name,surname,email,externalId`; rows
//! with an existing id are updated. It uses `DATABASE_URL`, or the SQLite
//! file `roster.db` in the working directory. Run it twice: the second run
//! updates instead of inserting.
//!
//! Lines are checked first (a bad id, a missing column, an email without
//! `@`); a line the database refuses fails its chunk, which is written again
//! without it.

use std::ops::Range;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use roster::entity::user;
use roster::migrations::{Action, run};
use roster::store::{Error, OnConflict, Store, UpsertTotals};
use sea_orm::ActiveValue::Set;
use sea_orm::Database;

/// Rows per statement: small, so the progress bar moves on a small file.
const CHUNK: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/users.csv").into());
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://roster.db?mode=rwc".into());
    run(&url, Action::Up { steps: None }).await?;
    let store = Store::new(Database::connect(&url).await?);

    let started = Instant::now();
    let (mut pending, mut rejected) = read_csv(&path)?;
    let bar = ProgressBar::new(pending.len() as u64).with_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} rows {msg}",
    )?);
    let mut totals = UpsertTotals::<user::Model>::default();
    // Chunks refused for one bad row are written again without it.
    while !pending.is_empty() {
        let rows = pending.iter().map(|(_, row)| row.clone());
        let mut retry = Vec::new();
        let mut chunks = std::pin::pin!(store.upsert_many::<user::Entity>(
            rows,
            OnConflict::Update,
            Some(CHUNK)
        ));
        while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
            match chunk {
                Ok(report) => {
                    bar.inc((report.rows.len() as u64).saturating_sub(report.superseded));
                    totals.inserted += report.inserted;
                    totals.updated += report.updated;
                    totals.superseded += report.superseded;
                    totals.chunks += 1;
                }
                Err(Error::BadRow {
                    row, chunk, source, ..
                }) => {
                    rejected.push((pending[row].0, source.to_string()));
                    retry.extend(without(&pending, chunk, row));
                }
                Err(other) => return Err(other.into()),
            }
        }
        pending = retry;
    }
    bar.finish_with_message("done");

    rejected.sort();
    println!("rejected {} lines:", rejected.len());
    for (line, reason) in &rejected {
        println!("  line {line}: {reason}");
    }
    println!(
        "{} inserted, {} updated, {} superseded by a later line with the same id; {} chunks in {:.2?}",
        totals.inserted,
        totals.updated,
        totals.superseded,
        totals.chunks,
        started.elapsed()
    );
    Ok(())
}

/// A line of the file: `id,name,surname,email,externalId`.
type Line = (u64, user::ActiveModel);

/// A rejected line: its number and why.
type Rejected = (u64, String);

/// The file's users with their line numbers, and the lines rejected.
fn read_csv(path: &str) -> anyhow::Result<(Vec<Line>, Vec<Rejected>)> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path)?;
    let (mut rows, mut rejected) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(0, |p| p.line());
        match parse(&record) {
            Ok(row) => rows.push((line, row)),
            Err(reason) => rejected.push((line, reason)),
        }
    }
    Ok((rows, rejected))
}

fn parse(record: &csv::StringRecord) -> Result<user::ActiveModel, String> {
    let [id, name, surname, email, external_id] = [0, 1, 2, 3, 4].map(|i| record.get(i));
    let (Some(id), Some(name), Some(surname), Some(email), Some(external_id)) =
        (id, name, surname, email, external_id)
    else {
        return Err(format!("expected 5 columns, found {}", record.len()));
    };
    let id: i64 = id
        .parse()
        .map_err(|_| format!("id {id:?} is not a number"))?;
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    if !email.is_empty() && !email.contains('@') {
        return Err(format!("email {email:?} has no @"));
    }
    let external_id = match external_id {
        "" => None,
        s => Some(
            s.parse()
                .map_err(|_| format!("externalId {s:?} is not a number"))?,
        ),
    };
    Ok(user::ActiveModel {
        id: Set(id),
        name: Set(text(name)),
        surname: Set(text(surname)),
        email: Set(text(email)),
        external_id: Set(external_id),
        ..Default::default()
    })
}

/// The lines of `chunk` except `bad`.
fn without(pending: &[Line], chunk: Range<usize>, bad: usize) -> impl Iterator<Item = Line> + '_ {
    chunk.filter(move |i| *i != bad).map(|i| pending[i].clone())
}
