//! sea-orm entities for Roster's directory: users, groups, group types and the
//! `users_groups` membership table.
//!
//! The crate is deliberately thin: one module per table, the relations between
//! them, and their [`StoreEntity`] description (derived, like the sea-orm
//! entity, from the `Model` struct). No business logic lives here.
//!
//! # Layout
//! - [`user`]: `users`, with the M:N link to groups.
//! - [`group`]: `groups`, belonging to a group type, with the M:N link to users.
//! - [`grouptype`]: `grouptypes`, owning many groups.
//! - [`users_groups`]: `users_groups`, one row per membership.
//! - [`StoreEntity`] (trait and derive) and [`Versioned`]: what Roster's
//!   store and loaders know of a table; any service entity can have them.
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
mod store_entity;
pub mod user;
pub mod users_groups;

pub use roster_derive::StoreEntity;
pub use store_entity::{StoreEntity, Versioned};

// The derive names this crate `::roster_entity`, here too.
extern crate self as roster_entity;

/// What the derive's expansion refers to; not an API.
#[doc(hidden)]
pub mod __private {
    pub use chrono;
}

/// The entities under short names: `use roster_entity::prelude::*;`.
pub mod prelude {
    pub use crate::group::Entity as Group;
    pub use crate::grouptype::Entity as GroupType;
    pub use crate::user::Entity as User;
    pub use crate::users_groups::Entity as UsersGroups;
}
