//! [`CommitPosition`]: a point in the primary's commit history, the token
//! behind causal reads. PostgreSQL's is a WAL LSN, MariaDB's a GTID
//! position (one sequence number per replication domain). Its text form is
//! what a client carries from a write's response to a later request.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

/// The longest token accepted, in bytes: a GTID position of a few dozen
/// domains. Anything longer is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 512;

/// The timeline of a replica that does not let its role see it
/// (`pg_stat_wal_receiver` needs superuser or `pg_read_all_stats`): its
/// position is compared by LSN alone.
pub(crate) const UNKNOWN_TIMELINE: u32 = 0;

/// The most replication domains a MariaDB position may name.
const MAX_DOMAINS: usize = 32;

/// A point in the primary's commit history: every commit up to it is
/// included in a read from a server that has reached it.
///
/// Text form: `pg:<timeline>:<LSN>` (PostgreSQL, e.g. `pg:1:0/3000148`) or
/// `gtid:<domain>-<server>-<seq>[,…]` (MariaDB, e.g. `gtid:0-1-42`). A
/// PostgreSQL position is reached only on its own timeline: after a
/// failover (a new timeline) a replica still on the old one reaches none of
/// the new primary's positions, and positions handed out before the
/// failover are read from the primary.
///
/// ```
/// use roster_store::CommitPosition;
///
/// let written: CommitPosition = "pg:1:0/3000148".parse()?;
/// let replayed: CommitPosition = "pg:1:0/3000200".parse()?;
/// assert!(replayed.reached(&written));
/// assert!(!written.reached(&replayed));
/// assert_eq!(written.to_string(), "pg:1:0/3000148");
/// // Another timeline (a failover happened): not reached, whatever the LSN.
/// assert!(!"pg:2:0/9000000".parse::<CommitPosition>()?.reached(&written));
///
/// let gtid: CommitPosition = "gtid:0-1-42,1-2-7".parse()?;
/// assert!("gtid:0-1-42,1-3-9".parse::<CommitPosition>()?.reached(&gtid));
/// assert!("pg:1:0/garbage".parse::<CommitPosition>().is_err());
/// # Ok::<(), roster_store::BadPosition>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CommitPosition {
    /// A PostgreSQL WAL location (log sequence number) on a timeline.
    Postgres {
        /// The timeline: 1, and one more after each promotion.
        timeline: u32,
        /// The WAL location.
        lsn: u64,
    },
    /// A MariaDB GTID position: per replication domain, the server id and
    /// sequence number of its last transaction.
    Gtid(BTreeMap<u32, (u32, u64)>),
}

/// Why a token is not a [`CommitPosition`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a commit position ({why}); expected `pg:<hex>/<hex>` or `gtid:<domain>-<server>-<seq>[,…]`"
)]
pub struct BadPosition {
    why: &'static str,
}

impl BadPosition {
    fn new(why: &'static str) -> Self {
        Self { why }
    }
}

impl CommitPosition {
    /// Whether a server at `self` has every commit up to `target`. Positions
    /// of different backends never reach each other.
    pub fn reached(&self, target: &CommitPosition) -> bool {
        match (self, target) {
            (
                Self::Postgres { timeline, lsn },
                Self::Postgres {
                    timeline: target_timeline,
                    lsn: target_lsn,
                },
            ) => {
                (*timeline == UNKNOWN_TIMELINE || timeline == target_timeline) && lsn >= target_lsn
            }
            (Self::Gtid(at), Self::Gtid(target)) => target
                .iter()
                .all(|(domain, &(_, seq))| at.get(domain).is_some_and(|&(_, s)| s >= seq)),
            _ => false,
        }
    }

    /// The backend whose history this position is in.
    pub fn backend(&self) -> DbBackend {
        match self {
            Self::Postgres { .. } => DbBackend::Postgres,
            Self::Gtid(_) => DbBackend::MySql,
        }
    }

