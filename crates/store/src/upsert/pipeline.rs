//! Chunks of one [`Store::upsert_many`] call written side by side on
//! several pooled connections ([`UpsertOptions::parallel`]), committed
//! strictly in order.
//!
//! Up to `width` chunks run at once, each in its own transaction on its own
//! connection. A chunk runs its statement as soon as it starts, then holds
//! its transaction open until the stream is polled for its report; only then
//! does it commit. So the chunks committed are always the ones whose reports
//! the caller was given (plus, if the stream is dropped in the middle of a
//! poll, the chunk being committed then), as when chunks run one at a time.
//! Dropping the stream aborts the chunks running ahead, and they roll back.
//!
//! A chunk written ahead holds its connection and row locks while it waits.
//! It waits at most [`UpsertOptions::wait_ahead`] (or twice its own
//! statement's time, if longer), then rolls back and is written again at
//! its turn. That bounds how long anyone can wait on its locks: the caller
//! between two polls, another writer, or an earlier chunk of the same call
//! that needs a lock it holds (a second unique key, a trigger), which
//! would otherwise be a cycle the database cannot see.
//!
//! A chunk that fails while running ahead ran before the chunks ahead of it
//! committed, so it may have failed for want of their rows (a foreign key
//! to a row an earlier chunk inserts, a unique value an earlier chunk
//! frees). Such a failure is provisional: the chunk is written again at its
//! turn, and only that result is reported.
//!
//! Chunks start their transactions in order (each waits until the one before
//! it has its connection).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::rows::{Batch, Prepared};
use roster_entity::StoreEntity;

use super::ChunkReport;
use crate::Store;
use crate::error::{Error, Result};
use crate::transaction::TxError;

/// The chunks of one call in flight, and which report is next.
pub(super) struct Pipeline<E: StoreEntity> {
    store: Store,
    prepared: Arc<Prepared<E>>,
    /// Where the chunks' tasks run (the runtime the stream was made on).
    runtime: Handle,
    /// The most chunks in flight.
    width: usize,
    /// How long a chunk written ahead waits for its turn, at least.
    wait_ahead: Duration,
    /// The chunk whose report comes next.
    next: usize,
    /// Chunks `next..next + ahead.len()`, started, in order.
    ahead: VecDeque<Running<E::Model>>,
    /// The last started chunk's "has its connection" signal, which the next
    /// chunk started waits for.
    last_began: Option<oneshot::Receiver<()>>,
}

/// A started chunk.
struct Running<M> {
    /// Set to `true` when it is the chunk's turn to commit.
    go: watch::Sender<bool>,
    /// The chunk's report; `None` if it saw the stream dropped first.
    task: AbortOnDrop<Option<Result<ChunkReport<M>>>>,
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
    wait_ahead: Duration,
}

/// Why a chunk written ahead of its turn rolled back without committing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Missed {
    /// Its turn did not come within the wait allowed; it is written again
    /// at its turn.
    #[error("the chunk gave way: its turn to commit did not come in time")]
    GaveWay,
    /// The stream was dropped: its turn will never come.
    #[error("the upsert stream was dropped before the chunk's turn to commit")]
    StreamDropped,
}

/// How a chunk written ahead of its turn failed. Never reaches the caller:
/// the chunk is written again at its turn, and only that result is reported.
#[derive(Debug, thiserror::Error)]
pub(super) enum Ahead {
    /// The chunk failed as any chunk can, though perhaps only for want of
    /// the rows of the chunks before it.
    #[error(transparent)]
    Failed(#[from] Error),
    /// The chunk rolled back before its turn came.
    #[error(transparent)]
    Missed(Missed),
}

impl TxError for Ahead {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Failed(error) if error.is_retryable())
    }
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

    /// Whether it is the chunk's turn: every chunk before it has committed
    /// or failed, and reported.
    fn is_due(&self) -> bool {
        *self.go.borrow()
    }

    /// Waits, holding the chunk's transaction, until it is the chunk's turn
    /// to commit. After `wait_ahead` or twice `statement` (the longer), or
    /// if the stream was dropped, says why the turn was missed; the chunk
    /// then rolls back.
    pub(super) async fn wait(&self, statement: Duration) -> Result<(), Missed> {
        let limit = self.wait_ahead.max(statement.saturating_mul(2));
        let mut go = self.go.clone();
        match tokio::time::timeout(limit, go.wait_for(|go| *go)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Missed::StreamDropped),
            Err(_) => Err(Missed::GaveWay),
        }
    }

    /// Waits, holding nothing, until it is the chunk's turn; `false` if
    /// the stream was dropped first.
    async fn due(&self) -> bool {
        let mut go = self.go.clone();
        go.wait_for(|go| *go).await.is_ok()
    }
}

