//! [`Loader`]: coalesces concurrent loads into batches, caches the answers.
//!
//! # How a batch forms, without a timer
//! The load that opens a batch *drives* it, inside the caller's own task:
//! it yields to the runtime so that the caller's sibling futures (a GraphQL
//! executor's resolvers, a `join_all`) and other ready tasks run and add
//! their keys, and it keeps yielding while the batch still grows. Once a
//! couple of yields bring no new key, it seals the batch and runs the
//! source's query itself, still in the caller's task: a request's batches
//! are answered where its resolvers run, with no task spawned and no
//! cross-thread hand-off. A lone caller pays two task yields
//! (microseconds), never a timer tick.
//!
//! Quiet yields alone cannot tell "nothing left to add" from "woken but not
//! yet run": when a batch answers fifty waiters that live in other tasks,
//! they resume in waves. The loaders of a request therefore share a
//! [`LoaderScope`] that counts answered-but-not-resumed loads, and a driver
//! keeps yielding (never blocking) while that count is above zero, up to a
//! cap.
//!
//! # Nothing a caller does can hang a batch
//! If the driving future is dropped (a timeout, a `select!`, an error on
//! another key of a `load_many`), its batch is handed to a spawned task
//! that finishes it, continuing the query already in flight rather than
//! asking again. If nobody waits for the batch any more by then, the
//! batch is dropped instead, statement and all, so that a cancelled
//! request's work ends with it. A `load_many` drives the batches it opens
//! and waits for the others concurrently, so a batch never waits for an
//! unrelated one. A panicking source fails its batch with
//! [`Error::BatchVanished`].
//!
//! # Cost per load
//! One lock (a cache lookup and one hash-map entry), one claim on the
//! batch's answer and one wake-up; no heap allocation for `Copy`-like keys;
//! answers are shared (`Arc`), never cloned. Metrics are counted under the
//! lock and added to the shared [`LoaderMetrics`] once per batch.

mod batch;
mod run;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::try_join_all;

use crate::error::{Error, Result};
use crate::key::Key;
use crate::metrics::LoaderMetrics;
use crate::options::{AfterBatch, LoaderOptions};
use crate::scope::LoaderScope;
use crate::source::BatchSource;

use batch::{Batch, BatchResult, Waiter};
use state::{CachePolicy, Claim, State};

/// A batching, caching loader of values by key, for one request.
///
/// `V` is what a key loads to, `K` the key: `i64` (a row id) unless said
/// otherwise, or any [`Key`] (`String`, `(i64, i64)`, …). Answers are
/// shared: `load` returns an `Arc<V>` that the cache and every other load
/// of the same key share.
///
/// Cheap to clone (an `Arc`); clones share batches and cache. Build one per
/// request (the cache lives as long as the loader) from a [`BatchSource`]:
/// [`EntitySource`](crate::EntitySource) for rows by primary or unique key,
/// [`RelationSource`](crate::RelationSource) for related rows by parent id,
/// or your own. Needs a tokio runtime (current-thread or multi-thread).
pub struct Loader<V, K = i64> {
    shared: Arc<Shared<V, K>>,
}

impl<V, K> Clone for Loader<V, K> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<V, K> std::fmt::Debug for Loader<V, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("source", &self.shared.name)
            .field("max_batch", &self.shared.max_batch)
            .finish_non_exhaustive()
    }
}

struct Shared<V, K> {
    source: Box<dyn BatchSource<K, Value = V>>,
    name: &'static str,
    max_batch: usize,
    metrics: Arc<LoaderMetrics>,
    scope: LoaderScope,
    /// A batch's time limit ([`LoaderOptions::timeout`]).
    timeout: Option<Duration>,
    after_batch: Vec<AfterBatch<V, K>>,
    /// The cache, the batch being filled and which batch answers each key
    /// in flight. Locked only for short bookkeeping, never across an
    /// `.await`. Poisoning is ignored: a panic inside (a custom cache's)
    /// leaves at worst a batch that is failed with `BatchVanished`.
    state: Mutex<State<V, K>>,
}

