//! Roster's store: CRUD helpers with optimistic concurrency on `lastchange`,
//! transactions with retry, and write-through to the loader cache.
//!
//! The contract it implements is "Store contract" in `DESIGN.md`.
//!
//! # Layout
//! - [`Loaders`]: the per-request set of loaders the store keeps current.

mod loaders;

pub use loaders::Loaders;
