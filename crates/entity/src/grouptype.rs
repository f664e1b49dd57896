//! The `grouptypes` table.

use sea_orm::entity::prelude::{
    ActiveModelBehavior, DeriveEntityModel, DerivePrimaryKey, DeriveRelation, EntityTrait,
    EnumIter, PrimaryKeyTrait, Related, RelationDef, RelationTrait,
};

use crate::StoreEntity;
use crate::group;

/// A kind of group (a class, a department, a committee, ...).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, StoreEntity)]
#[sea_orm(table_name = "grouptypes")]
pub struct Model {
    /// Primary key; on PostgreSQL drawn from the shared `all_id_seq`.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Display name.
    #[sea_orm(column_type = "Text", nullable)]
    pub name: Option<String>,
    /// Time of the last change (UTC, microseconds); the optimistic-concurrency token.
    pub lastchange: chrono::DateTime<chrono::Utc>,
}

/// Relations of `grouptypes`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The groups of this type (1:N).
    #[sea_orm(has_many = "group::Entity")]
    Groups,
}

impl Related<group::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Groups.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
