//! [`Loader`]: coalesces concurrent loads into batches, caches the answers.
//!
//! # How a batch forms, without a timer
//! The load that opens a batch *drives* it: inside the caller's own task it
//! yields to the runtime, so that the caller's sibling futures (a GraphQL
//! executor's resolvers, a `join_all`) and other ready tasks run and add
//! their ids, and it keeps yielding while the batch still grows. Once a
//! couple of yields bring no new id, it spawns the batch's query task. A batch that
//! reaches the maximum size is dispatched at once. A lone caller pays two
//! task yields (microseconds), never a timer tick.
//!
//! Yielding in the caller's task, rather than in a separate dispatcher task,
//! matters on the multi-thread runtime: an idle worker would run a
//! dispatcher's yields in parallel, in microseconds, and seal the batch while
//! the caller is still adding ids.
//!
//! Quiet yields alone cannot tell "nothing left to add" from "woken but not
//! yet run": when a finished batch wakes fifty waiters from another worker,
//! they resume in waves. The loaders of a request therefore share a
//! [`LoaderScope`] that counts answered-but-not-resumed loads, and a driver
//! keeps gathering while that count is above zero (up to a cap).
//!
//! The query itself runs in a spawned task and callers only wait for its
//! result: dropping a caller's future (even the driver's: its drop guard
//! dispatches the batch) cannot stall, cancel or corrupt the batch for the
//! others. If the query task disappears (runtime shutdown, a panicking
//! source), its drop guard answers every waiter with [`Error::BatchVanished`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::SetOnce;
use tracing::Instrument;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::metrics::LoaderMetrics;
use crate::options::LoaderOptions;
use crate::scope::LoaderScope;
use crate::source::BatchSource;

/// How many times a batch's driver yields at most before dispatching it,
/// while no wake-ups are pending.
const MAX_YIELDS: usize = 32;
/// How long a driver waits at most for the scope's pending wake-ups (loads
/// another batch answered) to resume. Measured on the wall clock, not a
/// tokio timer: it bounds a wait that only happens when a finished batch's
/// wake-ups are still being delivered (e.g. by a worker thread the OS has
/// preempted), never for a lone caller.
const MAX_PENDING_WAIT: std::time::Duration = std::time::Duration::from_millis(2);
/// How many consecutive yields without a new id end coalescing. Two, not
/// one: on the multi-thread runtime the wake-ups that resume the caller's
/// futures (a finished batch answering fifty waiters) may come from another
/// worker while this one parks; a second round covers them.
const QUIET_YIELDS: usize = 2;

/// A batching, caching loader of values by `i64` id, for one request.
///
/// Cheap to clone (an `Arc`); clones share batches and cache. Build one per
/// request (the cache lives as long as the loader) from a
/// [`BatchSource`]: [`EntitySource`](crate::EntitySource) for rows by
/// primary key, [`RelationSource`](crate::RelationSource) for related rows by
/// parent id, or your own. Dispatch needs a tokio runtime (current-thread or
/// multi-thread).
pub struct Loader<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Loader<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> std::fmt::Debug for Loader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("source", &self.shared.name)
            .field("max_batch", &self.shared.max_batch)
            .field("cache", &self.shared.cache.is_some())
            .finish_non_exhaustive()
    }
}

struct Shared<T> {
    source: Box<dyn BatchSource<Value = T>>,
    name: &'static str,
    cache: Option<Box<dyn Cache<T>>>,
    max_batch: usize,
    metrics: Arc<LoaderMetrics>,
    scope: LoaderScope,
    /// A batch's time limit ([`LoaderOptions::timeout`]).
    timeout: Option<Duration>,
    /// The batch being filled, and which batch answers each id in flight.
    /// Locked only for short bookkeeping, never across an `.await`; a panic
    /// elsewhere cannot poison it (poisoning is ignored: every critical
    /// section leaves the state consistent before it can unwind).
    state: Mutex<State<T>>,
}

struct State<T> {
    open: Option<Arc<Batch<T>>>,
    in_flight: HashMap<i64, Arc<Batch<T>>>,
}

type BatchResult<T> = Result<Arc<HashMap<i64, T>>, Error>;

struct Batch<T> {
    /// The batch's distinct ids. Appended to only while the batch is
    /// `State::open`, and always under the `State` lock.
    ids: Mutex<Vec<i64>>,
    opened: Instant,
    /// Set once, by whoever spawns the query task (the driver, a load that
    /// filled the batch, or the driver's drop guard).
    dispatched: AtomicBool,
    /// Loads waiting on this batch, and whether it has answered them.
    waiters: Mutex<Waiters>,
    result: SetOnce<BatchResult<T>>,
}

#[derive(Default)]
struct Waiters {
    waiting: usize,
    answered: bool,
}

