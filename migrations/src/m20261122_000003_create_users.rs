//! The `users` table, with an index on `externalId`.

use sea_orm::{DbErr, DeriveIden, DeriveMigrationName};
use sea_orm_migration::sea_query::{ColumnDef, Index, Table};
use sea_orm_migration::{MigrationTrait, SchemaManager, async_trait};

use crate::columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Surname,
    Email,
    Lastchange,
    #[sea_orm(iden = "externalId")]
    ExternalId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                columns::create_table(backend)
                    .table(Users::Table)
                    .col(columns::id(backend, Users::Id))
                    .col(columns::text(Users::Name))
                    .col(columns::text(Users::Surname))
                    .col(columns::text(Users::Email))
                    .col(columns::timestamp_us(backend, Users::Lastchange))
                    .col(ColumnDef::new(Users::ExternalId).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_external_id")
                    .table(Users::Table)
                    .col(Users::ExternalId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
