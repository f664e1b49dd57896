//! The `grouptypes` table.

use sea_orm::{DbErr, DeriveIden, DeriveMigrationName};
use sea_orm_migration::sea_query::Table;
use sea_orm_migration::{MigrationTrait, SchemaManager, async_trait};

use crate::columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Grouptypes {
    Table,
    Id,
    Name,
    Lastchange,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                columns::create_table(backend)
                    .table(Grouptypes::Table)
                    .col(columns::id(backend, Grouptypes::Id))
                    .col(columns::text(Grouptypes::Name))
                    .col(columns::timestamp_us(backend, Grouptypes::Lastchange))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Grouptypes::Table).to_owned())
            .await
    }
}