/// One load's claim on a batch's answer. Dropping it (answer taken, or the
/// load cancelled) keeps the scope's count of pending wake-ups right.
struct Waiter<T> {
    batch: Arc<Batch<T>>,
    scope: LoaderScope,
}

impl<T> Waiter<T> {
    fn new(batch: &Arc<Batch<T>>, scope: &LoaderScope) -> Self {
        lock(&batch.waiters).waiting += 1;
        Self {
            batch: Arc::clone(batch),
            scope: scope.clone(),
        }
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        let mut waiters = lock(&self.batch.waiters);
        waiters.waiting -= 1;
        if waiters.answered {
            self.scope.resumed();
        }
    }
}

/// What a load resolves to: a cached answer, a batch to wait for, or a batch
/// to drive (coalesce, then dispatch) and wait for.
enum Slot<T> {
    Ready(Option<T>),
    Wait(Waiter<T>),
    Drive(Waiter<T>),
}

fn lock<U>(mutex: &Mutex<U>) -> MutexGuard<'_, U> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Clone + Send + Sync + 'static> Loader<T> {
    /// A loader over `source` with the default options.
    pub fn new(source: impl BatchSource<Value = T>) -> Self {
        Self::with_options(source, LoaderOptions::default())
    }

    /// A loader over `source` with `options`.
    pub fn with_options(source: impl BatchSource<Value = T>, options: LoaderOptions<T>) -> Self {
        Self {
            shared: Arc::new(Shared {
                name: source.name(),
                source: Box::new(source),
                cache: options.cache,
                max_batch: options.max_batch,
                metrics: options.metrics,
                scope: options.scope,
                timeout: options.timeout,
                state: Mutex::new(State {
                    open: None,
                    in_flight: HashMap::new(),
                }),
            }),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// The metrics this loader records into.
    pub fn metrics(&self) -> &Arc<LoaderMetrics> {
        &self.shared.metrics
    }

    /// Loads the value of `id`: `None` if the source has none.
    ///
    /// Joins the batch being formed (or the one already asking for `id`);
    /// answers from the cache when it can.
    pub async fn load(&self, id: i64) -> Result<Option<T>> {
        let shared = &self.shared;
        if let Some(hit) = shared.cached(id) {
            shared.metrics.load(1);
            shared.metrics.cache_hit();
            return Ok(hit);
        }
        match self.register(&[id])?.pop() {
            Some(slot) => self.resolve(id, slot).await,
            None => Ok(None),
        }
    }

    /// Loads many ids at once: the answers in input order, `None` for ids
    /// without a value. Duplicates are asked for once.
    pub async fn load_many(&self, ids: &[i64]) -> Result<Vec<Option<T>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let slots = self.register(ids)?;
        let mut values = Vec::with_capacity(ids.len());
        for (&id, slot) in ids.iter().zip(slots) {
            values.push(self.resolve(id, slot).await?);
        }
        Ok(values)
    }

    /// Caches `value` for `id` (e.g. a row the request has just written), so
    /// later loads return it without a query. A batch already asking for
    /// `id` still answers its own waiters, but no longer caches its answer.
    pub fn prime(&self, id: i64, value: Option<T>) {
        let mut state = lock(&self.shared.state);
        state.in_flight.remove(&id);
        if let Some(cache) = &self.shared.cache {
            cache.insert(id, value);
        }
    }

    /// Forgets `id`: the next load asks the source again.
    pub fn clear(&self, id: i64) {
        let mut state = lock(&self.shared.state);
        state.in_flight.remove(&id);
        if let Some(cache) = &self.shared.cache {
            cache.remove(id);
        }
    }

    /// Forgets everything cached or in flight.
    pub fn clear_all(&self) {
        let mut state = lock(&self.shared.state);
        state.in_flight.clear();
        if let Some(cache) = &self.shared.cache {
            cache.clear();
        }
    }

    /// Finds or queues every id, under one lock. Batches filled to the
    /// maximum are dispatched at once; the slot that opened the batch left
    /// open becomes its driver.
    fn register(&self, ids: &[i64]) -> Result<Vec<Slot<T>>> {
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let shared = &self.shared;
        shared.metrics.load(ids.len() as u64);
        let mut full = Vec::new();
        let mut driver = None;
        let mut slots = Vec::with_capacity(ids.len());
        {
            let mut state = lock(&shared.state);
            let State { open, in_flight } = &mut *state;
            for &id in ids {
                if let Some(hit) = shared.cached(id) {
                    shared.metrics.cache_hit();
                    slots.push(Slot::Ready(hit));
                    continue;
                }
                // One hash lookup for both "already in flight?" and "queue it".
                let vacant = match in_flight.entry(id) {
                    Entry::Occupied(entry) => {
                        shared.metrics.deduplicated();
                        slots.push(Slot::Wait(Waiter::new(entry.get(), &shared.scope)));
                        continue;
                    }
                    Entry::Vacant(vacant) => vacant,
                };
                let batch = match open {
                    Some(batch) => Arc::clone(batch),
                    None => {
                        let batch = Arc::new(Batch {
                            ids: Mutex::new(Vec::new()),
                            opened: Instant::now(),
                            dispatched: AtomicBool::new(false),
                            waiters: Mutex::new(Waiters::default()),
                            result: SetOnce::new(),
                        });
                        *open = Some(Arc::clone(&batch));
                        driver = Some(slots.len());
                        batch
                    }
                };
                let is_full = {
                    let mut batch_ids = lock(&batch.ids);
                    batch_ids.push(id);
                    batch_ids.len() >= shared.max_batch
                };
                if is_full {
                    *open = None;
                    full.push(Arc::clone(&batch));
                }
                slots.push(Slot::Wait(Waiter::new(&batch, &shared.scope)));
                vacant.insert(batch);
            }
        }
        for batch in &full {
            shared.dispatch(&runtime, batch);
        }
        // The batch this call opened last, if still open, is driven by the
        // slot that opened it.
        if let Some(index) = driver
            && let Some(slot) = slots.get_mut(index)
        {
            let undispatched =
                matches!(slot, Slot::Wait(w) if !w.batch.dispatched.load(Ordering::Acquire));
            if undispatched && let Slot::Wait(waiter) = std::mem::replace(slot, Slot::Ready(None)) {
                *slot = Slot::Drive(waiter);
            }
        }
        Ok(slots)
    }

    async fn resolve(&self, id: i64, slot: Slot<T>) -> Result<Option<T>> {
        let waiter = match slot {
            Slot::Ready(value) => return Ok(value),
            Slot::Wait(waiter) => waiter,
            Slot::Drive(waiter) => {
                self.drive(&waiter.batch).await?;
                waiter
            }
        };
        // `waiter` drops on return (or cancellation): this load has resumed.
        match waiter.batch.result.wait().await {
            Ok(values) => Ok(values.get(&id).cloned()),
            Err(e) => Err(e.clone()),
        }
    }

    /// Lets the caller's task (and the runtime's other ready tasks) add ids
    /// while the batch grows, then dispatches it.
    async fn drive(&self, batch: &Arc<Batch<T>>) -> Result<()> {
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let shared = &self.shared;
        // Dispatches on every exit, including this future being dropped.
        let _dispatch = DriveGuard {
            shared,
            batch,
            runtime: &runtime,
        };
        let started = Instant::now();
        let mut seen = shared.batch_len(batch);
        let mut quiet = 0;
        let mut yields = 0;
        while seen < shared.max_batch && !batch.dispatched.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
            let now = shared.batch_len(batch);
            if now != seen {
                quiet = 0;
                seen = now;
            } else if shared.scope.pending_wakeups() > 0 && started.elapsed() < MAX_PENDING_WAIT {
                // Loads answered by another batch are about to resume and
                // may add ids: not quiet yet. Their wake-ups may be stuck
                // on a worker thread the OS preempted; hand it the CPU
                // rather than spin.
                quiet = 0;
                std::thread::yield_now();
                continue;
            } else {
                quiet += 1;
                if quiet == QUIET_YIELDS {
                    break;
                }
            }
            yields += 1;
            if yields == MAX_YIELDS {
                break;
            }
        }
        Ok(())
    }
}

