//! Driving a batch: coalescing, then running its query inline in the
//! caller's task; the hand-off when the driver goes away; answering.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::runtime::Handle;
use tracing::Instrument;

use super::batch::{Batch, BatchResult};
use super::{Shared, lock};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::options::Answers;

/// How many times a driver yields at most before sealing its batch.
const MAX_YIELDS: usize = 64;
/// How many consecutive yields without a new key (and with no pending
/// wake-ups in the scope) end coalescing. Two, not one: on the multi-thread
/// runtime the wake-ups that resume the caller's sibling futures may come
/// from another worker while this one polls; a second round covers them.
const QUIET_YIELDS: usize = 2;

/// A batch's work (coalescing, then its query), boxed so that it can move
/// to a spawned task mid-way.
type Running = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Drives `batch` (opened by the caller) in the caller's task: coalesces,
/// then seals it and runs its query. If the caller's future is dropped
/// first, the batch is handed off (see [`Driver`]).
pub(super) async fn drive<V: Send + Sync + 'static, K: Key>(
    shared: &Arc<Shared<V, K>>,
    batch: &Arc<Batch<V, K>>,
) -> Result<()> {
    let mut driver = Driver {
        shared,
        batch,
        runtime: Handle::try_current().ok(),
        running: None,
        done: false,
    };
    if driver.runtime.is_none() {
        return Err(Error::NoRuntime);
    }
    driver.run().await;
    Ok(())
}

/// Coalesces, then runs the batch.
async fn coalesce_and_run<V: Send + Sync + 'static, K: Key>(
    shared: Arc<Shared<V, K>>,
    batch: Arc<Batch<V, K>>,
) {
    coalesce(&shared, &batch).await;
    run_batch(shared, batch).await;
}

/// Yields while the batch still grows (or the request still has loads about
/// to resume), at most [`MAX_YIELDS`] times. Never blocks the thread.
async fn coalesce<V, K>(shared: &Shared<V, K>, batch: &Batch<V, K>) {
    let mut seen = batch.len();
    let mut quiet = 0;
    for _ in 0..MAX_YIELDS {
        if batch.is_sealed() || seen >= shared.max_batch {
            return;
        }
        yield_now().await;
        let now = batch.len();
        if now != seen {
            seen = now;
            quiet = 0;
        } else if shared.scope.pending_wakeups() > 0 {
            quiet = 0;
        } else {
            quiet += 1;
            if quiet == QUIET_YIELDS {
                return;
            }
        }
    }
}

/// Lets the runtime run this task's sibling futures and the other ready
/// tasks once, then resumes: the task wakes itself and goes to the back of
/// the run queue. (`tokio::task::yield_now` defers the wake-up until the
/// worker has polled its I/O and timer drivers, a system call per yield;
/// coalescing needs only the tasks that are already ready to run.)
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// The batch's driver: whatever happens to the future that owns it, the
/// batch is answered. Dropped before it finished, it spawns the batch's
/// query (continuing the one in flight, if any) on the runtime; dropped
/// during a panic or with no runtime, it fails the batch.
struct Driver<'a, V: Send + Sync + 'static, K: Key> {
    shared: &'a Arc<Shared<V, K>>,
    batch: &'a Arc<Batch<V, K>>,
    runtime: Option<Handle>,
    running: Option<Running>,
    done: bool,
}

impl<V: Send + Sync + 'static, K: Key> Driver<'_, V, K> {
    /// Coalesces and runs the batch here, in the caller's task.
    async fn run(&mut self) {
        let running = self.running.insert(Box::pin(coalesce_and_run(
            Arc::clone(self.shared),
            Arc::clone(self.batch),
        )));
        let finished = poll_catching_panics(running).await;
        self.running = None;
        self.done = true;
        if !finished {
            self.shared.vanish(self.batch);
        }
    }
}

impl<V: Send + Sync + 'static, K: Key> Drop for Driver<'_, V, K> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match &self.runtime {
            Some(runtime) if !std::thread::panicking() => {
                let guard = VanishGuard {
                    shared: Arc::clone(self.shared),
                    batch: Arc::clone(self.batch),
                    armed: true,
                };
                // The batch stays in the trace of the request that opened it.
                let parent = tracing::Span::current();
                runtime.spawn(hand_off(guard, self.running.take()).instrument(parent));
            }
            _ => self.shared.vanish(self.batch),
        }
    }
}

/// Polls `running` to completion: `false` if it panicked.
async fn poll_catching_panics(running: &mut Running) -> bool {
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| running.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(true),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(false),
        },
    )
    .await
}

/// Finishes a batch whose driver went away, in a task of its own: first
/// checks (once the dropping task has finished dropping) that someone still
/// waits for it; if not, drops it, and its statement with it.
async fn hand_off<V: Send + Sync + 'static, K: Key>(
    mut guard: VanishGuard<V, K>,
    running: Option<Running>,
) {
    if guard.shared.discard_if_unwanted(&guard.batch) {
        guard.armed = false;
        return;
    }
    let mut running = running.unwrap_or_else(|| {
        Box::pin(run_batch(
            Arc::clone(&guard.shared),
            Arc::clone(&guard.batch),
        ))
    });
    // A panic leaves the guard armed: it fails the batch.
    guard.armed = !poll_catching_panics(&mut running).await;
}

