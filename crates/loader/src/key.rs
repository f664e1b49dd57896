//! [`Key`]: what a loader can be keyed by.

use std::hash::Hash;

/// A loader key: any hashable, cloneable value that can cross threads, such
/// as an `i64` id, a `String` e-mail address or an `(i64, i64)` pair.
///
/// Implemented for every type with those properties; there is nothing to
/// implement. Keys are compared as Rust compares them (`Eq`): a text key
/// matches byte for byte.
pub trait Key: Eq + Hash + Clone + Send + Sync + 'static {}

impl<T: Eq + Hash + Clone + Send + Sync + 'static> Key for T {}
