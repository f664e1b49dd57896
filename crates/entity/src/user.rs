//! The `users` table.

use sea_orm::entity::prelude::{
    ActiveModelBehavior, DeriveEntityModel, DerivePrimaryKey, DeriveRelation, EntityTrait,
    EnumIter, Linked, PrimaryKeyTrait, Related, RelationDef, RelationTrait,
};

use crate::StoreEntity;
use crate::{group, users_groups};

/// A person in the directory.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, StoreEntity)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// Primary key; on PostgreSQL drawn from the shared `all_id_seq`.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Given name.
    #[sea_orm(column_type = "Text", nullable)]
    pub name: Option<String>,
    /// Family name.
    #[sea_orm(column_type = "Text", nullable)]
    pub surname: Option<String>,
    /// E-mail address, free text.
    #[sea_orm(column_type = "Text", nullable)]
    pub email: Option<String>,
    /// Time of the last change (UTC, microseconds); the optimistic-concurrency token.
    pub lastchange: chrono::DateTime<chrono::Utc>,
    /// Identifier of this user in an external system (indexed).
    #[sea_orm(column_name = "externalId", nullable)]
    pub external_id: Option<i64>,
}

/// Relations of `users`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user's membership rows.
    #[sea_orm(has_many = "users_groups::Entity")]
    UsersGroups,
}

impl Related<users_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsersGroups.def()
    }
}

/// A user's groups, through `users_groups`.
impl Related<group::Entity> for Entity {
    fn to() -> RelationDef {
        users_groups::Relation::Group.def()
    }

    fn via() -> Option<RelationDef> {
        Some(users_groups::Relation::User.def().rev())
    }
}

/// The chain user -> `users_groups` -> group, for `find_also_linked` / `find_linked`.
#[derive(Clone, Copy, Debug)]
pub struct UserToGroups;

impl Linked for UserToGroups {
    type FromEntity = Entity;
    type ToEntity = group::Entity;

    fn link(&self) -> Vec<RelationDef> {
        vec![
            users_groups::Relation::User.def().rev(),
            users_groups::Relation::Group.def(),
        ]
    }
}

impl ActiveModelBehavior for ActiveModel {}
