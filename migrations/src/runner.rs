//! Running an [`Action`] against a database URL, under the migration lock.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};
use sea_orm_migration::MigratorTrait;

use crate::Migrator;
use crate::error::{Error, Result};
use crate::lock::MigrationLock;

/// The default database URL: a SQLite file in the working directory, created
/// if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://roster.db?mode=rwc";

/// How long a runner waits for another runner's lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// What to do with the migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Apply pending migrations: all of them, or the next `steps`.
    Up {
        /// How many to apply; `None` for all.
        steps: Option<u32>,
    },
    /// Roll back applied migrations: all of them, or the last `steps`.
    Down {
        /// How many to roll back; `None` for all.
        steps: Option<u32>,
    },
    /// Report which migrations are applied; changes nothing.
    Status,
    /// Drop every table (and PostgreSQL type), then apply all migrations.
    Fresh,
    /// Roll back all applied migrations, then apply all migrations.
    Refresh,
    /// Roll back all applied migrations and drop the migration table.
    Reset,
}

impl Action {
    /// The action's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Action::Up { .. } => "up",
            Action::Down { .. } => "down",
            Action::Status => "status",
            Action::Fresh => "fresh",
            Action::Refresh => "refresh",
            Action::Reset => "reset",
        }
    }
}

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// The migration's name, e.g. `m20261122_000003_create_users`.
    pub name: String,
    /// Whether it is recorded as applied.
    pub applied: bool,
}

/// What a run did, and the state it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Migrations this run applied (and left applied), oldest first.
    pub applied: Vec<String>,
    /// Migrations this run rolled back (and left rolled back), oldest first.
    pub rolled_back: Vec<String>,
    /// Every migration, oldest first, as the run left it.
    pub states: Vec<MigrationState>,
}

/// Runs `action` on the database at `url`, holding the migration lock
/// (waiting up to [`DEFAULT_LOCK_TIMEOUT`] for another runner).
pub async fn run(url: &str, action: Action) -> Result<Report> {
    run_with_timeout(url, action, DEFAULT_LOCK_TIMEOUT).await
}

/// Like [`run`], with an explicit lock timeout.
pub async fn run_with_timeout(url: &str, action: Action, lock_timeout: Duration) -> Result<Report> {
    run_migrator::<Migrator>(url, action, lock_timeout).await
}

/// Like [`run_with_timeout`], for the migrations of `M`: a service's
/// migrator that appends its own migrations after Roster's
/// (`Migrator::migrations()` first), run under the same lock.
///
/// ```
/// use roster_migrations::{Migrator, MigratorTrait};
/// use sea_orm_migration::MigrationTrait;
///
/// /// Roster's migrations, then the service's own.
/// struct ServiceMigrator;
///
/// impl MigratorTrait for ServiceMigrator {
///     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
///         let all = Migrator::migrations();
///         // all.push(Box::new(m20270101_000001_create_projects::Migration));
///         all
///     }
/// }
/// # let _ = roster_migrations::run_migrator::<ServiceMigrator>;
/// ```
pub async fn run_migrator<M: MigratorTrait>(
    url: &str,
    action: Action,
    lock_timeout: Duration,
) -> Result<Report> {
    backend_of(url)?;
    let lock = MigrationLock::acquire(url, lock_timeout).await?;
    // One connection: the runner is sequential, and on SQLite sea-orm's
    // `fresh` relies on `PRAGMA foreign_keys` staying on the same connection.
    let options = ConnectOptions::new(url)
        .max_connections(1)
        .sqlx_logging(false)
        .to_owned();
    let db = Database::connect(options)
        .await
        .map_err(|source| Error::Connect {
            url: redact(url),
            source,
        })?;
    let outcome = run_locked::<M>(&db, action).await;
    // Close and unlock even when the action failed; report the action's error first.
    let closed = db.close().await.map_err(|source| Error::Migration {
        action: "close",
        source,
    });
    let released = lock.release().await;
    let report = outcome?;
    closed?;
    released?;
    Ok(report)
}

async fn run_locked<M: MigratorTrait>(db: &DatabaseConnection, action: Action) -> Result<Report> {
    let wrap = |source: DbErr| Error::Migration {
        action: action.name(),
        source,
    };
    let before = states::<M>(db).await.map_err(wrap)?;
    match action {
        Action::Up { steps } => M::up(db, steps).await,
        Action::Down { steps } => M::down(db, steps).await,
        Action::Status => Ok(()),
        Action::Fresh => M::fresh(db).await,
        Action::Refresh => M::refresh(db).await,
        Action::Reset => M::reset(db).await,
    }
    .map_err(wrap)?;
    let after = states::<M>(db).await.map_err(wrap)?;

    let was_applied: HashSet<&str> = before
        .iter()
        .filter(|m| m.applied)
        .map(|m| m.name.as_str())
        .collect();
    let (applied, rolled_back) = after.iter().fold(
        (Vec::new(), Vec::new()),
        |(mut applied, mut rolled_back), m| {
            match (was_applied.contains(m.name.as_str()), m.applied) {
                (false, true) => applied.push(m.name.clone()),
                (true, false) => rolled_back.push(m.name.clone()),
                _ => {}
            }
            (applied, rolled_back)
        },
    );
    Ok(Report {
        applied,
        rolled_back,
        states: after,
    })
}

/// Every migration with its status, without creating the migration table.
async fn states<M: MigratorTrait>(db: &DatabaseConnection) -> Result<Vec<MigrationState>, DbErr> {
    Ok(M::get_migration_with_status_read_only(db)
        .await?
        .into_iter()
        .map(|m| MigrationState {
            name: m.name().to_owned(),
            applied: m.status() == sea_orm_migration::MigrationStatus::Applied,
        })
        .collect())
}

/// The backend a URL names, or [`Error::UnsupportedUrl`].
pub(crate) fn backend_of(url: &str) -> Result<DbBackend> {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    match scheme {
        "postgres" | "postgresql" => Ok(DbBackend::Postgres),
        "mysql" | "mariadb" => Ok(DbBackend::MySql),
        "sqlite" => Ok(DbBackend::Sqlite),
        _ => Err(Error::UnsupportedUrl { url: redact(url) }),
    }
}

/// The URL with the password (if any) replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{backend_of, redact};
    use crate::Error;
    use sea_orm::DbBackend;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://app:s3cr%40t@db:5432/roster?sslmode=require"),
            "postgres://app:***@db:5432/roster?sslmode=require"
        );
        assert_eq!(
            redact("mysql://root@127.0.0.1/x"),
            "mysql://root@127.0.0.1/x"
        );
        assert_eq!(
            redact("sqlite://roster.db?mode=rwc"),
            "sqlite://roster.db?mode=rwc"
        );
    }

    #[test]
    fn backend_is_chosen_from_the_scheme() {
        assert_eq!(
            backend_of("postgresql://h/d").ok(),
            Some(DbBackend::Postgres)
        );
        assert_eq!(backend_of("mariadb://h/d").ok(), Some(DbBackend::MySql));
        assert_eq!(backend_of("sqlite::memory:").ok(), Some(DbBackend::Sqlite));
        assert!(matches!(
            backend_of("oracle://u:pw@h/d"),
            Err(Error::UnsupportedUrl { url }) if url == "oracle://u:***@h/d"
        ));
    }
}
