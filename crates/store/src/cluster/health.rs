//! The cluster's health checks: the primary still takes writes (else find
//! the one that does), and how far each replica lags.
//!
//! A replica's lag is measured against the primary's own history: every
//! check samples the primary's commit position, and a replica that has not
//! applied the sample taken at `t` is at least `now - t` behind. An idle
//! primary therefore shows no lag, and a replica that replays nothing while
//! the primary commits shows its lag growing check by check.

use std::collections::VecDeque;
use std::sync::{PoisonError, Weak};
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::candidates::{accepts_writes, find_primary};
use super::{CommitPosition, Inner, PER_CANDIDATE, Primary};

/// The most samples of the primary's position kept, whatever the check
/// interval (enough for a minute of lag checked every 10 ms).
const MAX_SAMPLES: usize = 8192;

/// A replica's health as last checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// `host:port`.
    pub endpoint: String,
    /// Whether reads are routed to it: it answered its last check, is still
    /// a replica, and lags at most the allowed lag.
    pub healthy: bool,
    /// How far behind the primary it was at its last check (`None`: not
    /// known, e.g. a database without commit positions).
    pub lag: Option<Duration>,
    /// How far it had applied the primary's history.
    pub position: Option<CommitPosition>,
    /// Why it is not used, when it is not.
    pub problem: Option<String>,
}

/// What the checks know of one replica.
#[derive(Debug)]
pub(super) struct ReplicaState {
    /// `None` while it answers and is a replica; else why not.
    problem: Option<String>,
    lag: Option<Duration>,
    pub(super) position: Option<CommitPosition>,
}

impl ReplicaState {
    /// Before the first check: not used.
    pub(super) fn unchecked() -> Self {
        Self {
            problem: Some("not checked yet".into()),
            lag: None,
            position: None,
        }
    }

    /// Whether reads may go to this replica: it answered, and its lag is
    /// known and within `max_lag`. (A lag that cannot be measured, on a
    /// database without commit positions, bounds nothing: not used.)
    pub(super) fn usable(&self, max_lag: Duration) -> bool {
        self.problem.is_none() && self.lag.is_some_and(|lag| lag <= max_lag)
    }

    /// A read failed on it: skip it until a check finds it well again.
    pub(super) fn failed(&mut self, why: String) {
        self.problem = Some(why);
    }

    pub(super) fn status(&self, endpoint: &str) -> ReplicaStatus {
        ReplicaStatus {
            endpoint: endpoint.to_owned(),
            healthy: self.problem.is_none(),
            lag: self.lag,
            position: self.position.clone(),
            problem: self.problem.clone(),
        }
    }
}

/// Samples of the primary's commit position, oldest first.
#[derive(Debug, Default)]
pub(super) struct History {
    samples: VecDeque<(Instant, CommitPosition)>,
}

impl History {
    /// Records the primary at `position` now, forgetting samples older than
    /// `keep` (but never the newest). A sample dropped only for room makes
    /// every lag measured from the samples kept at least `keep`: see
    /// [`lag`](Self::lag).
    fn record(&mut self, now: Instant, position: CommitPosition, keep: Duration) {
        if self
            .samples
            .back()
            .is_some_and(|(_, last)| *last == position)
        {
            // Nothing committed since: the earlier sample dates the position.
        } else {
            self.samples.push_back((now, position));
        }
        while self.samples.len() > MAX_SAMPLES
            || (self.samples.len() > 1
                && self
                    .samples
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > keep))
        {
            self.samples.pop_front();
        }
    }

    /// How far behind a replica at `at` is: since the oldest sample it has
    /// not applied; zero if it has applied them all.
    fn lag(&self, now: Instant, at: &CommitPosition) -> Duration {
        self.samples
            .iter()
            .find(|(_, sample)| !at.reached(sample))
            .map_or(Duration::ZERO, |(t, _)| now.duration_since(*t))
    }

    /// The newest sample: where the primary was at the last check.
    fn newest(&self) -> Option<&CommitPosition> {
        self.samples.back().map(|(_, position)| position)
    }

    fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Checks the cluster every `every` until it is dropped.
pub(super) async fn watch(cluster: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = cluster.upgrade() else {
            return;
        };
        check(&inner).await;
    }
}

