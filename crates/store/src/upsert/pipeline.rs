//! Chunks of one [`Store::upsert_many`] call written side by side on
//! several pooled connections ([`UpsertOptions::parallel`](super::UpsertOptions::parallel)),
//! committed strictly in order.
//!
//! Up to `width` chunks run at once, each in its own transaction on its own
//! connection. A chunk runs its statement as soon as it starts, then holds
//! its transaction open until the stream is polled for its report; only then
//! does it commit. So the chunks committed are always the ones whose reports
//! the caller was given (plus, if the stream is dropped in the middle of a
//! poll, the chunk being committed then), exactly as when chunks run one at a
//! time. Dropping the stream aborts the chunks running ahead, and they roll
//! back.
//!
//! Chunks start their transactions in order (each waits until the one before
//! it has its connection), so the chunk whose turn it is never waits for a
//! connection that a later chunk holds.
//!
//! Chunks of one call never share a conflict key, but a chunk can still
//! wait for a lock that a later chunk holds (another unique index, a
//! trigger), while the later chunk waits for its turn, which needs the
//! earlier chunk to finish: a cycle the database cannot see. So when the
//! chunk whose turn it is has not finished within [`HEAD_WAIT`] (or four
//! times the slowest statement of the call so far, if longer), the chunks
//! ahead of it are rolled back and started again once it is done.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::DbErr;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::rows::Prepared;
use super::{ChunkReport, Upsert, chunk};
use crate::Store;
use crate::error::{Error, Result};

/// How long the chunk whose turn it is may take before the chunks running
/// ahead of it are rolled back, in case it waits for one of their locks.
pub(super) const HEAD_WAIT: Duration = Duration::from_secs(1);

/// The chunks of one call in flight, and which report is next.
pub(super) struct Pipeline<E: Upsert> {
    store: Store,
    prepared: Arc<Prepared<E>>,
    /// The most chunks in flight.
    width: usize,
    /// The chunk whose report comes next.
    next: usize,
    /// Chunks `next..next + ahead.len()`, started, in order.
    ahead: VecDeque<Running<E::Model>>,
    /// The last started chunk's "has its connection" signal, which the next
    /// chunk started waits for.
    last_began: Option<oneshot::Receiver<()>>,
    /// The longest statement of this call so far, in microseconds.
    slowest: Arc<AtomicU64>,
}

/// A started chunk.
struct Running<M> {
    /// Set to `true` when it is the chunk's turn to commit.
    go: watch::Sender<bool>,
    task: AbortOnDrop<Result<ChunkReport<M>>>,
}

/// A spawned task, aborted when this is dropped: an aborted chunk drops its
/// transaction, which rolls back.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a chunk running in a pipeline tells it, and waits for.
pub(super) struct Turn {
    /// Sent once the chunk's transaction has begun (it has its connection).
    began: Mutex<Option<oneshot::Sender<()>>>,
    go: watch::Receiver<bool>,
    slowest: Arc<AtomicU64>,
}

impl Turn {
    /// Lets the next chunk take a connection: this one has its own.
    pub(super) fn began(&self) {
        let sender = self
            .began
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }

    /// Records how long the chunk's statement took.
    pub(super) fn ran(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.slowest.fetch_max(micros, Ordering::Relaxed);
    }

    /// Waits until it is the chunk's turn to commit; an error (which rolls
    /// the chunk back) if the stream was dropped first.
    pub(super) async fn wait(&self, table: &'static str) -> Result<()> {
        let mut go = self.go.clone();
        match go.wait_for(|go| *go).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::Database {
                operation: "upsert",
                table,
                code: None,
                source: DbErr::Custom(
                    "the upsert stream was dropped before this chunk's turn to commit".into(),
                ),
            }),
        }
    }
}

impl<E: Upsert> Pipeline<E> {
    pub(super) fn new(store: Store, prepared: Arc<Prepared<E>>, width: usize) -> Self {
        Self {
            store,
            prepared,
            width: width.max(1),
            next: 0,
            ahead: VecDeque::new(),
            last_began: None,
            slowest: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The next chunk's report, once it has committed (or failed); `None`
    /// after the last chunk.
    pub(super) async fn next(&mut self) -> Option<Result<ChunkReport<E::Model>>> {
        if self.next >= self.prepared.chunks.len() {
            return None;
        }
        self.start_ahead();
        let head = self.ahead.pop_front()?;
        let _ = head.go.send(true);
        let mut task = head.task;
        let result = if self.ahead.is_empty() {
            (&mut task.0).await
        } else {
            match tokio::time::timeout(self.head_wait(), &mut task.0).await {
                Ok(done) => done,
                Err(_) => {
                    tracing::debug!(
                        table = E::TABLE,
                        chunk = self.next,
                        "upsert chunk slow at its turn; rolling back the chunks ahead of it"
                    );
                    self.ahead.clear();
                    self.last_began = None;
                    (&mut task.0).await
                }
            }
        };
        self.next += 1;
        Some(match result {
            Ok(report) => report,
            Err(join) => match join.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => Err(Error::Database {
                    operation: "upsert",
                    table: E::TABLE,
                    code: None,
                    source: DbErr::Custom("the chunk's task was cancelled".into()),
                }),
            },
        })
    }

    /// How long the chunk whose turn it is may take before the chunks
    /// ahead of it are rolled back.
    fn head_wait(&self) -> Duration {
        let slowest = Duration::from_micros(self.slowest.load(Ordering::Relaxed));
        HEAD_WAIT.max(slowest.saturating_mul(4))
    }

    /// Starts chunks until `width` are in flight or none is left.
    fn start_ahead(&mut self) {
        let end = (self.next + self.width).min(self.prepared.chunks.len());
        for index in self.next + self.ahead.len()..end {
            let (began, next_began) = oneshot::channel();
            let (go, go_rx) = watch::channel(false);
            let turn = Turn {
                began: Mutex::new(Some(began)),
                go: go_rx,
                slowest: self.slowest.clone(),
            };
            let after = self.last_began.replace(next_began);
            let task = tokio::spawn(run(
                self.store.clone(),
                self.prepared.clone(),
                index,
                after,
                turn,
            ));
            self.ahead.push_back(Running {
                go,
                task: AbortOnDrop(task),
            });
        }
    }
}

/// One chunk in a pipeline: builds its arrays, waits until the chunk before
/// it has a connection, then writes and waits for its turn to commit.
async fn run<E: Upsert>(
    store: Store,
    prepared: Arc<Prepared<E>>,
    index: usize,
    after: Option<oneshot::Receiver<()>>,
    turn: Turn,
) -> Result<ChunkReport<E::Model>> {
    let Some(batch) = prepared.chunks.get(index).cloned() else {
        return Err(Error::refused(E::TABLE, format!("no chunk {index}")));
    };
    let backend = store.backend();
    let encoded = {
        let (prepared, batch) = (prepared.clone(), batch.clone());
        tokio::task::spawn_blocking(move || chunk::encode(&prepared, &batch, backend))
            .await
            .ok()
            .flatten()
    };
    if let Some(after) = after {
        // An error only means that chunk ended (or never took a connection).
        let _ = after.await;
    }
    store
        .upsert_chunk(&prepared, &batch, encoded.as_ref(), Some(&turn))
        .await
}
