//! Finding the primary among several candidate hosts: a `DATABASE_URL` may
//! list them (`postgres://user@db1:5432,db2:5432/roster`, as libpq's
//! connection strings do). The primary is the first candidate that answers
//! and accepts writes: on PostgreSQL, not in recovery; on MySQL/MariaDB,
//! not `read_only`.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use super::ClusterError;
use crate::PoolSettings;

/// The single-host URLs `url` lists: itself when it names one host;
/// otherwise one URL per comma-separated `host[:port]` of its authority,
/// each with the same scheme, credentials, path and parameters.
///
/// ```
/// use roster_store::cluster::candidate_urls;
///
/// let urls = candidate_urls("postgres://app:pw@db1:5432,db2:5433/roster?sslmode=disable")?;
/// assert_eq!(urls, [
///     "postgres://app:pw@db1:5432/roster?sslmode=disable",
///     "postgres://app:pw@db2:5433/roster?sslmode=disable",
/// ]);
/// assert_eq!(candidate_urls("sqlite://roster.db")?, ["sqlite://roster.db"]);
/// # Ok::<(), roster_store::cluster::ClusterError>(())
/// ```
pub fn candidate_urls(url: &str) -> Result<Vec<String>, ClusterError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(vec![url.to_owned()]);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    if !hosts.contains(',') {
        return Ok(vec![url.to_owned()]);
    }
    hosts
        .split(',')
        .map(|host| {
            if host.is_empty() {
                return Err(ClusterError::BadUrl {
                    why: "an empty host in the list of candidates",
                });
            }
            Ok(format!("{scheme}://{userinfo}{host}{tail}"))
        })
        .collect()
}

/// Whether the server behind `db` takes writes.
pub(super) async fn accepts_writes(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT (NOT pg_is_in_recovery())::int::int8 AS w",
        DbBackend::MySql => "SELECT CAST(@@global.read_only = 0 AS SIGNED) AS w",
        _ => return Ok(true),
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    Ok(row.map(|row| row.try_get::<i64>("", "w")).transpose()? == Some(1))
}

/// Connects to every candidate and returns the one that takes writes, with
/// its index. Each candidate gets at most `per_candidate`. If several take
/// writes (an old primary back without having been turned into a replica:
/// split brain), none is chosen: writing to the wrong one would lose data.
pub(super) async fn find_primary(
    candidates: &[String],
    settings: &PoolSettings,
    per_candidate: Duration,
) -> Result<(usize, DatabaseConnection), ClusterError> {
    let mut tried = Vec::with_capacity(candidates.len());
    let mut found: Option<(usize, DatabaseConnection)> = None;
    let mut writable = Vec::new();
    for (i, url) in candidates.iter().enumerate() {
        let attempt = async {
            let db = super::open(url, settings, false).await?;
            match accepts_writes(&db).await {
                Ok(true) => Ok(Some(db)),
                Ok(false) => {
                    let _ = db.close().await;
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        let outcome = match tokio::time::timeout(per_candidate, attempt).await {
            Ok(Ok(Some(db))) => {
                writable.push(super::endpoint(url));
                if found.is_none() {
                    found = Some((i, db));
                } else {
                    let _ = db.close().await;
                }
                "takes writes".to_owned()
            }
            Ok(Ok(None)) => "read-only (a replica)".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {per_candidate:?}"),
        };
        tried.push(format!("{}: {outcome}", super::endpoint(url)));
    }
    match found {
        Some((_, db)) if writable.len() > 1 => {
            let _ = db.close().await;
            Err(ClusterError::SeveralPrimaries { writable })
        }
        Some(found) => Ok(found),
        None => Err(ClusterError::NoPrimary { tried }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test inputs are literals
    use super::*;

    #[test]
    fn a_list_of_hosts_becomes_one_url_per_host() {
        assert_eq!(
            candidate_urls("postgres://u@a,b:5433/db").unwrap(),
            ["postgres://u@a/db", "postgres://u@b:5433/db"]
        );
        assert_eq!(
            candidate_urls("mysql://root@h1:3311,h2:3312").unwrap(),
            ["mysql://root@h1:3311", "mysql://root@h2:3312"]
        );
        // A comma in the password is not a host separator.
        assert_eq!(
            candidate_urls("postgres://u:p,q@a/db").unwrap(),
            ["postgres://u:p,q@a/db"]
        );
        assert!(candidate_urls("postgres://u@a,,b/db").is_err());
    }
}
