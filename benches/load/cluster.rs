//! `--backend pg-cluster`: the run's database on a PostgreSQL primary with
//! a streaming replica (`ROSTER_TEST_PG_REPLICA`, admin URLs: primary first,
//! replica second), waiting for the replica to replay what the primary
//! wrote, and counting the transactions each node ran.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// `ROSTER_TEST_PG_REPLICA` when unset: the loopback test cluster.
const DEFAULT_URLS: &str =
    "postgres://postgres@127.0.0.1:5440/postgres,postgres://postgres@127.0.0.1:5441/postgres";

/// How long the replica may take to replay the primary's writes.
const REPLAY_LIMIT: Duration = Duration::from_secs(60);

/// The run's database name, on the primary and (replicated) on the replica.
pub const DATABASE: &str = "roster_load";

/// The cluster's admin URLs (database `postgres`).
#[derive(Debug, Clone)]
pub struct Nodes {
    /// The primary's admin URL.
    pub primary: String,
    /// The streaming replica's admin URL.
    pub replica: String,
}

impl Nodes {
    /// The first two URLs of `ROSTER_TEST_PG_REPLICA` (or the defaults).
    pub fn from_env() -> anyhow::Result<Self> {
        let urls = std::env::var("ROSTER_TEST_PG_REPLICA").unwrap_or_else(|_| DEFAULT_URLS.into());
        let mut urls = urls.split(',').map(str::trim).filter(|u| !u.is_empty());
        let primary = urls
            .next()
            .context("ROSTER_TEST_PG_REPLICA names no primary")?;
        let replica = urls
            .next()
            .context("ROSTER_TEST_PG_REPLICA names no replica after the primary")?;
        Ok(Self {
            primary: primary.to_owned(),
            replica: replica.to_owned(),
        })
    }

    /// The run's database on the primary.
    pub fn primary_url(&self) -> anyhow::Result<String> {
        with_database(&self.primary, DATABASE)
    }

    /// The run's database on the replica.
    pub fn replica_url(&self) -> anyhow::Result<String> {
        with_database(&self.replica, DATABASE)
    }

    /// Drops and creates the run's database on the primary, and waits for
    /// the replica to have it.
    pub async fn fresh_database(&self) -> anyhow::Result<()> {
        let db = Database::connect(self.primary.as_str())
            .await
            .with_context(|| format!("connecting to the primary {}", self.primary))?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
            format!("CREATE DATABASE {DATABASE}"),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        db.close().await?;
        self.wait_for_replay().await?;
        Ok(())
    }

    /// Waits until the replica has replayed the primary's WAL up to where
    /// it is now (`pg_last_wal_replay_lsn() >= pg_current_wal_lsn()`);
    /// returns how long that took.
    pub async fn wait_for_replay(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let primary = Database::connect(self.primary.as_str()).await?;
        let lsn = text(&primary, "SELECT pg_current_wal_lsn()::text").await?;
        primary.close().await?;
        let replica = Database::connect(self.replica.as_str())
            .await
            .with_context(|| format!("connecting to the replica {}", self.replica))?;
        let caught_up =
            format!("SELECT coalesce((pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn)::text, 'none')");
        loop {
            match text(&replica, &caught_up).await.as_deref() {
                Ok("true") => break,
                Ok("false") => {}
                Ok(_) => bail!("{} is not a replica (no replay position)", self.replica),
                Err(e) => bail!("asking the replica for its replay position: {e:#}"),
            }
            if started.elapsed() > REPLAY_LIMIT {
                bail!(
                    "the replica has not replayed the primary's {lsn} after {} s",
                    REPLAY_LIMIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        replica.close().await?;
        Ok(started.elapsed())
    }

    /// Transactions (committed and rolled back) the run's database has run
    /// so far on the primary and on the replica, from `pg_stat_database`.
    pub async fn transactions(&self) -> anyhow::Result<(u64, u64)> {
        let count = |url: String| async move {
            let db = Database::connect(url.as_str()).await?;
            let n = text(
                &db,
                &format!(
                    "SELECT (xact_commit + xact_rollback)::text FROM pg_stat_database \
                     WHERE datname = '{DATABASE}'"
                ),
            )
            .await?;
            db.close().await?;
            anyhow::Ok(n.parse::<u64>()?)
        };
        Ok((
            count(self.primary.clone()).await?,
            count(self.replica.clone()).await?,
        ))
    }
}

/// `url` with its database (the last path segment) replaced by `name`,
/// query string kept.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let (base, _) = head
        .rsplit_once('/')
        .filter(|(base, _)| base.contains("://") && !base.ends_with('/'))
        .with_context(|| format!("{url} does not end in /<database>"))?;
    Ok(match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    })
}

/// The one text column of the one row `sql` returns.
async fn text(db: &DatabaseConnection, sql: &str) -> anyhow::Result<String> {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("a row")?
        .try_get_by_index::<Option<String>>(0)?
        .context("a value")
}
