//! The sequence `all_id_seq` that every table's id is drawn from on PostgreSQL,
//! so that an id names one row across all tables. A no-op elsewhere.

use sea_orm::DbBackend;
use sea_orm::{ConnectionTrait, DbErr, DeriveMigrationName};
use sea_orm_migration::{MigrationTrait, SchemaManager, async_trait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            // `IF NOT EXISTS`: `migrate fresh` drops tables and types but not
            // sequences; reusing the old sequence keeps ids unique.
            manager
                .get_connection()
                .execute_unprepared("CREATE SEQUENCE IF NOT EXISTS all_id_seq AS BIGINT")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP SEQUENCE IF EXISTS all_id_seq")
                .await?;
        }
        Ok(())
    }
}