impl<E: StoreEntity> Pipeline<E> {
    pub(super) fn new(
        store: Store,
        prepared: Arc<Prepared<E>>,
        runtime: Handle,
        width: usize,
        wait_ahead: Duration,
    ) -> Self {
        Self {
            store,
            prepared,
            runtime,
            width: width.max(1),
            wait_ahead,
            next: 0,
            ahead: VecDeque::new(),
            last_began: None,
        }
    }

    /// The next chunk's report, once it has committed (or failed); `None`
    /// after the last chunk.
    pub(super) async fn next(&mut self) -> Option<Result<ChunkReport<E::Model>>> {
        let rows = self.prepared.chunks.get(self.next)?.input.clone();
        self.start_ahead();
        let head = self.ahead.pop_front()?;
        let _ = head.go.send(true);
        let mut task = head.task;
        let result = (&mut task.0).await;
        self.next += 1;
        let interrupted = || Error::ChunkInterrupted {
            table: E::TABLE,
            rows,
        };
        Some(match result {
            Ok(Some(report)) => report,
            // Only a chunk that saw the stream dropped ends without a
            // report, and the stream is here; said as an interruption all
            // the same.
            Ok(None) => Err(interrupted()),
            Err(join) => match join.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // The runtime is shutting down; the chunk may have been
                // committing.
                Err(_) => Err(interrupted()),
            },
        })
    }

    /// Starts chunks until `width` are in flight or none is left.
    fn start_ahead(&mut self) {
        let end = (self.next + self.width).min(self.prepared.chunks.len());
        for index in self.next + self.ahead.len()..end {
            let Some(batch) = self.prepared.chunks.get(index).cloned() else {
                break;
            };
            let (began, next_began) = oneshot::channel();
            let (go, go_rx) = watch::channel(false);
            let turn = Turn {
                began: Mutex::new(Some(began)),
                go: go_rx,
                wait_ahead: self.wait_ahead,
            };
            let after = self.last_began.replace(next_began);
            let task = self.runtime.spawn(run(
                self.store.clone(),
                self.prepared.clone(),
                (index, batch),
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

/// One chunk in a pipeline, chunk `index` of the call: builds its arrays
/// (on a blocking thread), waits until the chunk before it has a
/// connection, then writes and, unless its turn has come, waits for it to
/// commit. A failure while running ahead (or giving way) is provisional:
/// the chunk is written again at its turn. `None`: the stream was dropped
/// before the chunk's turn.
async fn run<E: StoreEntity>(
    store: Store,
    prepared: Arc<Prepared<E>>,
    (index, batch): (usize, Batch),
    after: Option<oneshot::Receiver<()>>,
    turn: Turn,
) -> Option<Result<ChunkReport<E::Model>>> {
    let backend = store.backend();
    let encoded = match super::encode_ahead(&prepared, index, backend) {
        Some(building) => building.await.ok().flatten(),
        None => None,
    };
    if let Some(after) = after {
        // An error only means that chunk ended (or never took a connection).
        let _ = after.await;
    }
    if !turn.is_due() {
        let ahead = store
            .upsert_chunk_ahead(&prepared, &batch, encoded.as_ref(), &turn)
            .await;
        match ahead {
            Ok(report) => return Some(Ok(report)),
            Err(Ahead::Missed(Missed::StreamDropped)) => return None,
            Err(Ahead::Missed(Missed::GaveWay)) => {}
            Err(Ahead::Failed(error)) => tracing::debug!(
                table = E::TABLE,
                chunk = index,
                %error,
                "upsert chunk failed while running ahead; writing it again at its turn"
            ),
        }
        if !turn.due().await {
            return None;
        }
    }
    Some(
        store
            .upsert_chunk(&prepared, &batch, encoded.as_ref(), Some(&turn))
            .await,
    )
}