/// Dispatches a batch when its driver finishes or is dropped mid-way.
struct DriveGuard<'a, T: Clone + Send + Sync + 'static> {
    shared: &'a Arc<Shared<T>>,
    batch: &'a Arc<Batch<T>>,
    runtime: &'a Handle,
}

impl<T: Clone + Send + Sync + 'static> Drop for DriveGuard<'_, T> {
    fn drop(&mut self) {
        self.shared.dispatch(self.runtime, self.batch);
    }
}

impl<T: Clone + Send + Sync + 'static> Shared<T> {
    /// Spawns the batch's query task, unless someone already did.
    fn dispatch(self: &Arc<Self>, runtime: &Handle, batch: &Arc<Batch<T>>) {
        if batch.dispatched.swap(true, Ordering::AcqRel) {
            return;
        }
        // The guard travels inside the task: if the task is dropped before
        // it finishes (even unpolled), the guard answers the waiters.
        let guard = QueryGuard {
            shared: Arc::clone(self),
            batch: Arc::clone(batch),
            armed: true,
        };
        runtime.spawn(run_batch(guard));
    }

    fn cached(&self, id: i64) -> Option<Option<T>> {
        self.cache.as_ref().and_then(|cache| cache.get(id))
    }

    fn batch_len(&self, batch: &Batch<T>) -> usize {
        let _state = lock(&self.state);
        lock(&batch.ids).len()
    }

    /// Closes `batch` to new ids and takes its ids.
    fn seal(&self, batch: &Arc<Batch<T>>) -> Vec<i64> {
        let mut state = lock(&self.state);
        if state
            .open
            .as_ref()
            .is_some_and(|open| Arc::ptr_eq(open, batch))
        {
            state.open = None;
        }
        std::mem::take(&mut *lock(&batch.ids))
    }

    /// Caches the answers for the ids this batch still owns, then answers
    /// the waiters.
    fn finish(&self, batch: &Arc<Batch<T>>, ids: &[i64], result: BatchResult<T>) {
        {
            let mut state = lock(&self.state);
            for &id in ids {
                // One hash lookup: remove the id only if this batch owns it.
                let Entry::Occupied(entry) = state.in_flight.entry(id) else {
                    continue; // primed or cleared
                };
                if !Arc::ptr_eq(entry.get(), batch) {
                    continue; // cleared, then asked again by a newer batch
                }
                entry.remove();
                if let (Ok(values), Some(cache)) = (&result, &self.cache) {
                    cache.insert(id, values.get(&id).cloned());
                }
            }
        }
        self.answer(batch, result);
    }

    /// Sets the batch's result and counts its waiters as pending wake-ups
    /// until each resumes.
    fn answer(&self, batch: &Batch<T>, result: BatchResult<T>) {
        {
            let mut waiters = lock(&batch.waiters);
            if !waiters.answered {
                waiters.answered = true;
                self.scope.answered(waiters.waiting);
            }
        }
        let _ = batch.result.set(result);
    }
}

