//! The loader's cache: what a request has already loaded.

use dashmap::DashMap;

/// A cache of loaded values, `None` meaning "known to be missing".
///
/// The default, [`MapCache`], keeps everything for the life of the loader
/// (one request). Supply your own through
/// [`LoaderOptions::cache`](crate::LoaderOptions::cache), e.g. a bounded one
/// for a long batch job. Methods are called briefly and never across an
/// `.await`; they must not call back into the loader.
pub trait Cache<T>: Send + Sync {
    /// The cached entry for `id`: `Some(None)` for a known-missing id.
    fn get(&self, id: i64) -> Option<Option<T>>;
    /// Caches `value` for `id`.
    fn insert(&self, id: i64, value: Option<T>);
    /// Forgets `id`.
    fn remove(&self, id: i64);
    /// Forgets everything.
    fn clear(&self);
}

/// The default cache: a concurrent map, unbounded, for one request.
#[derive(Debug)]
pub struct MapCache<T> {
    map: DashMap<i64, Option<T>>,
}

impl<T> Default for MapCache<T> {
    fn default() -> Self {
        Self {
            map: DashMap::new(),
        }
    }
}

impl<T> MapCache<T> {
    /// How many ids are cached (found or missing).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<T: Clone + Send + Sync> Cache<T> for MapCache<T> {
    fn get(&self, id: i64) -> Option<Option<T>> {
        self.map.get(&id).map(|entry| entry.value().clone())
    }

    fn insert(&self, id: i64, value: Option<T>) {
        self.map.insert(id, value);
    }

    fn remove(&self, id: i64) {
        self.map.remove(&id);
    }

    fn clear(&self) {
        self.map.clear();
    }
}
