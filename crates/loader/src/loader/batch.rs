//! One batch: the keys it asks for, who waits for it, and its answer.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::SetOnce;

use crate::error::Error;
use crate::scope::LoaderScope;

/// What a batch answers: each key's value by its position in the batch, or
/// the error every waiter gets.
pub(crate) type BatchResult<V> = Result<Vec<Option<std::sync::Arc<V>>>, Error>;

/// The bit of [`Batch::waiters`] set once the batch has answered.
const ANSWERED: usize = 1 << (usize::BITS - 1);

/// A batch of distinct keys, answered once.
pub(crate) struct Batch<V, K> {
    /// How many keys the batch has so far (written under the loader's lock,
    /// read without it by the batch's driver).
    len: AtomicUsize,
    /// The keys, set once when the batch is sealed (under the loader's
    /// lock); until then they are in the loader's state.
    keys: OnceLock<Vec<K>>,
    pub(crate) opened: Instant,
    /// The live claims on the answer (one per `load`, one per batch per
    /// `load_many`), and the [`ANSWERED`] bit. One word, so that "answered"
    /// and "how many were waiting" are read together.
    waiters: AtomicUsize,
    result: SetOnce<BatchResult<V>>,
}

impl<V, K> Batch<V, K> {
    pub(crate) fn new() -> Self {
        Self {
            len: AtomicUsize::new(0),
            keys: OnceLock::new(),
            opened: Instant::now(),
            waiters: AtomicUsize::new(0),
            result: SetOnce::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub(crate) fn set_len(&self, len: usize) {
        self.len.store(len, Ordering::Release);
    }

    /// Whether the batch takes no more keys.
    pub(crate) fn is_sealed(&self) -> bool {
        self.keys.get().is_some()
    }

    /// Seals the batch with `keys` (called once, under the loader's lock).
    pub(crate) fn seal(&self, keys: Vec<K>) {
        let _ = self.keys.set(keys);
    }

    /// The sealed keys (empty before sealing).
    pub(crate) fn keys(&self) -> &[K] {
        self.keys.get().map_or(&[], Vec::as_slice)
    }

    /// Counts one more claim (under the loader's lock, so that no claim can
    /// arrive once the batch is answered or abandoned).
    pub(crate) fn add_waiter(&self) {
        self.waiters.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether anyone still waits for the answer.
    pub(crate) fn is_wanted(&self) -> bool {
        self.waiters.load(Ordering::Acquire) & !ANSWERED > 0
    }

    /// The answer, once there is one.
    pub(crate) fn result(&self) -> Option<&BatchResult<V>> {
        self.result.get()
    }

    /// Answers the batch (the first answer wins) and counts its waiters as
    /// pending wake-ups in `scope` until each resumes.
    pub(crate) fn answer(&self, result: BatchResult<V>, scope: &LoaderScope) {
        if self.result.set(result).is_err() {
            return;
        }
        let before = self.waiters.fetch_or(ANSWERED, Ordering::AcqRel);
        if before & ANSWERED == 0 {
            scope.answered(before & !ANSWERED);
        }
    }
}

/// One claim on a batch's answer. Dropping it (answer read, or the load
/// cancelled) keeps the batch's waiter count and the scope's count of
/// pending wake-ups right.
pub(crate) struct Waiter<'a, V, K> {
    pub(crate) batch: std::sync::Arc<Batch<V, K>>,
    scope: &'a LoaderScope,
}

impl<'a, V, K> Waiter<'a, V, K> {
    /// Takes over a claim counted by [`Batch::add_waiter`].
    pub(crate) fn adopt(batch: std::sync::Arc<Batch<V, K>>, scope: &'a LoaderScope) -> Self {
        Self { batch, scope }
    }

    /// Waits for the batch's answer.
    pub(crate) async fn wait(&self) -> &BatchResult<V> {
        self.batch.result.wait().await
    }
}

impl<V, K> Drop for Waiter<'_, V, K> {
    fn drop(&mut self) {
        let before = self.batch.waiters.fetch_sub(1, Ordering::AcqRel);
        if before & ANSWERED != 0 {
            self.scope.resumed();
        }
    }
}
