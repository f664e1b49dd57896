//! The `users_groups` table: one row per membership of a user in a group.

use sea_orm::entity::prelude::{
    ActiveModelBehavior, DeriveEntityModel, DerivePrimaryKey, DeriveRelation, EntityTrait,
    EnumIter, PrimaryKeyTrait, Related, RelationDef, RelationTrait,
};

use crate::StoreEntity;
use crate::{group, user};

/// A membership. `(user_id, group_id)` is unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, StoreEntity)]
#[sea_orm(table_name = "users_groups")]
#[store(upsert_key(user_id, group_id))]
pub struct Model {
    /// Primary key; on PostgreSQL drawn from the shared `all_id_seq`.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The member (`users.id`).
    pub user_id: i64,
    /// The group (`groups.id`).
    pub group_id: i64,
}

/// Relations of `users_groups`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The member.
    #[sea_orm(
        belongs_to = "user::Entity",
        from = "Column::UserId",
        to = "user::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    User,
    /// The group.
    #[sea_orm(
        belongs_to = "group::Entity",
        from = "Column::GroupId",
        to = "group::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Group,
}

impl Related<user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<group::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Group.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
