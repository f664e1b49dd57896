//! sea-orm entities for Roster's directory: users, groups, group types and the
//! `users_groups` membership table.
//!
//! The crate is deliberately thin: one module per table, the relations between
//! them, and the [`Versioned`] trait that lets generic code find the
//! optimistic-concurrency column. No business logic lives here.
//!
//! # Layout
//! - [`user`]: `users`, with the M:N link to groups.
//! - [`group`]: `groups`, belonging to a group type, with the M:N link to users.
//! - [`grouptype`]: `grouptypes`, owning many groups.
//! - [`users_groups`]: `users_groups`, one row per membership.
//! - [`versioned`]: the [`Versioned`] trait over the three versioned tables.
//! - [`prelude`]: the entities under short names.
//!
//! # Example
//! ```
//! use roster_entity::{prelude::*, user};
//! use sea_orm::{DbBackend, ModelTrait, QueryTrait};
//!
//! let alice = user::Model {
//!     id: 7,
//!     name: Some("Alice".into()),
//!     surname: None,
//!     email: None,
//!     lastchange: chrono::Utc::now(),
//!     external_id: None,
//! };
//! // A user's groups are found through the `users_groups` table.
//! let sql = alice.find_related(Group).build(DbBackend::Postgres).to_string();
//! assert!(sql.contains(r#"INNER JOIN "users_groups""#));
//! ```

pub mod group;
pub mod grouptype;
pub mod user;
pub mod users_groups;
pub mod versioned;

pub use versioned::Versioned;

/// The entities under short names: `use roster_entity::prelude::*;`.
pub mod prelude {
    pub use crate::group::Entity as Group;
    pub use crate::grouptype::Entity as GroupType;
    pub use crate::user::Entity as User;
    pub use crate::users_groups::Entity as UsersGroups;
}
