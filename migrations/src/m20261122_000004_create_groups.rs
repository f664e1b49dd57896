//! The `groups` table, with its foreign key to `grouptypes` and indexes on
//! `grouptype_id` and `externalId`.
//!
//! A group type that groups still use cannot be deleted. That is `NO ACTION`
//! rather than `RESTRICT`: the same refusal on every backend, but SQLite
//! reports it as a plain foreign-key violation (extended code 787) instead of
//! `SQLITE_CONSTRAINT_TRIGGER` (1811), which error classifiers do not map.

use sea_orm::DbBackend;
use sea_orm::{DbErr, DeriveIden, DeriveMigrationName};
use sea_orm_migration::sea_query::{ColumnDef, ForeignKey, ForeignKeyAction, Index, Table};
use sea_orm_migration::{MigrationTrait, SchemaManager, async_trait};

use crate::columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
    Name,
    Lastchange,
    #[sea_orm(iden = "entryYearId")]
    EntryYearId,
    #[sea_orm(iden = "externalId")]
    ExternalId,
    GrouptypeId,
}

#[derive(DeriveIden)]
enum Grouptypes {
    Table,
    Id,
}

/// MySQL indexes at most 3072 bytes of a key: index a prefix of the `TEXT`
/// column (equality lookups still use it and re-check the full value).
const EXTERNAL_ID_PREFIX: u32 = 255;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                columns::create_table(backend)
                    .table(Groups::Table)
                    .col(columns::id(backend, Groups::Id))
                    .col(columns::text(Groups::Name))
                    .col(columns::timestamp_us(backend, Groups::Lastchange))
                    .col(ColumnDef::new(Groups::EntryYearId).integer().null())
                    .col(columns::text(Groups::ExternalId))
                    .col(ColumnDef::new(Groups::GrouptypeId).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_groups_grouptype_id")
                            .from(Groups::Table, Groups::GrouptypeId)
                            .to(Grouptypes::Table, Grouptypes::Id)
                            .on_update(ForeignKeyAction::Cascade)
                            .on_delete(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_groups_grouptype_id")
                    .table(Groups::Table)
                    .col(Groups::GrouptypeId)
                    .to_owned(),
            )
            .await?;
        let mut external_id = Index::create();
        external_id
            .name("idx_groups_external_id")
            .table(Groups::Table);
        if backend == DbBackend::MySql {
            external_id.col((Groups::ExternalId, EXTERNAL_ID_PREFIX));
        } else {
            external_id.col(Groups::ExternalId);
        }
        manager.create_index(external_id).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Groups::Table).to_owned())
            .await
    }
}
