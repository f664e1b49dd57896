//! Counters and histograms a server can export (e.g. as Prometheus text).
//!
//! Loaders live for one request; pass one shared [`LoaderMetrics`] to all of
//! them through [`LoaderOptions::metrics`](crate::LoaderOptions::metrics) to
//! aggregate across requests.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the batch-size histogram buckets (ids per batch).
pub const BATCH_SIZE_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
/// Upper bounds of the dispatch-wait histogram buckets, in microseconds.
pub const DISPATCH_WAIT_BUCKETS_US: [u64; 10] =
    [1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 100_000];

/// Live counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct LoaderMetrics {
    loads: AtomicU64,
    cache_hits: AtomicU64,
    deduplicated: AtomicU64,
    batches: AtomicU64,
    statements: AtomicU64,
    failed_batches: AtomicU64,
    batch_size: Histogram<{ BATCH_SIZE_BUCKETS.len() }>,
    dispatch_wait_us: Histogram<{ DISPATCH_WAIT_BUCKETS_US.len() }>,
}

/// A fixed-bucket histogram: counts per bucket (cumulative on read), sum, count.
#[derive(Debug)]
struct Histogram<const N: usize> {
    /// `counts[i]` counts values in bucket `i`; `counts[N]` those above the last bound.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Self {
            counts: (0..=N).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn observe(&self, bounds: &[u64; N], value: u64) {
        let bucket = bounds.iter().position(|&b| value <= b).unwrap_or(N);
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    fn snapshot(&self, bounds: &[u64; N]) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = bounds
            .iter()
            .enumerate()
            .map(|(i, &bound)| {
                cumulative += self.counts[i].load(Relaxed);
                (bound, cumulative)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            count: cumulative + self.counts[N].load(Relaxed),
            sum: self.sum.load(Relaxed),
        }
    }
}

impl LoaderMetrics {
    /// Fresh, zeroed metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a loader's locally counted loads, cache hits and
    /// deduplicated loads (loaders count under their own lock and add here
    /// once per batch, not once per load).
    pub(crate) fn loads(&self, loads: u64, cache_hits: u64, deduplicated: u64) {
        if loads > 0 {
            self.loads.fetch_add(loads, Relaxed);
        }
        if cache_hits > 0 {
            self.cache_hits.fetch_add(cache_hits, Relaxed);
        }
        if deduplicated > 0 {
            self.deduplicated.fetch_add(deduplicated, Relaxed);
        }
    }
    pub(crate) fn statement(&self) {
        self.statements.fetch_add(1, Relaxed);
    }
    pub(crate) fn failed_batch(&self) {
        self.failed_batches.fetch_add(1, Relaxed);
    }
    pub(crate) fn batch(&self, size: usize, waited: Duration) {
        self.batches.fetch_add(1, Relaxed);
        self.batch_size
            .observe(&BATCH_SIZE_BUCKETS, u64::try_from(size).unwrap_or(u64::MAX));
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.dispatch_wait_us
            .observe(&DISPATCH_WAIT_BUCKETS_US, micros);
    }

    /// A consistent-enough copy of the counters (each read atomically).
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            loads: self.loads.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            deduplicated: self.deduplicated.load(Relaxed),
            batches: self.batches.load(Relaxed),
            statements: self.statements.load(Relaxed),
            failed_batches: self.failed_batches.load(Relaxed),
            batch_size: self.batch_size.snapshot(&BATCH_SIZE_BUCKETS),
            dispatch_wait_us: self.dispatch_wait_us.snapshot(&DISPATCH_WAIT_BUCKETS_US),
        }
    }
}

/// A histogram as read: cumulative counts per upper bound, plus count and sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations <= bound)`, bounds ascending.
    pub buckets: Vec<(u64, u64)>,
    /// All observations (including those above the last bound).
    pub count: u64,
    /// The sum of all observed values.
    pub sum: u64,
}

/// The loader metrics at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Ids asked for through `load`/`load_many`.
    pub loads: u64,
    /// Loads answered from the cache.
    pub cache_hits: u64,
    /// Loads that joined a batch already asking for the same id.
    pub deduplicated: u64,
    /// Batches dispatched.
    pub batches: u64,
    /// Source calls (SQL statements, for database sources).
    pub statements: u64,
    /// Batches whose source call failed.
    pub failed_batches: u64,
    /// Distinct ids per batch.
    pub batch_size: HistogramSnapshot,
    /// Microseconds from a batch's first load to its dispatch.
    pub dispatch_wait_us: HistogramSnapshot,
}

impl MetricsSnapshot {
    /// Share of loads answered from the cache (0 when nothing was loaded).
    pub fn cache_hit_ratio(&self) -> f64 {
        ratio(self.cache_hits, self.loads)
    }

    /// Share of loads that joined another load of the same id.
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.deduplicated, self.loads)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
