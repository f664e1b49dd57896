//! Loader behaviour that needs no database: timing, panics, custom caches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::{BatchSource, BoxError, Cache, Error, Loader, LoaderOptions, MapCache};

/// Squares of ids up to 1,000; counts calls; panics on id 666.
#[derive(Default)]
struct Squares {
    calls: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl BatchSource for Squares {
    type Value = i64;
    fn name(&self) -> &'static str {
        "squares"
    }
    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(!ids.contains(&666), "the source panics on 666");
        Ok(ids
            .iter()
            .filter(|&&id| id <= 1000)
            .map(|&id| (id, id * id))
            .collect())
    }
}

#[tokio::test(start_paused = true)]
async fn sequential_loads_never_wait_on_a_timer() {
    let source = Squares::default();
    let calls = Arc::clone(&source.calls);
    let loader = Loader::with_options(source, LoaderOptions::new().cache_enabled(false));
    let start = tokio::time::Instant::now();
    for id in 1..=100 {
        assert_eq!(loader.load(id).await.expect("load"), Some(id * id));
    }
    // With the clock paused, any sleep would auto-advance it.
    assert_eq!(tokio::time::Instant::now(), start, "the loader slept");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        100,
        "one call per sequential load"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_loads_coalesce_without_a_timer() {
    let source = Squares::default();
    let calls = Arc::clone(&source.calls);
    let loader = Loader::new(source);
    let start = tokio::time::Instant::now();
    let results = futures::future::join_all((1..=500).map(|id| loader.load(id))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(tokio::time::Instant::now(), start);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
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
    assert_eq!(loader.load(7).await.expect("next batch works"), Some(49));
}

/// Answers after `delay_ms` (changeable between loads).
struct Slow {
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait::async_trait]
impl BatchSource for Slow {
    type Value = i64;
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, BoxError> {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        Ok(ids.iter().map(|&id| (id, id)).collect())
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_over_the_time_limit_fails_every_waiter_and_is_not_cached() {
    use std::time::Duration;
    let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(10_000));
    let source = Slow {
        delay_ms: Arc::clone(&delay_ms),
    };
    let limit = Duration::from_secs(1);
    let loader = Loader::with_options(source, LoaderOptions::new().timeout(limit));
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
    delay_ms.store(0, Ordering::SeqCst);
    let start = tokio::time::Instant::now();
    assert_eq!(loader.load(3).await.expect("answered in time"), Some(3));
    assert_eq!(tokio::time::Instant::now(), start);
}

/// A cache that panics on one id, to prove a panic under the loader's lock
/// does not poison it.
#[derive(Default)]
struct Touchy {
    inner: MapCache<i64>,
    inserts: Mutex<Vec<i64>>,
}

impl Cache<i64> for Arc<Touchy> {
    fn get(&self, id: i64) -> Option<Option<i64>> {
        self.inner.get(id)
    }
    fn insert(&self, id: i64, value: Option<i64>) {
        self.inserts.lock().expect("inserts").push(id);
        assert_ne!(id, 13, "the cache panics on 13");
        self.inner.insert(id, value);
    }
    fn remove(&self, id: i64) {
        self.inner.remove(id);
    }
    fn clear(&self) {
        self.inner.clear();
    }
}

#[tokio::test]
async fn a_custom_cache_is_used_and_its_panic_does_not_poison_the_loader() {
    let cache = Arc::new(Touchy::default());
    let loader = Loader::with_options(
        Squares::default(),
        LoaderOptions::new().cache(Arc::clone(&cache)),
    );
    assert_eq!(loader.load(2).await.expect("load"), Some(4));
    assert_eq!(*cache.inserts.lock().expect("inserts"), [2]);
    assert!(
        loader.load(13).await.is_err(),
        "the batch whose caching panicked fails"
    );
    assert_eq!(loader.load(3).await.expect("still usable"), Some(9));
    assert_eq!(loader.load(2).await.expect("cached"), Some(4));
}

#[test]
fn loading_outside_a_runtime_is_an_error_not_a_panic() {
    let loader = Loader::new(Squares::default());
    let result = futures::executor::block_on(loader.load(1));
    assert!(matches!(result, Err(Error::NoRuntime)), "{result:?}");
}

/// Children of each parent id: `parent * 10 + 0..fanout`, after `latency`.
struct Children {
    calls: Arc<AtomicUsize>,
    latency: std::time::Duration,
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
    use std::time::Duration;
    for round in 0..20 {
        let scope = crate::LoaderScope::new();
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
