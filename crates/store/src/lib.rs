//! Roster's store: CRUD helpers with optimistic concurrency on `lastchange`,
//! transactions with retry, and write-through to the loader cache.
//!
//! Not implemented yet: this crate is a placeholder for the store issue. The
//! contract it will implement is "Store contract" in `DESIGN.md`.
