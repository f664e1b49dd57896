//! [`LoaderOptions`]: cache on/off or your own cache, batch size, metrics,
//! a time limit per batch, and loaders to prime with each batch's rows.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::key::Key;
use crate::loader::Loader;
use crate::metrics::LoaderMetrics;
use crate::scope::LoaderScope;

/// The default maximum number of distinct keys in one batch.
pub const DEFAULT_MAX_BATCH: usize = 10_000;

/// A successful batch's answers, as [`LoaderOptions::after_batch`] hooks
/// see them.
pub struct Answers<'a, V, K = i64> {
    pub(crate) keys: &'a [K],
    pub(crate) values: &'a [Option<Arc<V>>],
}

impl<'a, V, K> Answers<'a, V, K> {
    /// Every key the batch asked for, with its value if it has one.
    pub fn iter(&self) -> impl Iterator<Item = (&'a K, Option<&'a Arc<V>>)> + 'a {
        self.keys.iter().zip(self.values.iter().map(Option::as_ref))
    }

    /// The values found.
    pub fn values(&self) -> impl Iterator<Item = &'a Arc<V>> + 'a {
        self.values.iter().flatten()
    }
}

/// Called with each successful batch's answers, before its waiters resume.
pub(crate) type AfterBatch<V, K> = Arc<dyn Fn(&Answers<'_, V, K>) + Send + Sync>;

/// Where a loader caches its answers.
pub(crate) enum CacheChoice<V, K> {
    /// In the loader's own map (the default, like [`MapCache`](crate::MapCache)).
    Map,
    /// In the caller's cache.
    Custom(Box<dyn Cache<V, K>>),
    /// Nowhere.
    Off,
}

/// How a [`Loader`] behaves.
///
/// ```
/// use std::sync::Arc;
/// use roster_loader::{LoaderMetrics, LoaderOptions};
///
/// let shared_metrics = Arc::new(LoaderMetrics::new());
/// let options = LoaderOptions::<String>::new()
///     .max_batch(500)
///     .metrics(shared_metrics.clone());
/// # let _ = options;
/// ```
pub struct LoaderOptions<V, K = i64> {
    pub(crate) cache: CacheChoice<V, K>,
    pub(crate) max_batch: usize,
    pub(crate) metrics: Arc<LoaderMetrics>,
    pub(crate) scope: LoaderScope,
    pub(crate) timeout: Option<Duration>,
    pub(crate) after_batch: Vec<AfterBatch<V, K>>,
}

impl<V: Send + Sync + 'static, K: Key> Default for LoaderOptions<V, K> {
    fn default() -> Self {
        Self {
            cache: CacheChoice::Map,
            max_batch: DEFAULT_MAX_BATCH,
            metrics: Arc::new(LoaderMetrics::new()),
            scope: LoaderScope::new(),
            timeout: None,
            after_batch: Vec::new(),
        }
    }
}

impl<V: Send + Sync + 'static, K: Key> LoaderOptions<V, K> {
    /// The defaults: a per-request cache (a map, like
    /// [`MapCache`](crate::MapCache)), batches of at most
    /// [`DEFAULT_MAX_BATCH`] keys, metrics of the loader's own, no time limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns caching on (the loader's own map) or off. Without a cache,
    /// concurrent loads still share a batch, but every later load asks again.
    pub fn cache_enabled(mut self, enabled: bool) -> Self {
        self.cache = if enabled {
            CacheChoice::Map
        } else {
            CacheChoice::Off
        };
        self
    }

    /// Uses `cache` instead of the loader's own map (e.g. a bounded cache).
    pub fn cache(mut self, cache: impl Cache<V, K>) -> Self {
        self.cache = CacheChoice::Custom(Box::new(cache));
        self
    }

    /// At most `max` distinct keys per batch (at least 1); more keys start
    /// another batch. Sources may split a batch further
    /// ([`BatchSource::max_ids_per_call`](crate::BatchSource::max_ids_per_call)).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max.max(1);
        self
    }

    /// Shares `scope` with the request's other loaders, so a batch forming
    /// in one waits while loads answered by another are still resuming (see
    /// [`LoaderScope`]). Use one scope per request.
    pub fn scope(mut self, scope: LoaderScope) -> Self {
        self.scope = scope;
        self
    }

    /// Fails a batch whose source has not answered within `limit` with
    /// [`Error::Timeout`](crate::Error::Timeout) (every waiter gets it; it is
    /// not cached). The source's call is dropped, which for a database source
    /// abandons the statement (sqlx closes or resynchronises the
    /// connection). No limit by default: sqlx has no client-side statement
    /// timeout, so without one a batch on a connection whose server stopped
    /// answering waits as long as the operating system keeps the socket.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Records into `metrics`, e.g. one instance shared by all requests.
    pub fn metrics(mut self, metrics: Arc<LoaderMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Calls `hook` with every successful batch's answers, before the
    /// batch's callers resume (e.g. to prime another loader with the rows).
    pub fn after_batch(
        mut self,
        hook: impl Fn(&Answers<'_, V, K>) + Send + Sync + 'static,
    ) -> Self {
        self.after_batch.push(Arc::new(hook));
        self
    }

    /// Primes `by_id` with every value this loader loads, under the id
    /// `id_of` gives it: a row loaded by a unique key (an e-mail address)
    /// is then in the request's by-id cache too, and loading it by id costs
    /// no statement. The value is shared, not copied.
    pub fn primes(self, by_id: &Loader<V>, id_of: fn(&V) -> i64) -> Self {
        let by_id = by_id.clone();
        self.after_batch(move |answers| {
            by_id.prime_many(
                answers
                    .values()
                    .map(|value| (id_of(value), Some(Arc::clone(value)))),
            );
        })
    }
}
