//! Indexes for the lookups and filters of the GraphQL API: `users.email`
//! (`userByEmail`, the users' `filter.email`) and `groups.entryYearId`
//! (the groups' `filter.entryYearId`). The other keys they use were
//! indexed with their tables (`externalId`, `grouptype_id`,
//! `users_groups.group_id`).

use sea_orm::DbBackend;
use sea_orm::{DbErr, DeriveIden, DeriveMigrationName};
use sea_orm_migration::sea_query::Index;
use sea_orm_migration::{MigrationTrait, SchemaManager, async_trait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Email,
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    #[sea_orm(iden = "entryYearId")]
    EntryYearId,
}

const USERS_EMAIL: &str = "idx_users_email";
const GROUPS_ENTRY_YEAR_ID: &str = "idx_groups_entry_year_id";

/// MySQL indexes at most 3072 bytes of a key: index a prefix of the `TEXT`
/// column (equality lookups still use it and re-check the full value).
const EMAIL_PREFIX: u32 = 255;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut email = Index::create();
        email.name(USERS_EMAIL).table(Users::Table);
        if manager.get_database_backend() == DbBackend::MySql {
            email.col((Users::Email, EMAIL_PREFIX));
        } else {
            email.col(Users::Email);
        }
        manager.create_index(email).await?;
        manager
            .create_index(
                Index::create()
                    .name(GROUPS_ENTRY_YEAR_ID)
                    .table(Groups::Table)
                    .col(Groups::EntryYearId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(GROUPS_ENTRY_YEAR_ID)
                    .table(Groups::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(USERS_EMAIL)
                    .table(Users::Table)
                    .to_owned(),
            )
            .await
    }
}
