//! [`TestDb`]: a fresh, uniquely named database for one test, dropped by a
//! guard when the test ends (passed or panicked).

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

use crate::discovery::{Backend, admin_connect};

/// A fresh database for one test.
///
/// SQLite: a file in a temporary directory. PostgreSQL and MySQL: a database
/// named `rt_<test>_<random>`, created through the admin URL and dropped on
/// `Drop` (from a helper thread, since `Drop` cannot `.await`).
#[derive(Debug)]
pub struct TestDb {
    backend: Backend,
    name: String,
    url: String,
    conn: DatabaseConnection,
    /// Keeps the SQLite file's directory alive; removed on drop.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Creates a fresh database on `backend` for the test called `test`.
    ///
    /// # Panics
    /// If the database cannot be created or connected to: the test cannot run.
    pub async fn create(backend: Backend, test: &str) -> TestDb {
        let name = unique_name(test);
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("roster-test-")
                    .tempdir()
                    .expect("create a temporary directory");
                let path = dir.path().join(format!("{name}.db"));
                (format!("sqlite://{}?mode=rwc", path.display()), Some(dir))
            }
            Backend::Postgres | Backend::MySql => {
                let admin_url = backend.admin_url().unwrap_or_default();
                let admin = admin_connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {admin_url}: {e}"));
                let create = match backend {
                    Backend::MySql => format!(
                        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    ),
                    _ => format!("CREATE DATABASE \"{name}\""),
                };
                admin
                    .execute_unprepared(&create)
                    .await
                    .unwrap_or_else(|e| panic!("{create}: {e}"));
                let _ = admin.close().await;
                (with_database(&admin_url, &name), None)
            }
        };
        let conn = Database::connect(ConnectOptions::new(&url).sqlx_logging(false).to_owned())
            .await
            .unwrap_or_else(|e| panic!("connect to test database {url}: {e}"));
        TestDb {
            backend,
            name,
            url,
            conn,
            _dir: dir,
        }
    }

    /// The backend this database lives on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// sea-orm's name for the backend.
    pub fn db_backend(&self) -> DbBackend {
        self.backend.db_backend()
    }

    /// A connection pool to this database.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The URL of this database (for code that connects by itself, such as
    /// the `migrate` binary).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This database's URL with its host and port replaced by `addr` (say,
    /// a [`FaultProxy`](crate::FaultProxy)'s); user, database and query kept.
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        with_authority_host(&self.url, &addr.to_string())
    }

    /// The server's address (`None` for SQLite).
    ///
    /// # Panics
    /// If the host in the URL does not resolve.
    pub fn server_addr(&self) -> Option<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        if self.backend == Backend::Sqlite {
            return None;
        }
        let host_port = host_port(&self.url);
        let default_port = if self.backend == Backend::MySql {
            3306
        } else {
            5432
        };
        let target = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        };
        let addr = target
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("resolve {target}: {e}"))
            .next();
        Some(addr.unwrap_or_else(|| panic!("{target} resolves to no address")))
    }

    /// Starts a [`FaultProxy`](crate::FaultProxy) in front of this database's
    /// server and returns it with the URL that connects through it.
    ///
    /// # Panics
    /// On SQLite, which has no server to stand in front of.
    pub async fn fault_proxy(&self) -> (crate::FaultProxy, String) {
        let server = self
            .server_addr()
            .expect("a fault proxy needs a server backend (PostgreSQL or MySQL)");
        let proxy = crate::FaultProxy::start(server).await;
        let url = self.url_via(proxy.addr());
        (proxy, url)
    }

    /// The database's name (`rt_<test>_<random>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A second pool to this database that records every statement it
    /// issues, for asserting how many queries an operation makes.
    pub async fn logged_conn(&self) -> (DatabaseConnection, crate::StatementLog) {
        crate::statement_log::connect_logged(&self.url).await
    }

    /// Applies all of Roster's migrations.
    ///
    /// # Panics
    /// If a migration fails.
    pub async fn migrate(&self) {
        let action = roster_migrations::Action::Up { steps: None };
        if let Err(e) = roster_migrations::run(&self.url, action).await {
            panic!("migrate {}: {e:?}", self.url);
        }
    }

    /// Closes the pool; the database itself is dropped when `self` drops
    /// (ending any connection still open).
    ///
    /// Closing waits for checked-out connections to come back; a connection
    /// that never does (leaked by the code under test) must not hang the
    /// suite, so the wait is bounded and the leak reported on stderr.
    pub async fn close(self) {
        let closing = self.conn.clone().close();
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            eprintln!(
                "roster-testkit: {}: connections still checked out {CLOSE_TIMEOUT:?} after the test; dropping the database anyway",
                self.name
            );
        }
    }
}