    /// The primary's position now: every commit acknowledged so far is at
    /// or before it. `None` where the database keeps no such history
    /// (SQLite; MariaDB/MySQL without a binary log).
    pub async fn of_primary(db: &DatabaseConnection) -> Result<Option<Self>, DbErr> {
        match db.get_database_backend() {
            // The insert location: past every commit record written, even
            // one still in the WAL buffers (`synchronous_commit = off`).
            DbBackend::Postgres => {
                let sql = "SELECT pg_current_wal_insert_lsn()::text AS p, \
                           substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8) AS t";
                Self::query(db, sql).await
            }
            DbBackend::MySql => Self::query(db, "SELECT @@global.gtid_binlog_pos AS p").await,
            _ => Ok(None),
        }
    }

    /// How far a replica has applied the primary's history: PostgreSQL's
    /// replay location; on MariaDB the later, per domain, of what it
    /// binlogged and what it applied as a replica.
    pub async fn of_replica(db: &DatabaseConnection) -> Result<Option<Self>, DbErr> {
        match db.get_database_backend() {
            // The timeline it receives, where the role may see it (else
            // unknown: compared by LSN alone).
            DbBackend::Postgres => {
                let sql = "SELECT pg_last_wal_replay_lsn()::text AS p, \
                           (SELECT lpad(to_hex(received_tli), 8, '0') FROM pg_stat_wal_receiver) AS t";
                Self::query(db, sql).await
            }
            DbBackend::MySql => {
                let binlog = Self::query(db, "SELECT @@global.gtid_binlog_pos AS p").await?;
                let applied = Self::query(db, "SELECT @@global.gtid_slave_pos AS p").await?;
                Ok(merge(binlog, applied))
            }
            _ => Ok(None),
        }
    }

    async fn query(db: &DatabaseConnection, sql: &str) -> Result<Option<Self>, DbErr> {
        let backend = db.get_database_backend();
        let Some(row) = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
        else {
            return Ok(None);
        };
        let Some(reported) = row.try_get::<Option<String>>("", "p")? else {
            return Ok(None);
        };
        let text = reported.as_str();
        let parsed = match backend {
            DbBackend::Postgres => {
                let timeline = row
                    .try_get::<Option<String>>("", "t")?
                    .unwrap_or_else(|| UNKNOWN_TIMELINE.to_string());
                u32::from_str_radix(&timeline, 16)
                    .map_err(|_| BadPosition::new("bad timeline"))
                    .and_then(|timeline| {
                        parse_lsn(text).map(|lsn| Self::Postgres { timeline, lsn })
                    })
            }
            _ if text.trim().is_empty() => return Ok(None),
            _ => parse_gtid(text).map(Self::Gtid),
        };
        parsed
            .map(Some)
            .map_err(|e| DbErr::Custom(format!("the server reported {text:?}: {e}")))
    }
}

/// Per domain, the later of two GTID positions.
fn merge(a: Option<CommitPosition>, b: Option<CommitPosition>) -> Option<CommitPosition> {
    match (a, b) {
        (Some(CommitPosition::Gtid(mut a)), Some(CommitPosition::Gtid(b))) => {
            for (domain, (server, seq)) in b {
                let entry = a.entry(domain).or_insert((server, seq));
                if seq > entry.1 {
                    *entry = (server, seq);
                }
            }
            Some(CommitPosition::Gtid(a))
        }
        (a, b) => a.or(b),
    }
}

impl fmt::Display for CommitPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres { timeline, lsn } => {
                write!(f, "pg:{timeline}:{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
            }
            Self::Gtid(domains) => {
                f.write_str("gtid:")?;
                for (i, (domain, (server, seq))) in domains.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{domain}-{server}-{seq}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for CommitPosition {
    type Err = BadPosition;

    fn from_str(token: &str) -> Result<Self, BadPosition> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(BadPosition::new("too long"));
        }
        if let Some(rest) = token.strip_prefix("pg:") {
            let (timeline, lsn) = rest
                .split_once(':')
                .ok_or(BadPosition::new("a PostgreSQL position is timeline:LSN"))?;
            let timeline: u32 = decimal(timeline, "timeline out of range")?;
            return parse_lsn(lsn).map(|lsn| Self::Postgres { timeline, lsn });
        }
        if let Some(gtid) = token.strip_prefix("gtid:") {
            return parse_gtid(gtid).map(Self::Gtid);
        }
        Err(BadPosition::new("unknown kind"))
    }
}

