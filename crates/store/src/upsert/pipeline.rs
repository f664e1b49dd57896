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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::DbErr;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::rows::Prepared;
use super::{ChunkReport, Upsert};
use crate::Store;
use crate::error::{Error, Result};

/// The chunks of one call in flight, and which report is next.
pub(super) struct Pipeline<E: Upsert> {
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
    wait_ahead: Duration,
    /// The chunk rolled back because its turn did not come in time.
    gave_way: AtomicBool,
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
    /// if the stream was dropped, returns an error, which rolls the chunk
    /// back.
    pub(super) async fn wait(&self, table: &'static str, statement: Duration) -> Result<()> {
        let limit = self.wait_ahead.max(statement.saturating_mul(2));
        let mut go = self.go.clone();
        let outcome = tokio::time::timeout(limit, go.wait_for(|go| *go)).await;
        let why = match outcome {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(_)) => "the upsert stream was dropped before this chunk's turn to commit",
            Err(_) => {
                self.gave_way.store(true, Ordering::Relaxed);
                "the chunk gave way: its turn to commit did not come in time"
            }
        };
        Err(Error::Database {
            operation: "upsert",
            table,
            code: None,
            source: DbErr::Custom(why.into()),
        })
    }

    /// Waits, holding nothing, until it is the chunk's turn; `false` if
    /// the stream was dropped first.
    async fn due(&self) -> bool {
        let mut go = self.go.clone();
        go.wait_for(|go| *go).await.is_ok()
    }
}

impl<E: Upsert> Pipeline<E> {
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
        if self.next >= self.prepared.chunks.len() {
            return None;
        }
        self.start_ahead();
        let head = self.ahead.pop_front()?;
        let _ = head.go.send(true);
        let mut task = head.task;
        let result = (&mut task.0).await;
        self.next += 1;
        Some(match result {
            Ok(report) => report,
            Err(join) => match join.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // The runtime is shutting down; the chunk may have been
                // committing.
                Err(_) => Err(Error::CommitUnknown {
                    source: DbErr::Custom("the chunk's task was cancelled".into()),
                }),
            },
        })
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
                wait_ahead: self.wait_ahead,
                gave_way: AtomicBool::new(false),
            };
            let after = self.last_began.replace(next_began);
            let task = self.runtime.spawn(run(
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

/// One chunk in a pipeline: builds its arrays (on a blocking thread), waits until the chunk before
/// it has a connection, then writes and waits for its turn to commit. A
/// failure while running ahead (or giving way) is provisional: the chunk is
/// written again at its turn.
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
    let encoded = match super::encode_ahead(&prepared, index, backend) {
        Some(building) => building.await.ok().flatten(),
        None => None,
    };
    if let Some(after) = after {
        // An error only means that chunk ended (or never took a connection).
        let _ = after.await;
    }
    let due = turn.is_due();
    let first = store
        .upsert_chunk(&prepared, &batch, encoded.as_ref(), Some(&turn), due)
        .await;
    if first.is_ok() || due {
        return first;
    }
    if !turn.gave_way.load(Ordering::Relaxed) {
        tracing::debug!(
            table = E::TABLE,
            chunk = index,
            "upsert chunk failed while running ahead; writing it again at its turn"
        );
    }
    if !turn.due().await {
        return first;
    }
    store
        .upsert_chunk(&prepared, &batch, encoded.as_ref(), Some(&turn), true)
        .await
}
