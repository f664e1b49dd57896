//! A loader's bookkeeping, kept under its lock: the cache and the keys in
//! flight (one map, so a load costs one hash lookup), and the batch being
//! filled.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;

use super::batch::Batch;
use crate::cache::Cache;
use crate::key::Key;
use crate::metrics::LoaderMetrics;

/// Where answers are cached.
pub(super) enum CachePolicy<V, K> {
    /// In the loader's own map, beside the keys in flight (the default).
    Map,
    /// In a cache of the caller's ([`LoaderOptions::cache`](crate::LoaderOptions::cache)).
    Custom(Box<dyn Cache<V, K>>),
    /// Nowhere: every load after a batch asks again.
    Off,
}

pub(super) struct State<V, K> {
    entries: HashMap<K, Entry<V, K>>,
    policy: CachePolicy<V, K>,
    open: Option<Open<V, K>>,
    pub(super) counts: Counts,
}

/// What the loader knows of one key.
struct Entry<V, K> {
    /// The cached answer (`Some(None)`: known to be missing); only with
    /// [`CachePolicy::Map`].
    cached: Option<Option<Arc<V>>>,
    /// The batch asking for the key.
    flight: Option<Flight<V, K>>,
}

/// Which batch answers a key in flight, at which position, and whether its
/// answer may be cached (not if the key was primed while its batch was
/// still forming).
struct Flight<V, K> {
    batch: Arc<Batch<V, K>>,
    index: usize,
    cache_answer: bool,
}

/// The batch being filled, and its keys so far.
struct Open<V, K> {
    batch: Arc<Batch<V, K>>,
    keys: Vec<K>,
}

/// Metrics counted under the lock, added to [`LoaderMetrics`] per batch.
#[derive(Default)]
pub(super) struct Counts {
    loads: u64,
    cache_hits: u64,
    deduplicated: u64,
}

/// Where one key's answer comes from.
pub(super) enum Claim<V, K> {
    /// The cache had it.
    Ready(Option<Arc<V>>),
    /// A batch already asks for it (or it was just added to the open one),
    /// at this position.
    Join(Arc<Batch<V, K>>, usize),
    /// It opened a new batch, which the caller drives.
    Open(Arc<Batch<V, K>>, usize),
}