/// `XXXXXXXX/XXXXXXXX`, each half at most 8 hex digits.
fn parse_lsn(text: &str) -> Result<u64, BadPosition> {
    let (high, low) = text
        .split_once('/')
        .ok_or(BadPosition::new("an LSN has a `/`"))?;
    let half = |part: &str| {
        if part.is_empty() || part.len() > 8 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadPosition::new("an LSN half is 1 to 8 hex digits"));
        }
        u32::from_str_radix(part, 16).map_err(|_| BadPosition::new("bad hex"))
    };
    Ok((u64::from(half(high)?) << 32) | u64::from(half(low)?))
}

/// `domain-server-seq[,domain-server-seq…]`, one entry per domain.
fn parse_gtid(text: &str) -> Result<BTreeMap<u32, (u32, u64)>, BadPosition> {
    let mut domains = BTreeMap::new();
    for entry in text.split(',').map(str::trim) {
        let mut parts = entry.split('-');
        let (Some(domain), Some(server), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadPosition::new("a GTID is domain-server-seq"));
        };
        let domain: u32 = decimal(domain, "domain out of range")?;
        let server: u32 = decimal(server, "server id out of range")?;
        let seq: u64 = decimal(seq, "sequence number out of range")?;
        if domains.insert(domain, (server, seq)).is_some() {
            return Err(BadPosition::new("a domain appears twice"));
        }
        if domains.len() > MAX_DOMAINS {
            return Err(BadPosition::new("too many domains"));
        }
    }
    Ok(domains)
}

/// A decimal number of digits only (no sign, no spaces).
fn decimal<T: FromStr>(text: &str, out_of_range: &'static str) -> Result<T, BadPosition> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadPosition::new("a GTID part is a decimal number"));
    }
    text.parse().map_err(|_| BadPosition::new(out_of_range))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test inputs are literals
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for token in [
            "pg:1:0/0",
            "pg:1:1/3000148",
            "pg:7:FFFFFFFF/FFFFFFFF",
            "gtid:0-1-42,7-2-9",
        ] {
            let position: CommitPosition = token.parse().unwrap();
            assert_eq!(position.to_string(), token);
        }
        // PostgreSQL prints hex in capitals; lower case parses the same.
        assert_eq!(
            "pg:1:a/b".parse::<CommitPosition>().unwrap(),
            CommitPosition::Postgres {
                timeline: 1,
                lsn: (10 << 32) | 11
            }
        );
    }

    #[test]
    fn hostile_tokens_are_refused() {
        let long = format!("gtid:{}", "0-1-1,".repeat(200));
        for token in [
            "",
            "pg:",
            "pg:0",
            "pg:0/1",
            "pg:1:0",
            "pg:1:/1",
            "pg:x:0/1",
            "pg:99999999999:0/1",
            "pg:1:123456789/0",
            "pg:1:0/xyz",
            "pg:1:-1/0",
            "gtid:",
            "gtid:0-1",
            "gtid:0-1-2-3",
            "gtid:0-1-x",
            "gtid:0-1-1,0-2-2",
            "gtid:99999999999-1-1",
            "mysql:0-1-1",
            long.as_str(),
        ] {
            assert!(token.parse::<CommitPosition>().is_err(), "{token:?}");
        }
    }

    #[test]
    fn a_gtid_position_is_reached_domain_by_domain() {
        let target: CommitPosition = "gtid:0-1-10,1-1-5".parse().unwrap();
        let behind_in_one: CommitPosition = "gtid:0-1-11,1-1-4".parse().unwrap();
        let missing_one: CommitPosition = "gtid:0-1-11".parse().unwrap();
        let ahead: CommitPosition = "gtid:0-2-10,1-3-6,2-1-1".parse().unwrap();
        assert!(!behind_in_one.reached(&target));
        assert!(!missing_one.reached(&target));
        assert!(ahead.reached(&target));
        let lsn = CommitPosition::Postgres {
            timeline: 1,
            lsn: u64::MAX,
        };
        assert!(!lsn.reached(&target));
    }

    #[test]
    fn merging_keeps_the_later_sequence_per_domain() {
        let a = "gtid:0-1-10,1-1-5".parse().ok();
        let b = "gtid:0-2-8,2-1-3".parse().ok();
        assert_eq!(merge(a, b).unwrap().to_string(), "gtid:0-1-10,1-1-5,2-1-3");
    }
}
