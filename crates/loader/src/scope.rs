//! [`LoaderScope`]: what the loaders serving one request share, so that a
//! forming batch can tell when the request still has work about to resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shared by the loaders of one request (pass it with
/// [`LoaderOptions::scope`](crate::LoaderOptions::scope)).
///
/// It counts the loads whose batch has answered but whose caller has not
/// resumed yet. While that count is above zero, the request is still waking
/// up from a finished batch, and a new batch keeps gathering ids instead of
/// going out half-full. This is what keeps a GraphQL fan-out at one
/// statement per level on the multi-thread runtime, where the wake-ups of
/// one level arrive from another worker, in waves.
///
/// Without an explicit scope, each loader has its own.
#[derive(Debug, Clone, Default)]
pub struct LoaderScope {
    inner: Arc<ScopeInner>,
}

#[derive(Debug, Default)]
struct ScopeInner {
    /// Waiters of finished batches that have not resumed (or been dropped).
    answered_not_resumed: AtomicUsize,
}

impl LoaderScope {
    /// A fresh scope, for one request.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many loads have been answered but not yet resumed.
    pub fn pending_wakeups(&self) -> usize {
        self.inner.answered_not_resumed.load(Ordering::Acquire)
    }

    pub(crate) fn answered(&self, waiters: usize) {
        self.inner
            .answered_not_resumed
            .fetch_add(waiters, Ordering::AcqRel);
    }

    pub(crate) fn resumed(&self) {
        self.inner
            .answered_not_resumed
            .fetch_sub(1, Ordering::AcqRel);
    }
}
