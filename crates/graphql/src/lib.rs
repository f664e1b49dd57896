//! Roster's GraphQL schema (async-graphql), resolved through the loader and
//! the store.
//!
//! Not implemented yet: this crate is a placeholder for the GraphQL issue. The
//! schema it will implement is "GraphQL contract" in `DESIGN.md`.
