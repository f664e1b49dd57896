//! `projects` (a unique name, `lastchange`) and `users_projects` (foreign
//! keys to `users` and `projects`, `UNIQUE (user_id, project_id)`).

use roster_migrations::columns;
use sea_orm::{DbErr, DeriveIden, DeriveMigrationName};
use sea_orm_migration::sea_query::{ColumnDef, ForeignKey, ForeignKeyAction, Index, Table};
use sea_orm_migration::{MigrationTrait, SchemaManager, async_trait};

/// `projects` and `users_projects`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Name,
    Lastchange,
}

#[derive(DeriveIden)]
enum UsersProjects {
    Table,
    Id,
    UserId,
    ProjectId,
}

#[derive(DeriveIden)]
enum Users {
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
                    .table(Projects::Table)
                    .col(columns::id(backend, Projects::Id))
                    .col(ColumnDef::new(Projects::Name).string_len(200).not_null())
                    .col(columns::timestamp_us(backend, Projects::Lastchange))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_projects_name")
                    .table(Projects::Table)
                    .col(Projects::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                columns::create_table(backend)
                    .table(UsersProjects::Table)
                    .col(columns::id(backend, UsersProjects::Id))
                    .col(
                        ColumnDef::new(UsersProjects::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UsersProjects::ProjectId)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_projects_user_id")
                            .from(UsersProjects::Table, UsersProjects::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_projects_project_id")
                            .from(UsersProjects::Table, UsersProjects::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_users_projects_user_id_project_id")
                    .table(UsersProjects::Table)
                    .col(UsersProjects::UserId)
                    .col(UsersProjects::ProjectId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_projects_project_id")
                    .table(UsersProjects::Table)
                    .col(UsersProjects::ProjectId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsersProjects::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Projects::Table).to_owned())
            .await
    }
}