fn lock<U>(mutex: &Mutex<U>) -> MutexGuard<'_, U> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<V: Send + Sync + 'static, K: Key> Loader<V, K> {
    /// A loader over `source` with the default options.
    pub fn new(source: impl BatchSource<K, Value = V>) -> Self {
        Self::with_options(source, LoaderOptions::default())
    }

    /// A loader over `source` with `options`.
    pub fn with_options(
        source: impl BatchSource<K, Value = V>,
        options: LoaderOptions<V, K>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                name: source.name(),
                source: Box::new(source),
                max_batch: options.max_batch,
                metrics: options.metrics,
                scope: options.scope,
                timeout: options.timeout,
                after_batch: options.after_batch,
                state: Mutex::new(State::new(match options.cache {
                    crate::options::CacheChoice::Map => CachePolicy::Map,
                    crate::options::CacheChoice::Custom(cache) => CachePolicy::Custom(cache),
                    crate::options::CacheChoice::Off => CachePolicy::Off,
                })),
            }),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// The metrics this loader records into, with this loader's counts so
    /// far included.
    pub fn metrics(&self) -> &Arc<LoaderMetrics> {
        lock(&self.shared.state).flush_counts(&self.shared.metrics);
        &self.shared.metrics
    }

    /// Loads the value of `key`: `None` if the source has none.
    ///
    /// Joins the batch being formed (or the one already asking for `key`);
    /// answers from the cache when it can.
    pub async fn load(&self, key: K) -> Result<Option<Arc<V>>> {
        let shared = &self.shared;
        let claim = {
            let mut state = lock(&shared.state);
            let claim = state.claim(key, shared.max_batch);
            if let Claim::Join(batch, _) | Claim::Open(batch, _) = &claim {
                batch.add_waiter();
            }
            claim
        };
        let (batch, index, opened) = match claim {
            Claim::Ready(value) => return Ok(value),
            Claim::Join(batch, index) => (batch, index, false),
            Claim::Open(batch, index) => (batch, index, true),
        };
        let waiter = Waiter::adopt(batch, &shared.scope);
        if opened {
            run::drive(shared, &waiter.batch).await?;
        }
        answer(waiter.wait().await, index)
    }

    /// Loads many keys at once: the answers in input order, `None` for keys
    /// without a value. Duplicates are asked for once.
    ///
    /// The keys are registered under one lock. The batches this call opens
    /// are driven, and the batches it joins are awaited, all concurrently:
    /// a batch it opened goes out on its own, whatever the others do. On
    /// the first error the call returns it; the batches it opened are still
    /// answered for their other callers.
    pub async fn load_many(&self, keys: &[K]) -> Result<Vec<Option<Arc<V>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let shared = &self.shared;
        let mut slots: Vec<Slot<V>> = Vec::with_capacity(keys.len());
        // The distinct batches, and whether this call opened them.
        let mut batches: Vec<(Arc<Batch<V, K>>, bool)> = Vec::new();
        // Batch address -> index, once there are too many to scan.
        let mut by_address: HashMap<usize, usize> = HashMap::new();
        {
            let mut state = lock(&shared.state);
            for key in keys {
                let (batch, position, opened) = match state.claim(key.clone(), shared.max_batch) {
                    Claim::Ready(value) => {
                        slots.push(Ok(value));
                        continue;
                    }
                    Claim::Join(batch, position) => (batch, position, false),
                    Claim::Open(batch, position) => (batch, position, true),
                };
                let index = match find_batch(&batches, &mut by_address, &batch) {
                    Some(index) => index,
                    None => {
                        batch.add_waiter();
                        batches.push((batch, opened));
                        batches.len() - 1
                    }
                };
                slots.push(Err((index, position)));
            }
        }
        let waiters: Vec<(Waiter<'_, V, K>, bool)> = batches
            .into_iter()
            .map(|(batch, opened)| (Waiter::adopt(batch, &shared.scope), opened))
            .collect();
        try_join_all(waiters.iter().map(|(waiter, opened)| async move {
            if *opened {
                run::drive(shared, &waiter.batch).await?;
            }
            match waiter.wait().await {
                Ok(_) => Ok(()),
                Err(e) => Err(e.clone()),
            }
        }))
        .await?;
        slots
            .into_iter()
            .map(|slot| match slot {
                Ok(value) => Ok(value),
                Err((index, position)) => {
                    match waiters.get(index).and_then(|(w, _)| w.batch.result()) {
                        Some(result) => answer(result, position),
                        None => Err(Error::BatchVanished {
                            source_name: shared.name,
                        }),
                    }
                }
            })
            .collect()
    }

    /// Caches `value` for `key` (e.g. a row the request has just written),
    /// so later loads return it without a query. A batch already asking for
    /// `key` still answers its own callers, but does not cache its answer.
    pub fn prime(&self, key: K, value: Option<Arc<V>>) {
        self.prime_many([(key, value)]);
    }

    /// [`prime`](Self::prime) for many keys, under one lock.
    pub fn prime_many(&self, entries: impl IntoIterator<Item = (K, Option<Arc<V>>)>) {
        let mut state = lock(&self.shared.state);
        for (key, value) in entries {
            state.prime(key, value);
        }
    }

    /// Forgets `key`: the next load asks the source again.
    pub fn clear(&self, key: &K) {
        lock(&self.shared.state).clear(key);
    }

    /// Forgets everything cached or in flight.
    pub fn clear_all(&self) {
        lock(&self.shared.state).clear_all();
    }
}

/// A key of a `load_many`: its answer, or which of the call's batches has
/// it at which position.
type Slot<V> = Result<Option<Arc<V>>, (usize, usize)>;

/// Where `batch` is in `batches`: a scan while there are a few (the usual
/// case: one or two), an index by address beyond that.
fn find_batch<V, K>(
    batches: &[(Arc<Batch<V, K>>, bool)],
    by_address: &mut HashMap<usize, usize>,
    batch: &Arc<Batch<V, K>>,
) -> Option<usize> {
    const SCAN: usize = 8;
    let address = |b: &Arc<Batch<V, K>>| Arc::as_ptr(b) as usize;
    if batches.len() <= SCAN {
        return batches.iter().rposition(|(b, _)| Arc::ptr_eq(b, batch));
    }
    if by_address.is_empty() {
        by_address.extend(
            batches
                .iter()
                .enumerate()
                .map(|(i, (b, _))| (address(b), i)),
        );
    }
    let found = by_address.get(&address(batch)).copied();
    if found.is_none() {
        by_address.insert(address(batch), batches.len());
    }
    found
}

/// The answer at `position` in a batch's result.
fn answer<V>(result: &BatchResult<V>, position: usize) -> Result<Option<Arc<V>>> {
    match result {
        Ok(answers) => Ok(answers.get(position).cloned().flatten()),
        Err(e) => Err(e.clone()),
    }
}

impl<V, K> Drop for Shared<V, K> {
    fn drop(&mut self) {
        self.state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .counts
            .flush(&self.metrics);
    }
}
