//! The loader's cache: what a request has already loaded.

use std::collections::HashMap;
use std::sync::Arc;

use crate::key::Key;

/// A cache of loaded values, `None` meaning "known to be missing".
///
/// The default, [`MapCache`], keeps everything for the life of the loader
/// (one request). Supply your own through
/// [`LoaderOptions::cache`](crate::LoaderOptions::cache), e.g. a bounded one
/// for a long batch job. The loader calls these methods under its own lock
/// (so they take `&mut self` and need no locking of their own), briefly and
/// never across an `.await`; they must not call back into the loader.
pub trait Cache<V, K = i64>: Send + 'static {
    /// The cached entry for `key`: `Some(None)` for a known-missing key.
    fn get(&mut self, key: &K) -> Option<Option<Arc<V>>>;
    /// Caches `value` for `key`.
    fn insert(&mut self, key: K, value: Option<Arc<V>>);
    /// Forgets `key`.
    fn remove(&mut self, key: &K);
    /// Forgets everything.
    fn clear(&mut self);
}

/// The default cache: a hash map, unbounded, for one request.
#[derive(Debug)]
pub struct MapCache<V, K = i64> {
    map: HashMap<K, Option<Arc<V>>>,
}

impl<V, K> Default for MapCache<V, K> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
        }
    }
}

impl<V, K> MapCache<V, K> {
    /// How many keys are cached (found or missing).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<V: Send + Sync + 'static, K: Key> Cache<V, K> for MapCache<V, K> {
    fn get(&mut self, key: &K) -> Option<Option<Arc<V>>> {
        self.map.get(key).cloned()
    }

    fn insert(&mut self, key: K, value: Option<Arc<V>>) {
        self.map.insert(key, value);
    }

    fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }

    fn clear(&mut self) {
        self.map.clear();
    }
}
