//! Loader behaviour that needs no database: timing, cancellation, panics,
//! custom caches and keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{BatchSource, BoxError, Cache, Error, Loader, LoaderOptions, LoaderScope, MapCache};

/// Squares of ids up to 1,000; records every call's ids; panics on id 666
/// and fails on id 4,242.
#[derive(Default, Clone)]
struct Squares {
    calls: Arc<Mutex<Vec<Vec<i64>>>>,
}

impl Squares {
    fn calls(&self) -> Vec<Vec<i64>> {
        self.calls.lock().expect("calls").clone()
    }
}

#[async_trait::async_trait]
impl BatchSource for Squares {
    type Value = i64;
    fn name(&self) -> &'static str {
        "squares"
    }
    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, BoxError> {
        self.calls.lock().expect("calls").push(ids.to_vec());
        assert!(!ids.contains(&666), "the source panics on 666");
        if ids.contains(&4242) {
            return Err("the source fails on 4,242".into());
        }
        Ok(ids
            .iter()
            .filter(|&&id| id <= 1000)
            .map(|&id| (id, id * id))
            .collect())
    }
}

fn value(answer: crate::Result<Option<Arc<i64>>>) -> Option<i64> {
    answer.expect("answered").as_deref().copied()
}

#[tokio::test(start_paused = true)]
async fn sequential_loads_never_wait_on_a_timer() {
    let source = Squares::default();
    let loader = Loader::with_options(source.clone(), LoaderOptions::new().cache_enabled(false));
    let start = tokio::time::Instant::now();
    for id in 1..=100 {
        assert_eq!(value(loader.load(id).await), Some(id * id));
    }
    // With the clock paused, any sleep would auto-advance it.
    assert_eq!(tokio::time::Instant::now(), start, "the loader slept");
    assert_eq!(source.calls().len(), 100, "one call per sequential load");
}

#[tokio::test(start_paused = true)]
async fn concurrent_loads_coalesce_without_a_timer() {
    let source = Squares::default();
    let loader = Loader::new(source.clone());
    let start = tokio::time::Instant::now();
    let results = futures::future::join_all((1..=500).map(|id| loader.load(id))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(tokio::time::Instant::now(), start);
    assert_eq!(source.calls().len(), 1);
}

#[tokio::test]
async fn answers_are_shared_not_copied() {
    let loader = Loader::new(Squares::default());
    let (a, b) = tokio::join!(loader.load(3), loader.load(3));
    let (a, b) = (a.expect("a"), b.expect("b"));
    let cached = loader.load(3).await.expect("cached");
    let (a, b, cached) = (a.expect("some"), b.expect("some"), cached.expect("some"));
    assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &cached));
}

/// A burst holds one load future per key: they stay small.
#[test]
fn a_load_future_is_small() {
    let loader = Loader::new(Squares::default());
    let size = std::mem::size_of_val(&loader.load(1));
    assert!(size <= 200, "a load future takes {size} bytes");
}

#[tokio::test]
async fn a_panicking_source_fails_its_batch_and_the_loader_carries_on() {
    let loader = Loader::new(Squares::default());
    let (bad, good) = tokio::join!(loader.load(666), loader.load(7));
    assert!(matches!(bad, Err(Error::BatchVanished { .. })), "{bad:?}");
    assert!(
        matches!(good, Err(Error::BatchVanished { .. })),
        "same batch: {good:?}"
    );
    assert_eq!(value(loader.load(7).await), Some(49), "next batch works");
}

/// Answers each id after `delays[id]` ms (default 0); records every call's
/// ids; counts calls that were dropped before they answered.
#[derive(Clone, Default)]
struct Slow {
    delays: Arc<Mutex<HashMap<i64, u64>>>,
    calls: Arc<Mutex<Vec<Vec<i64>>>>,
    abandoned: Arc<AtomicUsize>,
    fail: Arc<Mutex<Vec<i64>>>,
}

impl Slow {
    fn delay(&self, id: i64, ms: u64) -> &Self {
        self.delays.lock().expect("delays").insert(id, ms);
        self
    }
    fn calls(&self) -> Vec<Vec<i64>> {
        self.calls.lock().expect("calls").clone()
    }
}