/// Fails the batch with [`Error::BatchVanished`] when dropped armed: a
/// hand-off task dropped unpolled (its runtime shutting down), or whose
/// query panicked.
struct VanishGuard<V: Send + Sync + 'static, K: Key> {
    shared: Arc<Shared<V, K>>,
    batch: Arc<Batch<V, K>>,
    armed: bool,
}

impl<V: Send + Sync + 'static, K: Key> Drop for VanishGuard<V, K> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.vanish(&self.batch);
        }
    }
}

/// Seals the batch, asks the source, caches and publishes the answer.
async fn run_batch<V: Send + Sync + 'static, K: Key>(
    shared: Arc<Shared<V, K>>,
    batch: Arc<Batch<V, K>>,
) {
    {
        let mut state = lock(&shared.state);
        state.seal(&batch);
        state.flush_counts(&shared.metrics);
    }
    let keys = batch.keys();
    let waited = batch.opened.elapsed();
    shared.metrics.batch(keys.len(), waited);
    // At `info`, like the request and statement spans around it, so that a
    // trace at the default level shows request → operation → batch →
    // statement.
    let span = tracing::info_span!(
        "roster_loader.batch",
        source = shared.name,
        keys = keys.len(),
        statements = tracing::field::Empty,
        waited_us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
    );
    let query = async {
        match shared.timeout {
            None => query(&shared, keys).await,
            Some(limit) => tokio::time::timeout(limit, query(&shared, keys))
                .await
                .unwrap_or_else(|_elapsed| {
                    shared.metrics.failed_batch();
                    tracing::warn!(
                        source = shared.name,
                        keys = keys.len(),
                        ?limit,
                        "batch timed out"
                    );
                    Err(Error::Timeout {
                        source_name: shared.name,
                        ids: keys.len(),
                        limit,
                    })
                }),
        }
    };
    // A span costs an allocation and a lock per poll even when nobody
    // listens: only when a subscriber wants it.
    let result = if span.is_disabled() {
        query.await
    } else {
        query.instrument(span).await
    };
    shared.finish(&batch, result);
}

/// Asks the source for `keys`, split into calls it can take: each key's
/// value by its position.
async fn query<V: Send + Sync + 'static, K: Key>(
    shared: &Shared<V, K>,
    keys: &[K],
) -> BatchResult<V> {
    let per_call = shared.source.max_ids_per_call().max(1);
    let mut answers: Vec<Option<Arc<V>>> = Vec::with_capacity(keys.len());
    let mut statements = 0_u64;
    for chunk in keys.chunks(per_call) {
        statements += 1;
        shared.metrics.statement();
        match shared.source.load(chunk).await {
            Ok(mut found) => {
                answers.extend(chunk.iter().map(|key| found.remove(key).map(Arc::new)))
            }
            Err(source) => {
                shared.metrics.failed_batch();
                tracing::Span::current().record("statements", statements);
                tracing::warn!(source = shared.name, keys = keys.len(), error = %source, "batch failed");
                return Err(Error::Source {
                    source_name: shared.name,
                    ids: keys.len(),
                    source: Arc::new(source),
                });
            }
        }
    }
    tracing::Span::current().record("statements", statements);
    Ok(answers)
}

impl<V: Send + Sync + 'static, K: Key> Shared<V, K> {
    /// Caches the answers of the keys this batch still owns, lets the
    /// `after_batch` hooks see them, then answers the waiters.
    fn finish(&self, batch: &Arc<Batch<V, K>>, result: BatchResult<V>) {
        lock(&self.state).settle(batch, result.as_deref().ok());
        if let Ok(values) = &result
            && !self.after_batch.is_empty()
        {
            let answers = Answers {
                keys: batch.keys(),
                values,
            };
            for hook in &self.after_batch {
                hook(&answers);
            }
        }
        batch.answer(result, &self.scope);
    }

    /// Fails `batch` with [`Error::BatchVanished`] and forgets it.
    pub(super) fn vanish(&self, batch: &Arc<Batch<V, K>>) {
        lock(&self.state).discard(batch);
        batch.answer(
            Err(Error::BatchVanished {
                source_name: self.name,
            }),
            &self.scope,
        );
    }

    /// Drops `batch` if nobody waits for it any more. Decided under the
    /// lock, where claims are made, so none can arrive meanwhile.
    fn discard_if_unwanted(&self, batch: &Arc<Batch<V, K>>) -> bool {
        {
            let mut state = lock(&self.state);
            if batch.is_wanted() {
                return false;
            }
            state.discard(batch);
        }
        batch.answer(
            Err(Error::BatchVanished {
                source_name: self.name,
            }),
            &self.scope,
        );
        true
    }
}
