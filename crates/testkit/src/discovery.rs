//! Which backends the tests can reach, found once per test binary.

use std::io::Write;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend};
use tokio::sync::OnceCell;

/// A database backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, in a temporary file; always available.
    Sqlite,
    /// PostgreSQL, at `ROSTER_TEST_POSTGRES`.
    Postgres,
    /// MySQL or MariaDB, at `ROSTER_TEST_MYSQL`.
    MySql,
}

/// How long discovery waits for a server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MySql];

    /// The backend's name as used in test names and `ROSTER_TEST_REQUIRE`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    /// The backend called `name` (`sqlite`, `postgres`, `mysql`/`mariadb`).
    ///
    /// # Panics
    /// On any other name: that is a mistake in a test, not a runtime condition.
    pub fn from_name(name: &str) -> Backend {
        match name {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            "mysql" | "mariadb" => Backend::MySql,
            other => panic!("unknown backend `{other}`: use sqlite, postgres or mysql"),
        }
    }

    /// sea-orm's name for the backend.
    pub fn db_backend(self) -> DbBackend {
        match self {
            Backend::Sqlite => DbBackend::Sqlite,
            Backend::Postgres => DbBackend::Postgres,
            Backend::MySql => DbBackend::MySql,
        }
    }

    /// The admin URL tests create their databases through (`None` for SQLite).
    pub fn admin_url(self) -> Option<String> {
        let var = match self {
            Backend::Sqlite => return None,
            Backend::Postgres => "ROSTER_TEST_POSTGRES",
            Backend::MySql => "ROSTER_TEST_MYSQL",
        };
        Some(std::env::var(var).unwrap_or_else(|_| self.default_admin_url().to_owned()))
    }

    /// The admin URL used when its variable is unset (empty for SQLite).
    pub fn default_admin_url(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "postgres://postgres@127.0.0.1:5432/postgres",
            Backend::MySql => "mysql://root@127.0.0.1:3306/mysql",
        }
    }

    /// Whether `ROSTER_TEST_REQUIRE` lists this backend.
    pub fn required(self) -> bool {
        let aliases: &[&str] = match self {
            Backend::Sqlite => &["sqlite"],
            Backend::Postgres => &["postgres", "postgresql"],
            Backend::MySql => &["mysql", "mariadb"],
        };
        aliases.iter().any(|name| required(name))
    }
}

/// Whether `ROSTER_TEST_REQUIRE` (comma-separated) lists `name` (or `all`):
/// a backend, or a tool some tests need, such as `chromium` for the browser
/// tests. A test whose required tool is missing fails instead of skipping.
pub fn required(name: &str) -> bool {
    std::env::var("ROSTER_TEST_REQUIRE").is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|listed| listed == "all" || listed.eq_ignore_ascii_case(name))
    })
}

/// Connects to the admin URL with a short timeout, for discovery and for
/// creating and dropping test databases.
pub(crate) async fn admin_connect(url: &str) -> Result<sea_orm::DatabaseConnection, String> {
    let options = ConnectOptions::new(url)
        .max_connections(1)
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        .sqlx_logging(false)
        .to_owned();
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, Database::connect(options))
        .await
        .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    conn.execute_unprepared("SELECT 1")
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

static POSTGRES: OnceCell<Result<(), String>> = OnceCell::const_new();
static MYSQL: OnceCell<Result<(), String>> = OnceCell::const_new();

/// Whether `backend` answered (tried once per test binary, and announced on
/// stderr: `roster-testkit: postgres: available at ...`).
pub async fn availability(backend: Backend) -> Result<(), String> {
    let (cell, url) = match (backend, backend.admin_url()) {
        (Backend::Postgres, Some(url)) => (&POSTGRES, url),
        (Backend::MySql, Some(url)) => (&MYSQL, url),
        _ => return Ok(()),
    };
    cell.get_or_init(|| async {
        let result = match admin_connect(&url).await {
            Ok(conn) => {
                let _ = conn.close().await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        announce(&format!(
            "{}\n",
            notice(backend, &url, &result, backend.required())
        ));
        result
    })
    .await
    .clone()
}

/// The line [`availability`] prints for `backend` at `url`: available, or
/// unreachable with the error `result` carries, skipped or (when
/// `required`) failing.
pub fn notice(backend: Backend, url: &str, result: &Result<(), String>, required: bool) -> String {
    named_notice(backend.name(), url, result, required)
}

/// [`notice`] for anything a test needs by `name` in `ROSTER_TEST_REQUIRE`
/// (a backend, or a cluster of [`crate::cluster`]) found at `url`.
pub fn named_notice(name: &str, url: &str, result: &Result<(), String>, required: bool) -> String {
    match result {
        Ok(()) => format!("roster-testkit: {name}: available at {url}"),
        Err(e) if required => format!(
            "roster-testkit: {name}: UNREACHABLE at {url} ({e}); required by ROSTER_TEST_REQUIRE, its tests fail"
        ),
        Err(e) => format!(
            "roster-testkit: {name}: unreachable at {url} ({e}); its tests are SKIPPED (set ROSTER_TEST_REQUIRE={name} to fail instead)"
        ),
    }
}

/// Decides whether a test on `backend` runs: `true` if reachable, `false`
/// (after a `SKIP` line) if unreachable and optional.
///
/// # Panics
/// When the backend is unreachable and `ROSTER_TEST_REQUIRE` lists it.
pub async fn should_run(backend: Backend, test: &str) -> bool {
    match availability(backend).await {
        Ok(()) => true,
        Err(e) if backend.required() => panic!(
            "{} is required (ROSTER_TEST_REQUIRE) but unreachable at {}: {e}",
            backend.name(),
            backend.admin_url().unwrap_or_default()
        ),
        Err(_) => {
            announce(&format!(
                "roster-testkit: SKIP {test}: {} unreachable\n",
                backend.name()
            ));
            false
        }
    }
}

/// Writes straight to the process's stderr: libtest captures `eprintln!` of
/// passing tests, and these lines must be seen.
pub(crate) fn announce(line: &str) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
