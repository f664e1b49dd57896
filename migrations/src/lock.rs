//! The cross-process migration lock.
//!
//! sea-orm-migration's runner checks which migrations are pending and then
//! applies them, and its very first statement is a
//! `CREATE TABLE IF NOT EXISTS seaql_migrations`; two runners started at once
//! race on both. [`MigrationLock::acquire`] is therefore called before the
//! runner touches the database at all:
//!
//! - PostgreSQL: a session-level `pg_advisory_lock` (advisory locks are scoped
//!   to the current database), waited for up to the timeout via `lock_timeout`.
//! - MySQL/MariaDB: `GET_LOCK` on a name derived from `DATABASE()` (MySQL's
//!   named locks are server-wide, so the name carries the database).
//! - SQLite: an exclusive OS file lock on `<database file>-migrate.lock`.
//!   SQLite itself serialises single writes, but not the runner's
//!   check-then-apply sequence. In-memory databases need no lock.
//!
//! The lock is held on its own connection (not a pool), so it cannot be
//! recycled away mid-run; if the process dies, the server ends the session and
//! the lock is released.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sea_orm::sqlx::{self, Connection, MySqlConnection, PgConnection};
use sea_orm::{DbBackend, DbErr, RuntimeErr};

use crate::error::{Error, Result};
use crate::runner::{backend_of, redact};

/// The PostgreSQL advisory-lock key: the bytes of `"rosterMG"`.
pub const PG_ADVISORY_KEY: i64 = i64::from_be_bytes(*b"rosterMG");

/// A held migration lock. Release it with [`MigrationLock::release`]; dropping
/// it also releases it (the connection or file closes).
#[derive(Debug)]
pub struct MigrationLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    Postgres(PgConnection),
    MySql(MySqlConnection),
    File(File, PathBuf),
    InMemory,
}

/// How often the SQLite file lock is retried while another runner holds it.
const FILE_LOCK_POLL: Duration = Duration::from_millis(50);

impl MigrationLock {
    /// Waits up to `timeout` for the migration lock of the database at `url`.
    pub async fn acquire(url: &str, timeout: Duration) -> Result<Self> {
        let held = match backend_of(url)? {
            DbBackend::Postgres => Held::Postgres(acquire_postgres(url, timeout).await?),
            DbBackend::MySql => Held::MySql(acquire_mysql(url, timeout).await?),
            _ => match sqlite_lock_path(url) {
                Some(path) => Held::File(acquire_file(&path, timeout).await?, path),
                None => Held::InMemory,
            },
        };
        Ok(Self { held })
    }

    /// Releases the lock and closes its connection.
    pub async fn release(self) -> Result<()> {
        match self.held {
            Held::Postgres(mut conn) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(PG_ADVISORY_KEY)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| lock_err("release", e))?;
                conn.close().await.map_err(|e| lock_err("close", e))
            }
            Held::MySql(mut conn) => {
                sqlx::query(MYSQL_RELEASE_LOCK)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| lock_err("release", e))?;
                conn.close().await.map_err(|e| lock_err("close", e))
            }
            Held::File(file, path) => {
                // Closing the file releases the lock, too; unlock first so an
                // error is reported rather than swallowed.
                file.unlock()
                    .map_err(|source| Error::LockFile { path, source })
            }
            Held::InMemory => Ok(()),
        }
    }
}

// MySQL lock names are server-wide, so the name carries the database (hashed:
// lock names are limited to 64 characters).
const MYSQL_GET_LOCK: &str = "SELECT GET_LOCK(CONCAT('roster_migrate_', SHA1(DATABASE())), ?)";
const MYSQL_RELEASE_LOCK: &str = "SELECT RELEASE_LOCK(CONCAT('roster_migrate_', SHA1(DATABASE())))";

async fn acquire_postgres(url: &str, timeout: Duration) -> Result<PgConnection> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| connect_err(url, e))?;
    // `lock_timeout` bounds the wait for advisory locks too (0 would mean "forever").
    let millis = timeout.as_millis().clamp(1, i32::MAX as u128);
    sqlx::query("SELECT set_config('lock_timeout', $1, false)")
        .bind(format!("{millis}ms"))
        .execute(&mut conn)
        .await
        .map_err(|e| lock_err("configure", e))?;
    let result = sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(PG_ADVISORY_KEY)
        .execute(&mut conn)
        .await;
    match result {
        Ok(_) => Ok(conn),
        // 55P03 lock_not_available: `lock_timeout` expired.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
            Err(Error::LockTimeout { waited: timeout })
        }
        Err(e) => Err(lock_err("acquire", e)),
    }
}

async fn acquire_mysql(url: &str, timeout: Duration) -> Result<MySqlConnection> {
    let mut conn = MySqlConnection::connect(url)
        .await
        .map_err(|e| connect_err(url, e))?;
    let selected: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| lock_err("acquire", e))?;
    if selected.is_none() {
        return Err(Error::NoDatabaseSelected);
    }
    // GET_LOCK: 1 = taken, 0 = timed out, NULL = error. Whole seconds; round up.
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    let got: Option<i64> = sqlx::query_scalar(MYSQL_GET_LOCK)
        .bind(secs)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| lock_err("acquire", e))?;
    match got {
        Some(1) => Ok(conn),
        Some(_) => Err(Error::LockTimeout { waited: timeout }),
        None => Err(lock_err(
            "acquire",
            sqlx::Error::Protocol("GET_LOCK returned NULL".into()),
        )),
    }
}

async fn acquire_file(path: &Path, timeout: Duration) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| Error::LockFile {
            path: path.to_owned(),
            source,
        })?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                tokio::time::sleep(FILE_LOCK_POLL).await;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::LockTimeout {
                    waited: start.elapsed(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(Error::LockFile {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

/// The lock file for a SQLite URL, or `None` for an in-memory database.
///
/// Accepts the forms sqlx accepts: `sqlite://path`, `sqlite:path`,
/// `sqlite::memory:`, with an optional `?query`.
pub fn sqlite_lock_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    if in_memory {
        return None;
    }
    Some(PathBuf::from(format!("{path}-migrate.lock")))
}

fn connect_err(url: &str, e: sqlx::Error) -> Error {
    Error::Connect {
        url: redact(url),
        source: DbErr::Conn(RuntimeErr::SqlxError(e.into())),
    }
}

fn lock_err(action: &'static str, e: sqlx::Error) -> Error {
    Error::Lock {
        action,
        source: DbErr::Conn(RuntimeErr::SqlxError(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_lock_path;
    use std::path::PathBuf;

    #[test]
    fn sqlite_lock_path_sits_beside_the_database_file() {
        assert_eq!(
            sqlite_lock_path("sqlite://roster.db?mode=rwc"),
            Some(PathBuf::from("roster.db-migrate.lock"))
        );
        assert_eq!(
            sqlite_lock_path("sqlite:///var/lib/r.db"),
            Some(PathBuf::from("/var/lib/r.db-migrate.lock"))
        );
        assert_eq!(
            sqlite_lock_path("sqlite:data/r.db"),
            Some(PathBuf::from("data/r.db-migrate.lock"))
        );
    }

    #[test]
    fn in_memory_sqlite_needs_no_lock() {
        assert_eq!(sqlite_lock_path("sqlite::memory:"), None);
        assert_eq!(sqlite_lock_path("sqlite://:memory:"), None);
        assert_eq!(sqlite_lock_path("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_lock_path("postgres://h/db"), None);
    }
}