impl<V: 'static, K: Key> State<V, K> {
    pub(super) fn new(policy: CachePolicy<V, K>) -> Self {
        Self {
            entries: HashMap::new(),
            policy,
            open: None,
            counts: Counts::default(),
        }
    }

    /// Finds `key` in the cache or in flight, or adds it to the open batch
    /// (opening one if needed; sealing it once it holds `max_batch` keys).
    pub(super) fn claim(&mut self, key: K, max_batch: usize) -> Claim<V, K> {
        let State {
            entries,
            policy,
            open,
            counts,
        } = self;
        counts.loads += 1;
        if let CachePolicy::Custom(cache) = policy
            && let Some(hit) = cache.get(&key)
        {
            counts.cache_hits += 1;
            return Claim::Ready(hit);
        }
        let (entry, batch_key) = match entries.entry(key) {
            MapEntry::Occupied(occupied) => {
                let batch_key = occupied.key().clone();
                let entry = occupied.into_mut();
                if let Some(hit) = &entry.cached {
                    counts.cache_hits += 1;
                    return Claim::Ready(hit.clone());
                }
                if let Some(flight) = &entry.flight {
                    counts.deduplicated += 1;
                    return Claim::Join(Arc::clone(&flight.batch), flight.index);
                }
                (entry, batch_key)
            }
            MapEntry::Vacant(vacant) => {
                let batch_key = vacant.key().clone();
                (vacant.insert(Entry::EMPTY), batch_key)
            }
        };
        let opened = open.is_none();
        let filling = open.get_or_insert_with(|| Open {
            batch: Arc::new(Batch::new()),
            keys: Vec::new(),
        });
        let index = filling.keys.len();
        filling.keys.push(batch_key);
        filling.batch.set_len(index + 1);
        let batch = Arc::clone(&filling.batch);
        entry.flight = Some(Flight {
            batch: Arc::clone(&batch),
            index,
            cache_answer: true,
        });
        if index + 1 >= max_batch
            && let Some(full) = open.take()
        {
            full.batch.seal(full.keys);
        }
        if opened {
            Claim::Open(batch, index)
        } else {
            Claim::Join(batch, index)
        }
    }

    /// Caches `value` for `key`. A batch still forming keeps the key (asking
    /// twice in one call would break the source's contract) but will not
    /// cache its answer; a batch already sealed lets the key go.
    pub(super) fn prime(&mut self, key: K, value: Option<Arc<V>>) {
        if let CachePolicy::Custom(cache) = &mut self.policy {
            cache.insert(key.clone(), value.clone());
        }
        let map = matches!(self.policy, CachePolicy::Map);
        let entry = self.entries.entry(key);
        let entry = match entry {
            MapEntry::Occupied(occupied) => occupied.into_mut(),
            MapEntry::Vacant(vacant) if map => vacant.insert(Entry::EMPTY),
            MapEntry::Vacant(_) => return,
        };
        if map {
            entry.cached = Some(value);
        }
        entry.forget_flight(false);
    }

    /// Forgets `key`: a batch still forming keeps it (and caches its
    /// answer), a batch already sealed lets it go.
    pub(super) fn clear(&mut self, key: &K) {
        if let CachePolicy::Custom(cache) = &mut self.policy {
            cache.remove(key);
        }
        if let Some(entry) = self.entries.get_mut(key) {
            entry.cached = None;
            entry.forget_flight(true);
            if entry.is_empty() {
                self.entries.remove(key);
            }
        }
    }

    /// Forgets everything cached, and every key of sealed batches.
    pub(super) fn clear_all(&mut self) {
        if let CachePolicy::Custom(cache) = &mut self.policy {
            cache.clear();
        }
        self.entries.retain(|_, entry| {
            entry.cached = None;
            entry.forget_flight(true);
            !entry.is_empty()
        });
    }

    /// Seals `batch` if it is the open one.
    pub(super) fn seal(&mut self, batch: &Arc<Batch<V, K>>) {
        if self
            .open
            .as_ref()
            .is_some_and(|open| Arc::ptr_eq(&open.batch, batch))
            && let Some(open) = self.open.take()
        {
            open.batch.seal(open.keys);
        }
    }

    /// Settles the keys `batch` still owns: caches `answers` (by position;
    /// `None` when the batch failed) where allowed, and forgets the flights.
    pub(super) fn settle(&mut self, batch: &Arc<Batch<V, K>>, answers: Option<&[Option<Arc<V>>]>) {
        let State {
            entries, policy, ..
        } = self;
        for (index, key) in batch.keys().iter().enumerate() {
            let Some(entry) = entries.get_mut(key) else {
                continue; // cleared after sealing
            };
            let Some(flight) = entry.flight.take_if(|f| f.owned_by(batch, index)) else {
                continue; // cleared, then asked again by a newer batch
            };
            if let (Some(answers), true) = (answers, flight.cache_answer) {
                let answer = answers.get(index).cloned().flatten();
                match policy {
                    CachePolicy::Map => entry.cached = Some(answer),
                    CachePolicy::Custom(cache) => cache.insert(key.clone(), answer),
                    CachePolicy::Off => {}
                }
            }
            if entry.is_empty() {
                entries.remove(key);
            }
        }
    }

    /// Forgets every trace of `batch` (it will not be asked, or it failed
    /// in a way that left no answer).
    pub(super) fn discard(&mut self, batch: &Arc<Batch<V, K>>) {
        if self
            .open
            .as_ref()
            .is_some_and(|open| Arc::ptr_eq(&open.batch, batch))
        {
            self.open = None;
        }
        self.entries.retain(|_, entry| {
            entry.flight.take_if(|f| Arc::ptr_eq(&f.batch, batch));
            !entry.is_empty()
        });
    }

    pub(super) fn flush_counts(&mut self, metrics: &LoaderMetrics) {
        self.counts.flush(metrics);
    }
}

impl Counts {
    /// Adds the counts to `metrics` and starts again from zero.
    pub(super) fn flush(&mut self, metrics: &LoaderMetrics) {
        let counts = std::mem::take(self);
        metrics.loads(counts.loads, counts.cache_hits, counts.deduplicated);
    }
}

impl<V, K> Entry<V, K> {
    const EMPTY: Self = Self {
        cached: None,
        flight: None,
    };

    fn is_empty(&self) -> bool {
        self.cached.is_none() && self.flight.is_none()
    }

    /// The key was primed (`cache_answer: false`) or cleared (`true`).
    fn forget_flight(&mut self, cache_answer: bool) {
        if let Some(flight) = &mut self.flight {
            if flight.batch.is_sealed() {
                self.flight = None;
            } else {
                flight.cache_answer = cache_answer;
            }
        }
    }
}

impl<V, K> Flight<V, K> {
    fn owned_by(&self, batch: &Arc<Batch<V, K>>, index: usize) -> bool {
        self.index == index && Arc::ptr_eq(&self.batch, batch)
    }
}
