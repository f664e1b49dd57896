//! [`StatementLog`]: the SQL statements a connection issued, for tests that
//! assert how many queries something made.

use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// Statements recorded by a connection from
/// [`TestDb::logged_conn`](crate::TestDb::logged_conn), in issue order.
#[derive(Debug, Clone, Default)]
pub struct StatementLog {
    statements: Arc<Mutex<Vec<String>>>,
}

impl StatementLog {
    fn push(&self, sql: &str) {
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sql.to_owned());
    }

    /// Every statement so far.
    pub fn all(&self) -> Vec<String> {
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many statements so far.
    pub fn len(&self) -> usize {
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none was issued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many `SELECT` statements so far.
    pub fn selects(&self) -> usize {
        self.all()
            .iter()
            .filter(|sql| sql.trim_start().to_ascii_uppercase().starts_with("SELECT"))
            .count()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A new pool to `url` whose every statement is recorded in the returned log.
pub(crate) async fn connect_logged(url: &str) -> (DatabaseConnection, StatementLog) {
    let mut conn = Database::connect(ConnectOptions::new(url).sqlx_logging(false).to_owned())
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let log = StatementLog::default();
    let sink = log.clone();
    conn.set_metric_callback(move |info| sink.push(&info.statement.sql));
    (conn, log)
}
