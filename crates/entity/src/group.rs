//! The `groups` table.

use sea_orm::entity::prelude::{
    ActiveModelBehavior, DeriveEntityModel, DerivePrimaryKey, DeriveRelation, EntityTrait,
    EnumIter, Linked, PrimaryKeyTrait, Related, RelationDef, RelationTrait,
};

use crate::StoreEntity;
use crate::{grouptype, user, users_groups};

/// A group of users, of one group type.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, StoreEntity)]
#[sea_orm(table_name = "groups")]
pub struct Model {
    /// Primary key; on PostgreSQL drawn from the shared `all_id_seq`.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Display name.
    #[sea_orm(column_type = "Text", nullable)]
    pub name: Option<String>,
    /// Time of the last change (UTC, microseconds); the optimistic-concurrency token.
    pub lastchange: chrono::DateTime<chrono::Utc>,
    /// The entry year this group belongs to, if any.
    #[sea_orm(column_name = "entryYearId", nullable)]
    pub entry_year_id: Option<i32>,
    /// Identifier of this group in an external system (indexed).
    #[sea_orm(column_name = "externalId", nullable)]
    pub external_id: Option<String>,
    /// The group's type (`grouptypes.id`).
    #[sea_orm(nullable)]
    pub grouptype_id: Option<i64>,
}

/// Relations of `groups`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The group's type (N:1).
    #[sea_orm(
        belongs_to = "grouptype::Entity",
        from = "Column::GrouptypeId",
        to = "grouptype::Column::Id",
        on_update = "Cascade",
        on_delete = "NoAction"
    )]
    GroupType,
    /// The group's membership rows.
    #[sea_orm(has_many = "users_groups::Entity")]
    UsersGroups,
}

impl Related<grouptype::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::GroupType.def()
    }
}

impl Related<users_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsersGroups.def()
    }
}

/// A group's users, through `users_groups`.
impl Related<user::Entity> for Entity {
    fn to() -> RelationDef {
        users_groups::Relation::User.def()
    }

    fn via() -> Option<RelationDef> {
        Some(users_groups::Relation::Group.def().rev())
    }
}

/// The chain group -> `users_groups` -> user, for `find_also_linked` / `find_linked`.
#[derive(Clone, Copy, Debug)]
pub struct GroupToUsers;

impl Linked for GroupToUsers {
    type FromEntity = Entity;
    type ToEntity = user::Entity;

    fn link(&self) -> Vec<RelationDef> {
        vec![
            users_groups::Relation::Group.def().rev(),
            users_groups::Relation::User.def(),
        ]
    }
}

impl ActiveModelBehavior for ActiveModel {}
