//! `Store::stream` over 200,000 rows keeps memory flat.
//!
//! The integration tests share one process and run in parallel, so this
//! process's resident set moves with whatever the other tests allocate. The
//! measurement therefore runs in a process of its own: the test fills its
//! database, then runs this test binary again with only
//! [`streamed_in_a_process_of_its_own`] selected, which streams the rows and
//! compares its peak resident set (`VmHWM`, reset just before the stream)
//! with its resident set before it. The rows as models take about 150 MiB;
//! a stream may grow the process by at most 64 MiB.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use roster::entity::user;
use roster::store::Store;
use roster_testkit::{TestDb, backend_tests};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database, EntityTrait};

/// How many rows are streamed.
const ROWS: u64 = 200_000;
/// How much the process may grow while streaming them.
const BOUND: u64 = 64 << 20;
/// Characters in each of a row's three text columns.
const TEXT: usize = 200;
/// The variable that hands the child process the database's URL.
const URL_VAR: &str = "ROSTER_STREAM_TEST_URL";

/// Fills the database with `ROWS` users (one statement: a template row
/// crossed with itself through a table of digits), then streams them in a
/// child process, which asserts; its figures are printed here.
async fn streaming_200k_rows_keeps_memory_flat(db: &TestDb) {
    let started = Instant::now();
    let template = Store::new(db.conn().clone())
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some("n".repeat(TEXT))),
            surname: Set(Some("s".repeat(TEXT))),
            email: Set(Some("e".repeat(TEXT))),
            ..Default::default()
        })
        .await
        .expect("template row");
    let digits = "(SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                  UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                  UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let fill = format!(
        "INSERT INTO users (name, surname, email, lastchange) \
         SELECT t.name, t.surname, t.email, t.lastchange \
         FROM users t, {digits} a, {digits} b, {digits} c, {digits} d, {digits} e, \
         (SELECT 0 AS n UNION ALL SELECT 1) f WHERE t.id = {}",
        template.id
    );
    let inserted = db.conn().execute_unprepared(&fill).await.expect("fill");
    assert_eq!(inserted.rows_affected(), ROWS);
    db.conn()
        .execute_unprepared(&format!("DELETE FROM users WHERE id = {}", template.id))
        .await
        .expect("drop the template");
    let filled = started.elapsed();

    let test = concat!(module_path!(), "::streamed_in_a_process_of_its_own");
    let test = test.split_once("::").map_or(test, |(_, path)| path);
    let exe = std::env::current_exe().expect("the test binary");
    let url = db.url().to_owned();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(URL_VAR, url)
            .output()
    })
    .await
    .expect("task")
    .expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child failed:\n{stdout}\n{stderr}"
    );
    let figures = stdout
        .lines()
        .find_map(|l| l.find("stream: ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("the child ran no stream:\n{stdout}\n{stderr}"));
    eprintln!(
        "{:?}: filled {ROWS} rows in {filled:.1?}; child {:.1?}; {figures}",
        db.backend(),
        started.elapsed()
    );
}

/// The child's half of [`streaming_200k_rows_keeps_memory_flat`]: nothing
/// to do unless that test started this process.
#[tokio::test]
#[ignore = "run by streaming_200k_rows_keeps_memory_flat in a process of its own"]
async fn streamed_in_a_process_of_its_own() {
    let Ok(url) = std::env::var(URL_VAR) else {
        return;
    };
    let conn = Database::connect(ConnectOptions::new(url).sqlx_logging(false).to_owned())
        .await
        .expect("connect");
    let store = Store::new(conn);
    // Warm up on a few rows: the connection's buffers and statement cache
    // belong to the baseline, not to the stream.
    let first = user::Entity::find()
        .one(store.db())
        .await
        .expect("read")
        .expect("rows")
        .id;
    let warm = Condition::all().add(user::Column::Id.lt(first + 1000));
    let warmed = store
        .stream::<user::Entity>(warm)
        .await
        .expect("stream")
        .count()
        .await;
    assert!(warmed > 0);

    let before = rss();
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = Instant::now();
    let mut stream = store
        .stream::<user::Entity>(Condition::all())
        .await
        .expect("stream");
    let (mut rows, mut bytes, mut sampled) = (0u64, 0u64, before);
    while let Some(row) = stream.next().await {
        let row = row.expect("row");
        rows += 1;
        bytes += model_size(&row);
        if rows % 10_000 == 0 {
            sampled = sampled.max(rss());
        }
    }
    drop(stream);
    let took = started.elapsed();
    // Without the reset, the high-water mark may be older than the stream:
    // an overestimate, which only makes the check stricter.
    let peak = status_kib("VmHWM:").max(sampled);
    let growth = peak.saturating_sub(before);
    println!(
        "stream: {rows} rows, {:.0} MiB as models, in {took:.1?}; resident {:.0} MiB before, \
         peak {:.0} MiB, growth {:.1} MiB (high-water mark reset: {reset})",
        mib(bytes),
        mib(before),
        mib(peak),
        mib(growth)
    );
    assert_eq!(rows, ROWS);
    assert!(
        bytes > 2 * BOUND,
        "the rows are too small for the bound to mean anything"
    );
    assert!(
        growth < BOUND,
        "streaming grew the process by {:.1} MiB",
        mib(growth)
    );
    assert!(took < Duration::from_secs(120));
}

/// What a user takes in memory as a model: the struct and its strings.
fn model_size(row: &user::Model) -> u64 {
    let text = [&row.name, &row.surname, &row.email]
        .iter()
        .map(|s| s.as_ref().map_or(0, String::capacity))
        .sum::<usize>();
    (std::mem::size_of::<user::Model>() + text) as u64
}

/// The resident set now, in bytes.
fn rss() -> u64 {
    status_kib("VmRSS:")
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

backend_tests!(migrated: streaming_200k_rows_keeps_memory_flat);
