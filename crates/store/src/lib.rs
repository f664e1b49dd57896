//! Roster's store: CRUD helpers with optimistic concurrency on `lastchange`,
//! transactions with retry, and write-through to the loader cache.
//!
//! The contract it implements is "Store contract" in `DESIGN.md`.
//!
//! # Layout
//! - [`Store`]: one request's handle: [`get`](Store::get),
//!   [`insert`](Store::insert), [`update`](Store::update) (optimistic, one
//!   atomic statement), [`delete`](Store::delete), [`filter`](Store::filter),
//!   [`page`](Store::page), [`select`](Store::select),
//!   [`stream`](Store::stream), memberships
//!   ([`add_membership`](Store::add_membership),
//!   [`remove_membership`](Store::remove_membership)), and
//!   [`transaction`](Store::transaction) with retry.
//! - [`Store::upsert_many`]: bulk insert-or-update in chunks of one
//!   statement, reported chunk by chunk ([`ChunkReport`]).
//! - [`Loaders`]: the per-request registry of loaders (by id, by key, by
//!   relation; each made on first use) the store keeps current.
//! - [`Error`]: `Conflict`, `NotFound`, `Invalid` (with an
//!   [`InvalidReason`], or the store's own [`Refusal`]), `Timeout`,
//!   `Database` (with the [`Operation`] and the backend's code).
//! - [`StoreEntity`] and [`Versioned`] (re-exported from `roster-entity`,
//!   derived with `#[derive(StoreEntity)]`): what makes any sea-orm entity
//!   storable, the directory's tables and a service's own alike.
//! - [`Cluster`] ([`cluster`]): a primary and its read replicas; reads
//!   routed to a healthy replica, causal reads by [`CommitPosition`],
//!   failover to another candidate host.
//! - [`pool`]: opening a pool with a statement time limit, a bounded
//!   acquire wait and (on MySQL) a check that keeps half-read connections
//!   out of the pool ([`PoolSettings`]).

pub mod cluster;
mod crud;
mod error;
mod lastchange;
mod loaders;
mod membership;
pub mod pool;
mod store;
mod transaction;
mod upsert;

pub use cluster::{BadPosition, Cluster, ClusterError, CommitPosition, ReadFrom, WeakCluster};
pub use crud::MAX_PAGE;
pub use error::{Conflict, Error, InvalidReason, Operation, Refusal, Result};
pub use lastchange::truncate_to_micros;
pub use loaders::Loaders;
pub use pool::PoolSettings;
pub use roster_entity::{StoreEntity, Versioned};

/// What `#[derive(StoreEntity)]` refers to in a crate that depends on this
/// one only; not an API.
#[doc(hidden)]
pub use roster_entity::__private;
pub use sea_orm::IsolationLevel;
pub use store::Store;
pub use transaction::{RetryPolicy, TxOptions};
pub use upsert::{ChunkReport, OnConflict, UpsertOptions, UpsertTotals, bind_limit};