/// How long [`TestDb::close`] waits for checked-out connections.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin_url) = self.backend.admin_url() else {
            return; // SQLite: the temporary directory removes itself.
        };
        let (backend, name) = (self.backend, self.name.clone());
        drop_detached(&self.name, async move {
            drop_database(backend, &admin_url, &name).await
        });
    }
}

/// Runs `drop` (a database's removal) to its end from `Drop`, which cannot
/// await while the test's runtime may be shutting down: on a thread with a
/// runtime of its own. A failure is reported on stderr, naming `name`.
pub(crate) fn drop_detached(
    name: &str,
    drop: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
) {
    let dropper = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(drop)
    });
    match dropper.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("roster-testkit: could not drop {name}: {e}"),
        Err(_) => eprintln!("roster-testkit: dropping {name} panicked"),
    }
}

/// Ends the sessions on the MySQL/MariaDB server behind `admin` that use
/// database `name`: one left inside a transaction (a panicking test) holds
/// metadata locks that would make `DROP DATABASE` wait.
pub(crate) async fn end_mysql_sessions(
    admin: &DatabaseConnection,
    name: &str,
) -> Result<(), String> {
    let rows = admin
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
            [name.into()],
        ))
        .await
        .map_err(|e| e.to_string())?;
    for row in rows {
        if let Ok(id) = row.try_get_by_index::<u64>(0) {
            let _ = admin.execute_unprepared(&format!("KILL {id}")).await;
        }
    }
    Ok(())
}

pub(crate) async fn drop_database(
    backend: Backend,
    admin_url: &str,
    name: &str,
) -> Result<(), String> {
    let admin = admin_connect(admin_url).await?;
    let run = async |sql: String| {
        admin
            .execute_unprepared(&sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))
    };
    match backend {
        // FORCE ends the test's remaining connections (PostgreSQL 13+).
        Backend::Postgres => {
            run(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?
        }
        Backend::MySql => {
            end_mysql_sessions(&admin, name).await?;
            run(format!("DROP DATABASE IF EXISTS `{name}`")).await?
        }
        Backend::Sqlite => return Ok(()),
    };
    let _ = admin.close().await;
    Ok(())
}

/// `rt_<test>_<random>`: lower-case, at most 63 characters (PostgreSQL's and
/// MySQL's identifier limits), unique across parallel tests and runs.
pub(crate) fn unique_name(test: &str) -> String {
    let slug: String = test
        .rsplit("::")
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("rt_{slug}_{:016x}", rand::random::<u64>())
}

/// `url` with its database (path) replaced by `name`, query kept.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{query}")
}

/// The `host[:port]` part of `url`'s authority.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// `url` with its `host[:port]` replaced by `host_port`.
fn with_authority_host(url: &str, host_port: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let user = authority.rsplit_once('@').map_or("", |(user, _)| user);
    let at = if user.is_empty() { "" } else { "@" };
    format!("{scheme}://{user}{at}{host_port}{tail}")
}

#[cfg(test)]
mod tests {
    use super::{host_port, unique_name, with_authority_host, with_database};

    #[test]
    fn the_host_is_swapped_and_the_rest_kept() {
        let url = "mysql://root:pw@db.example:3306/rt_x?ssl-mode=disabled";
        assert_eq!(host_port(url), "db.example:3306");
        assert_eq!(
            with_authority_host(url, "127.0.0.1:4000"),
            "mysql://root:pw@127.0.0.1:4000/rt_x?ssl-mode=disabled"
        );
        assert_eq!(host_port("postgres://h/x"), "h");
        assert_eq!(
            with_authority_host("postgres://h/x", "127.0.0.1:1"),
            "postgres://127.0.0.1:1/x"
        );
    }

    #[test]
    fn with_database_swaps_only_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("mysql://root:pw@h:3306/mysql?ssl-mode=disabled", "x"),
            "mysql://root:pw@h:3306/x?ssl-mode=disabled"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }

    #[test]
    fn unique_names_are_short_safe_and_distinct() {
        let a = unique_name("it::entity::round_trip::Postgres");
        let b = unique_name("it::entity::round_trip::Postgres");
        assert_ne!(a, b);
        assert!(a.starts_with("rt_round_trip_postgres_"), "{a}");
        assert!(a.len() <= 63);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
