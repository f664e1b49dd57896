//! Roster's batching loader: concurrent `load(id)` calls made while serving one
//! request coalesce into one `SELECT … WHERE id IN (…)`, cached for the life of
//! the request.
//!
//! Not implemented yet: this crate is a placeholder for the loader issue. The
//! contract it will implement is "Loader contract" in `DESIGN.md`.
