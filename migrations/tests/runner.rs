//! The `migrate` binary, run as separate processes the way deployments run
//! it: concurrent runners apply each migration exactly once, the lock is
//! taken before anything else, and `status` changes nothing.
//!
//! This lives beside the binary (not in the workspace's `tests/it`) because
//! Cargo gives `CARGO_BIN_EXE_migrate` only to the binary's own package.

use std::process::Output;
use std::time::Duration;

use roster_migrations::lock::MigrationLock;
use roster_testkit::{TestDb, backend_tests};
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::SchemaManager;
use tokio::process::Command;

const MIGRATIONS: usize = 6;
const RUNNERS: usize = 8;

async fn migrate(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .arg("-u")
        .arg(db.url())
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .expect("spawn migrate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The versions recorded in `seaql_migrations`, as stored (duplicates kept).
async fn recorded_versions(db: &TestDb) -> Vec<String> {
    let rows = db
        .conn()
        .query_all_raw(Statement::from_string(
            db.db_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .expect("read seaql_migrations");
    rows.iter()
        .map(|row| row.try_get::<String>("", "version").expect("version"))
        .collect()
}

async fn concurrent_runners_apply_each_migration_once(db: &TestDb) {
    // Spawned together, the runners race from their first statement on.
    let runs = futures::future::join_all((0..RUNNERS).map(|_| migrate(db, &["up"]))).await;
    let mut applied_lines = 0;
    for (i, out) in runs.iter().enumerate() {
        assert!(
            out.status.success(),
            "runner {i} failed: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        applied_lines += text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("applied "))
            .count();
    }
    // Each runner reports what it applied under the lock: together, each
    // migration exactly once.
    assert_eq!(applied_lines, MIGRATIONS, "{runs:#?}");
    let versions = recorded_versions(db).await;
    assert_eq!(versions.len(), MIGRATIONS, "{versions:?}");
    let mut unique = versions.clone();
    unique.dedup();
    assert_eq!(unique, versions, "a migration was recorded twice");
    let manager = SchemaManager::new(db.conn());
    for table in ["grouptypes", "users", "groups", "users_groups"] {
        assert!(
            manager.has_table(table).await.expect("has_table"),
            "{table} missing"
        );
    }
}

async fn runner_waits_for_the_lock_before_touching_anything(db: &TestDb) {
    let held = MigrationLock::acquire(db.url(), Duration::from_secs(5))
        .await
        .expect("take the lock");
    let blocked = migrate(db, &["--lock-timeout", "1", "up"]).await;
    assert!(
        !blocked.status.success(),
        "runner ran while the lock was held"
    );
    assert!(
        text(&blocked.stderr).contains("timed out"),
        "{}",
        text(&blocked.stderr)
    );
    // Not even the bookkeeping table was created while waiting.
    let manager = SchemaManager::new(db.conn());
    assert!(
        !manager
            .has_table("seaql_migrations")
            .await
            .expect("has_table")
    );

    held.release().await.expect("release the lock");
    let free = migrate(db, &["--lock-timeout", "5", "up"]).await;
    assert!(free.status.success(), "{}", text(&free.stderr));
    assert_eq!(recorded_versions(db).await.len(), MIGRATIONS);
}

async fn status_reports_and_changes_nothing(db: &TestDb) {
    let out = migrate(db, &["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("pending ")).count(),
        MIGRATIONS,
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("0 of {MIGRATIONS} migrations applied")),
        "{stdout}"
    );
    let manager = SchemaManager::new(db.conn());
    assert!(
        !manager
            .has_table("seaql_migrations")
            .await
            .expect("has_table")
    );

    let up = migrate(db, &["up", "-n", "3"]).await;
    assert!(up.status.success(), "{}", text(&up.stderr));
    let out = migrate(db, &["status"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("applied ")).count(),
        3,
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("pending ")).count(),
        MIGRATIONS - 3,
        "{stdout}"
    );
}

async fn bad_url_fails_with_a_clear_message(db: &TestDb) {
    let _ = db;
    let out = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["-u", "oracle://scott:tiger@h/db", "up"])
        .output()
        .await
        .expect("spawn migrate");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(!stderr.contains("tiger"), "password leaked: {stderr}");
}

backend_tests!(
    concurrent_runners_apply_each_migration_once,
    runner_waits_for_the_lock_before_touching_anything,
    status_reports_and_changes_nothing,
);
backend_tests!(on [sqlite]: bad_url_fails_with_a_clear_message);
