//! [`BatchSource`]: where a loader's batches are answered.

use std::collections::HashMap;

use crate::error::BoxError;
use crate::key::Key;

/// Answers one batch of keys. Implement it to put a loader in front of
/// anything: a table ([`EntitySource`](crate::EntitySource)), a relation
/// ([`RelationSource`](crate::RelationSource)), another service.
///
/// `K` is the key type, `i64` (a row id) unless said otherwise.
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
///
/// /// String keys work the same way.
/// struct Lengths;
///
/// #[async_trait::async_trait]
/// impl BatchSource<String> for Lengths {
///     type Value = usize;
///     fn name(&self) -> &'static str { "lengths" }
///     async fn load(&self, words: &[String]) -> Result<HashMap<String, usize>, BoxError> {
///         Ok(words.iter().map(|w| (w.clone(), w.len())).collect())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait BatchSource<K: Key = i64>: Send + Sync + 'static {
    /// What one key loads to. The loader shares it (`Arc`) between every
    /// load of that key and the cache: it is never cloned.
    type Value: Send + Sync + 'static;

    /// A short name for logs and metrics (e.g. the table name).
    fn name(&self) -> &'static str;

    /// The most keys one call of [`load`](Self::load) may be given (e.g. a
    /// backend's bind-parameter limit). Larger batches are split into several
    /// calls. Unlimited by default.
    fn max_ids_per_call(&self) -> usize {
        usize::MAX
    }

    /// Loads the values of `keys` (distinct, non-empty). A key without a
    /// value is simply absent from the map; the loader answers it with
    /// `None`. Entries for keys not asked for are ignored.
    async fn load(&self, keys: &[K]) -> Result<HashMap<K, Self::Value>, BoxError>;
}
