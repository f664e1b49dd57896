//! The `users_groups` membership table: foreign keys to `users` and `groups`
//! (deleting either removes its memberships), `UNIQUE (user_id, group_id)`,
//! which also serves lookups by `user_id`, and an index on `group_id`.

use sea_orm::{DbErr, DeriveIden, DeriveMigrationName};
use sea_orm_migration::sea_query::{ColumnDef, ForeignKey, ForeignKeyAction, Index, Table};
use sea_orm_migration::{MigrationTrait, SchemaManager, async_trait};

use crate::columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UsersGroups {
    Table,
    Id,
    UserId,
    GroupId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                columns::create_table(backend)
                    .table(UsersGroups::Table)
                    .col(columns::id(backend, UsersGroups::Id))
                    .col(ColumnDef::new(UsersGroups::UserId).big_integer().not_null())
                    .col(
                        ColumnDef::new(UsersGroups::GroupId)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_groups_user_id")
                            .from(UsersGroups::Table, UsersGroups::UserId)
                            .to(Users::Table, Users::Id)
                            .on_update(ForeignKeyAction::Cascade)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_groups_group_id")
                            .from(UsersGroups::Table, UsersGroups::GroupId)
                            .to(Groups::Table, Groups::Id)
                            .on_update(ForeignKeyAction::Cascade)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_users_groups_user_id_group_id")
                    .table(UsersGroups::Table)
                    .col(UsersGroups::UserId)
                    .col(UsersGroups::GroupId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_groups_group_id")
                    .table(UsersGroups::Table)
                    .col(UsersGroups::GroupId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsersGroups::Table).to_owned())
            .await
    }
}
