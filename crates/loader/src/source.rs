//! [`BatchSource`]: where a loader's batches are answered.

use std::collections::HashMap;

use crate::error::BoxError;

/// Answers one batch of ids. Implement it to put a loader in front of
/// anything: a table ([`EntitySource`](crate::EntitySource)), a relation
/// ([`RelationSource`](crate::RelationSource)), another service.
///
/// A source is built per request and may carry that request's context (the
/// caller's identity, a visibility filter): a loader and its cache live for
/// one request, so nothing leaks between callers.
///
/// ```
/// use std::collections::HashMap;
/// use roster_loader::{BatchSource, BoxError};
///
/// /// Squares, for ids up to `max`.
/// struct Squares { max: i64 }
///
/// #[async_trait::async_trait]
/// impl BatchSource for Squares {
///     type Value = i64;
///     fn name(&self) -> &'static str { "squares" }
///     async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, BoxError> {
///         Ok(ids.iter().filter(|&&id| id <= self.max).map(|&id| (id, id * id)).collect())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait BatchSource: Send + Sync + 'static {
    /// What one id loads to.
    type Value: Clone + Send + Sync + 'static;

    /// A short name for logs and metrics (e.g. the table name).
    fn name(&self) -> &'static str;

    /// The most ids one call of [`load`](Self::load) may be given (e.g. a
    /// backend's bind-parameter limit). Larger batches are split into several
    /// calls. Unlimited by default.
    fn max_ids_per_call(&self) -> usize {
        usize::MAX
    }

    /// Loads the values of `ids` (distinct, non-empty). An id without a value
    /// is simply absent from the map; the loader answers it with `None`.
    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, Self::Value>, BoxError>;
}