/// Counts a source call dropped before it finished.
struct Abandoned(Arc<AtomicUsize>, bool);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait::async_trait]
impl BatchSource for Slow {
    type Value = i64;
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, BoxError> {
        self.calls.lock().expect("calls").push(ids.to_vec());
        let mut guard = Abandoned(Arc::clone(&self.abandoned), false);
        let delay = {
            let delays = self.delays.lock().expect("delays");
            ids.iter().filter_map(|id| delays.get(id)).max().copied()
        };
        tokio::time::sleep(Duration::from_millis(delay.unwrap_or(0))).await;
        guard.1 = true;
        if ids
            .iter()
            .any(|id| self.fail.lock().expect("fail").contains(id))
        {
            return Err("this batch fails".into());
        }
        Ok(ids.iter().map(|&id| (id, id)).collect())
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_over_the_time_limit_fails_every_waiter_and_is_not_cached() {
    let source = Slow::default();
    for id in 1..=10 {
        source.delay(id, 10_000);
    }
    let limit = Duration::from_secs(1);
    let loader = Loader::with_options(source.clone(), LoaderOptions::new().timeout(limit));
    let start = tokio::time::Instant::now();
    let results = futures::future::join_all((1..=10).map(|id| loader.load(id))).await;
    assert_eq!(start.elapsed(), limit, "failed at the limit, not later");
    for result in results {
        assert!(
            matches!(result, Err(Error::Timeout { ids: 10, limit: l, .. }) if l == limit),
            "{result:?}"
        );
    }
    assert_eq!(loader.metrics().snapshot().failed_batches, 1);

    // A fast source under a limit: no timer fires, nothing is cached from
    // the failed batch.
    source.delay(3, 0);
    let start = tokio::time::Instant::now();
    assert_eq!(value(loader.load(3).await), Some(3));
    assert_eq!(tokio::time::Instant::now(), start);
}

/// `load_many(&[1, 2])` while 1 is in flight in a batch that fails: the
/// batch it opened for 2 is still asked, and later loads of 2 are answered.
#[tokio::test(start_paused = true)]
async fn load_many_failing_on_one_key_still_dispatches_the_batch_it_opened() {
    let source = Slow::default();
    source.delay(1, 100);
    source.fail.lock().expect("fail").push(1);
    let loader = Loader::new(source.clone());
    let first = tokio::spawn({
        let loader = loader.clone();
        async move { loader.load(1).await }
    });
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(10)).await; // 1 is in flight
    let many = loader.load_many(&[1, 2]).await;
    assert!(matches!(many, Err(Error::Source { .. })), "{many:?}");
    assert!(first.await.expect("task").is_err());
    let later = tokio::time::timeout(Duration::from_secs(5), loader.load(2)).await;
    assert_eq!(value(later.expect("2 must not hang")), Some(2));
    assert!(source.calls().contains(&vec![2]), "{:?}", source.calls());
}

/// The same when the `load_many` future is dropped while it waits on 1.
#[tokio::test(start_paused = true)]
async fn a_dropped_load_many_still_dispatches_the_batch_it_opened() {
    let source = Slow::default();
    source.delay(1, 10_000);
    let loader = Loader::new(source.clone());
    let first = tokio::spawn({
        let loader = loader.clone();
        async move { loader.load(1).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await; // 1 is in flight
    let dropped = tokio::time::timeout(Duration::from_millis(50), loader.load_many(&[1, 2])).await;
    assert!(dropped.is_err(), "timed out while waiting on 1");
    let later = tokio::time::timeout(Duration::from_secs(5), loader.load(2)).await;
    assert_eq!(value(later.expect("2 must not hang")), Some(2));
    assert_eq!(value(first.await.expect("task")), Some(1));
}

/// A batch `load_many` opens goes out on its own: a caller waiting on it is
/// answered when it is, not when an unrelated slow batch answers.
#[tokio::test(start_paused = true)]
async fn a_batch_opened_by_load_many_does_not_wait_for_the_others() {
    let source = Slow::default();
    source.delay(1, 10_000).delay(2, 1_000);
    let loader = Loader::new(source.clone());
    let start = tokio::time::Instant::now();
    let slow = tokio::spawn({
        let loader = loader.clone();
        async move { loader.load(1).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await; // 1 is in flight
    let other = async {
        tokio::task::yield_now().await; // joins the batch load_many opens
        let answer = loader.load(2).await;
        (answer, start.elapsed())
    };
    let (many, (answer, waited)) = tokio::join!(loader.load_many(&[1, 2]), other);
    assert_eq!(value(answer), Some(2));
    assert!(
        waited < Duration::from_secs(2),
        "the caller of 2 waited {waited:?} for the batch of 1"
    );
    assert_eq!(many.expect("many").len(), 2);
    assert_eq!(value(slow.await.expect("task")), Some(1));
}

/// `clear` (or `prime`) while the batch holding a key is forming, then a
/// load of it again: the source is asked for distinct keys.
#[tokio::test(start_paused = true)]
async fn clearing_a_key_of_a_forming_batch_never_asks_for_it_twice() {
    let source = Squares::default();
    let loader = Loader::new(source.clone());
    let loads = async {
        let first = loader.load(5);
        let again = async {
            tokio::task::yield_now().await;
            loader.clear(&5);
            loader.load(5).await
        };
        let primed = async {
            tokio::task::yield_now().await;
            loader.prime(6, Some(Arc::new(-6)));
            loader.clear(&6);
            loader.load(6).await
        };
        tokio::join!(first, again, primed, loader.load(6))
    };
    let (a, b, c, d) = loads.await;
    assert_eq!(
        [value(a), value(b), value(c), value(d)],
        [Some(25), Some(25), Some(36), Some(36)]
    );
    for call in source.calls() {
        let mut distinct = call.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            call.len(),
            "asked twice in one call: {call:?}"
        );
    }
    assert_eq!(source.calls().len(), 1, "{:?}", source.calls());
}

/// A load whose batch answered but whose task has not resumed, held for good.
async fn answered_but_never_resumed(scope: &LoaderScope) -> impl Sized {
    let stuck = Loader::with_options(
        Squares::default(),
        LoaderOptions::new().scope(scope.clone()),
    );
    let opener = stuck.clone();
    let mut driver = Box::pin(async move { opener.load(2).await });
    futures::future::poll_immediate(&mut driver).await; // opens the batch
    let mut waiting = Box::pin(async move { stuck.load(2).await });
    futures::future::poll_immediate(&mut waiting).await; // joins it
    assert_eq!(value(driver.await), Some(4)); // answers both
    assert_eq!(scope.pending_wakeups(), 1);
    waiting
}

/// The driver's wait for pending wake-ups is a bounded number of task
/// yields (it lets the runtime run others in between), never a spin on the
/// wall clock.
#[tokio::test(flavor = "current_thread")]
async fn waiting_for_pending_wake_ups_is_a_bounded_number_of_yields() {
    let scope = LoaderScope::new();
    let _held = answered_but_never_resumed(&scope).await;
    let loader = Loader::with_options(
        Squares::default(),
        LoaderOptions::new().scope(scope.clone()),
    );
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::SeqCst);
    for id in 1..=20 {
        assert_eq!(value(loader.load(id).await), Some(id * id));
    }
    let during = ticks.load(Ordering::SeqCst) - before;
    ticker.abort();
    // At most 64 yields per batch. (A driver that waited on the wall clock
    // instead, as the first loader did for 2 ms, lets the ticker run
    // thousands of times.)
    assert!(
        (20..=20 * 70).contains(&during),
        "the drivers of 20 batches yielded {during} times while wake-ups were pending"
    );
}

/// Dropping the driving load mid-query, with others waiting: the query in
/// flight is finished for them, not asked again.
#[tokio::test(start_paused = true)]
async fn a_dropped_driver_hands_its_query_to_the_others() {
    let source = Slow::default();
    source.delay(1, 1_000);
    let loader = Loader::new(source.clone());
    let driver = tokio::spawn({
        let loader = loader.clone();
        async move { loader.load(1).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    let other = tokio::spawn({
        let loader = loader.clone();
        async move { loader.load(1).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await; // mid-query
    driver.abort();
    assert_eq!(value(other.await.expect("task")), Some(1));
    assert_eq!(source.calls(), [vec![1]], "asked once");
    assert_eq!(source.abandoned.load(Ordering::SeqCst), 0);
}

/// Dropping the only load mid-query ends the query (a cancelled request's
/// work stops with it), and the loader carries on.
#[tokio::test(start_paused = true)]
async fn a_dropped_driver_with_nobody_waiting_ends_its_query() {
    let source = Slow::default();
    source.delay(1, 10_000);
    let loader = Loader::new(source.clone());
    let alone = tokio::time::timeout(Duration::from_millis(10), loader.load(1)).await;
    assert!(alone.is_err());
    for _ in 0..4 {
        tokio::task::yield_now().await; // the hand-off task runs
    }
    assert_eq!(
        source.abandoned.load(Ordering::SeqCst),
        1,
        "the query was dropped"
    );
    source.delay(1, 0);
    assert_eq!(value(loader.load(1).await), Some(1));
}

/// A cache that panics on one id, to prove a panic under the loader's lock
/// does not poison it.
#[derive(Default)]
struct Touchy {
    inner: MapCache<i64>,
    inserts: Arc<Mutex<Vec<i64>>>,
}

impl Cache<i64> for Touchy {
    fn get(&mut self, id: &i64) -> Option<Option<Arc<i64>>> {
        self.inner.get(id)
    }
    fn insert(&mut self, id: i64, value: Option<Arc<i64>>) {
        self.inserts.lock().expect("inserts").push(id);
        assert_ne!(id, 17, "the cache panics on 17");
        self.inner.insert(id, value);
    }
    fn remove(&mut self, id: &i64) {
        self.inner.remove(id);
    }
    fn clear(&mut self) {
        self.inner.clear();
    }
}

#[tokio::test]
async fn a_custom_cache_is_used_and_its_panic_does_not_poison_the_loader() {
    let cache = Touchy::default();
    let inserts = Arc::clone(&cache.inserts);
    let loader = Loader::with_options(Squares::default(), LoaderOptions::new().cache(cache));
    assert_eq!(value(loader.load(2).await), Some(4));
    assert_eq!(*inserts.lock().expect("inserts"), [2]);
    assert!(
        loader.load(17).await.is_err(),
        "the batch whose caching panicked fails"
    );
    assert_eq!(value(loader.load(3).await), Some(9), "still usable");
    assert_eq!(value(loader.load(2).await), Some(4), "cached");
}

#[test]
fn loading_outside_a_runtime_is_an_error_not_a_panic() {
    let loader = Loader::new(Squares::default());
    let result = futures::executor::block_on(loader.load(1));
    assert!(matches!(result, Err(Error::NoRuntime)), "{result:?}");
}

/// Words by text key, pairs by composite key: any hashable key works.
struct Lengths {
    calls: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl BatchSource<String> for Lengths {
    type Value = usize;
    fn name(&self) -> &'static str {
        "lengths"
    }
    async fn load(&self, words: &[String]) -> Result<HashMap<String, usize>, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(words
            .iter()
            .filter(|w| !w.is_empty())
            .map(|w| (w.clone(), w.len()))
            .collect())
    }
}

#[tokio::test]
async fn string_keys_batch_cache_and_compare_byte_wise() {
    let calls = Arc::new(AtomicUsize::new(0));
    let loader: Loader<usize, String> = Loader::new(Lengths {
        calls: Arc::clone(&calls),
    });
    let words = ["ada", "Ada", "ada", "", "grace"].map(String::from);
    let loaded = loader.load_many(&words).await.expect("load");
    let lengths: Vec<Option<usize>> = loaded.iter().map(|v| v.as_deref().copied()).collect();
    assert_eq!(lengths, [Some(3), Some(3), Some(3), None, Some(5)]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        loader.load("ada".into()).await.expect("cached").as_deref(),
        Some(&3)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Children of each parent id: `parent * 10 + 0..fanout`, after `latency`.
struct Children {
    calls: Arc<AtomicUsize>,
    latency: Duration,
    fanout: i64,
}

#[async_trait::async_trait]
impl BatchSource for Children {
    type Value = Vec<i64>;
    fn name(&self) -> &'static str {
        "children"
    }
    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<i64>>, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        Ok(ids
            .iter()
            .map(|&p| (p, (0..self.fanout).map(|i| p * 10 + i).collect()))
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_fan_out_with_uneven_siblings_is_one_call_per_level() {
    for round in 0..20 {
        let scope = LoaderScope::new();
        let counter = |latency_ms, fanout| {
            let calls = Arc::new(AtomicUsize::new(0));
            let loader = Loader::with_options(
                Children {
                    calls: Arc::clone(&calls),
                    latency: Duration::from_millis(latency_ms),
                    fanout,
                },
                LoaderOptions::new().scope(scope.clone()),
            );
            (loader, calls)
        };
        let (kind, kind_calls) = counter(20, 1);
        let (users, users_calls) = counter(2, 6);
        let (groups, groups_calls) = counter(2, 3);
        futures::future::join_all((1..=50).map(|g| {
            let (kind, users, groups) = (&kind, &users, &groups);
            async move {
                let users_field = async move {
                    let members = users.load(g).await.expect("users").unwrap_or_default();
                    futures::future::join_all(members.iter().map(|&u| groups.load(u))).await
                };
                tokio::join!(kind.load(g % 3), users_field)
            }
        }))
        .await;
        let calls = [&kind_calls, &users_calls, &groups_calls].map(|c| c.load(Ordering::SeqCst));
        assert_eq!(calls, [1, 1, 1], "round {round}");
    }
}

/// 1,000 loads from spawned tasks, half of them aborted at random points
/// (before registering, while their batch forms, while they drive it or
/// wait for it), 100 rounds: every kept load is answered, nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_callers_never_hang_the_others() {
    let rounds = async {
        for round in 0..100 {
            let source = Slow::default();
            source.delay(1, 1);
            let loader = Loader::new(source);
            let tasks: Vec<_> = (1..=1000_i64)
                .map(|id| {
                    let loader = loader.clone();
                    tokio::spawn(async move { (id, loader.load(id % 300).await) })
                })
                .collect();
            let mut kept = Vec::new();
            for (i, task) in tasks.into_iter().enumerate() {
                if i % 2 == 0 {
                    kept.push(task);
                } else {
                    for _ in 0..(i % 4) {
                        tokio::task::yield_now().await;
                    }
                    task.abort();
                }
            }
            for task in kept {
                let (id, result) = task.await.expect("kept task finished");
                let got = result.unwrap_or_else(|e| panic!("round {round}: load {id}: {e}"));
                assert_eq!(got.as_deref(), Some(&(id % 300)), "round {round}");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), rounds)
        .await
        .expect("no round may hang");
}