/// Runs one batch: seal, query, answer.
async fn run_batch<T: Clone + Send + Sync + 'static>(mut guard: QueryGuard<T>) {
    let shared = Arc::clone(&guard.shared);
    let batch = Arc::clone(&guard.batch);
    let ids = shared.seal(&batch);
    let waited = batch.opened.elapsed();
    shared.metrics.batch(ids.len(), waited);
    let span = tracing::debug_span!(
        "roster_loader.batch",
        source = shared.name,
        ids = ids.len(),
        statements = tracing::field::Empty,
        waited_us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
    );
    let result = match shared.timeout {
        None => query(&shared, &ids).instrument(span).await,
        Some(limit) => tokio::time::timeout(limit, query(&shared, &ids).instrument(span))
            .await
            .unwrap_or_else(|_elapsed| {
                shared.metrics.failed_batch();
                tracing::warn!(
                    source = shared.name,
                    ids = ids.len(),
                    ?limit,
                    "batch timed out"
                );
                Err(Error::Timeout {
                    source_name: shared.name,
                    ids: ids.len(),
                    limit,
                })
            }),
    };
    shared.finish(&batch, &ids, result);
    guard.armed = false;
}

/// Asks the source for `ids`, split into calls it can take.
async fn query<T: Clone + Send + Sync + 'static>(
    shared: &Shared<T>,
    ids: &[i64],
) -> BatchResult<T> {
    let per_call = shared.source.max_ids_per_call().max(1);
    // The first call's map is kept as is (no copy into a second map); only
    // a split batch's later calls are merged into it.
    let mut values: Option<HashMap<i64, T>> = None;
    let mut statements = 0_u64;
    for chunk in ids.chunks(per_call) {
        statements += 1;
        shared.metrics.statement();
        match shared.source.load(chunk).await {
            Ok(found) => match &mut values {
                None => values = Some(found),
                Some(values) => values.extend(found),
            },
            Err(source) => {
                shared.metrics.failed_batch();
                tracing::Span::current().record("statements", statements);
                tracing::warn!(source = shared.name, ids = ids.len(), error = %source, "batch failed");
                return Err(Error::Source {
                    source_name: shared.name,
                    ids: ids.len(),
                    source: Arc::new(source),
                });
            }
        }
    }
    tracing::Span::current().record("statements", statements);
    Ok(Arc::new(values.unwrap_or_default()))
}

/// Answers a batch's waiters with [`Error::BatchVanished`] if its query task
/// is dropped before it finishes.
struct QueryGuard<T: Clone + Send + Sync + 'static> {
    shared: Arc<Shared<T>>,
    batch: Arc<Batch<T>>,
    armed: bool,
}

impl<T: Clone + Send + Sync + 'static> Drop for QueryGuard<T> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        {
            let mut state = lock(&self.shared.state);
            if state
                .open
                .as_ref()
                .is_some_and(|open| Arc::ptr_eq(open, &self.batch))
            {
                state.open = None;
            }
            state
                .in_flight
                .retain(|_, batch| !Arc::ptr_eq(batch, &self.batch));
        }
        self.shared.answer(
            &self.batch,
            Err(Error::BatchVanished {
                source_name: self.shared.name,
            }),
        );
    }
}

#[cfg(test)]
mod tests;