/// One round of checks: the primary, then every replica concurrently.
pub(super) async fn check(inner: &Inner) {
    let limit = inner
        .settings
        .replica_check_every
        .max(Duration::from_secs(1));
    let primary = inner
        .primary
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .db
        .clone();
    let probe = tokio::time::timeout(limit, async {
        let writable = accepts_writes(&primary).await?;
        let position = CommitPosition::of_primary(&primary).await?;
        Ok::<_, sea_orm::DbErr>((writable, position))
    })
    .await;
    match probe {
        Ok(Ok((true, position))) => {
            if let Some(position) = position {
                let keep = inner.settings.replica_max_lag + 4 * inner.settings.replica_check_every;
                inner
                    .history
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(Instant::now(), position, keep);
            }
        }
        // Slow, not gone: a busy pool is no reason to look for another
        // primary (and a wrong one found that way would be worse).
        Err(_) => {
            tracing::warn!("the primary did not answer its check within {limit:?}");
        }
        outcome => {
            let why = match outcome {
                Ok(Ok(_)) => "it is read-only".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {limit:?}"),
            };
            let at = inner
                .primary
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .at;
            let primary = inner.candidates.get(at).map(|url| super::endpoint(url));
            tracing::warn!(primary = primary.as_deref().unwrap_or("-"), %why, "the primary is not taking writes");
            if inner.candidates.len() > 1 {
                fail_over(inner).await;
            }
        }
    }
    join_all(inner.replicas.iter().map(|replica| async move {
        let asked = tokio::time::timeout(limit, async {
            let promoted = inner.backend == sea_orm::DbBackend::Postgres
                && accepts_writes(&replica.db).await?;
            let position = CommitPosition::of_replica(&replica.db).await?;
            Ok::<_, sea_orm::DbErr>((promoted, position))
        })
        .await;
        let now = Instant::now();
        let history = inner.history.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = replica.state();
        match asked {
            Ok(Ok((false, position))) => {
                state.lag = match &position {
                    Some(at) if !history.is_empty() => Some(history.lag(now, at)),
                    _ => None,
                };
                state.problem = match (&position, history.newest()) {
                    (_, None) => Some("the primary's position is not known yet".into()),
                    (None, Some(_)) => Some("it reports no position (not streaming?)".into()),
                    (
                        Some(CommitPosition::Postgres { timeline, .. }),
                        Some(CommitPosition::Postgres {
                            timeline: primary, ..
                        }),
                    ) if *timeline != super::position::UNKNOWN_TIMELINE && timeline != primary => Some(format!(
                        "on timeline {timeline}, the primary on {primary}: it does not follow it"
                    )),
                    _ => match state.lag {
                        Some(lag) if lag > inner.settings.replica_max_lag => Some(format!(
                            "lags {lag:?}, more than the allowed {:?}",
                            inner.settings.replica_max_lag
                        )),
                        _ => None,
                    },
                };
                state.position = position;
            }
            Ok(Ok((true, _))) => {
                state.problem = Some("not a replica: it takes writes (promoted?)".into());
            }
            Ok(Err(e)) => state.problem = Some(e.to_string()),
            Err(_) => state.problem = Some(format!("no answer within {limit:?}")),
        }
        if let Some(problem) = &state.problem {
            tracing::debug!(replica = %replica.endpoint, %problem, "replica skipped");
        }
    }))
    .await;
}

/// Looks for the primary among the candidates and, if it moved, makes
/// later requests write there.
async fn fail_over(inner: &Inner) {
    match find_primary(&inner.candidates, &inner.settings, PER_CANDIDATE).await {
        Ok((at, mut db)) => {
            let moved = inner
                .primary
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .at
                != at;
            if !moved {
                let _ = db.close().await;
                return;
            }
            if let Some(hook) = &inner.on_open {
                hook(&mut db);
            }
            tracing::warn!(primary = %super::endpoint(&inner.candidates[at]), "failed over to a new primary");
            let old = std::mem::replace(
                &mut *inner
                    .primary
                    .write()
                    .unwrap_or_else(PoisonError::into_inner),
                Primary { db, at },
            );
            // The old primary's history means nothing on the new one, and
            // no replica is read until a check has seen it follow the new
            // primary.
            *inner.history.lock().unwrap_or_else(PoisonError::into_inner) = History::default();
            for replica in &inner.replicas {
                replica
                    .state()
                    .failed("the primary changed; not checked against the new one yet".into());
            }
            inner
                .no_positions
                .store(false, std::sync::atomic::Ordering::Relaxed);
            // Closing waits for the connections still checked out (requests
            // stuck on the old primary): not in the way of the next check.
            tokio::spawn(async move { old.db.close().await });
        }
        Err(e) => tracing::warn!(error = %e, "no primary found yet"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test inputs are literals
    use super::*;

    fn pg(lsn: u64) -> CommitPosition {
        CommitPosition::Postgres { timeline: 1, lsn }
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_sample_not_applied() {
        let t0 = Instant::now();
        let keep = Duration::from_secs(60);
        let mut history = History::default();
        for (s, lsn) in [(0, 100), (1, 100), (2, 200), (3, 300)] {
            history.record(t0 + Duration::from_secs(s), pg(lsn), keep);
        }
        let now = t0 + Duration::from_secs(4);
        assert_eq!(history.lag(now, &pg(300)), Duration::ZERO);
        assert_eq!(history.lag(now, &pg(250)), Duration::from_secs(1));
        // 200 was first seen at 2 s (the repeated 100 kept its first date).
        assert_eq!(history.lag(now, &pg(150)), Duration::from_secs(2));
        assert_eq!(history.lag(now, &pg(50)), Duration::from_secs(4));
    }

    #[test]
    fn old_samples_are_forgotten_but_the_newest_is_kept() {
        let t0 = Instant::now();
        let mut history = History::default();
        history.record(t0, pg(1), Duration::from_secs(1));
        history.record(t0 + Duration::from_secs(5), pg(2), Duration::from_secs(1));
        assert_eq!(history.samples.len(), 1);
        history.record(t0 + Duration::from_secs(9), pg(2), Duration::from_secs(1));
        assert_eq!(
            history.samples.len(),
            1,
            "an unchanged position is not a new sample"
        );
    }
}
