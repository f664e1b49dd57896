//! Column definitions shared by the migrations, per backend.
//!
//! These helpers are part of the recorded schema history: a migration that has
//! shipped must build the same SQL forever, so change nothing here that an
//! existing migration uses; add a new helper instead.

use sea_orm::DbBackend;
use sea_orm_migration::sea_query::{ColumnDef, Expr, IntoIden, Table, TableCreateStatement};

/// The PostgreSQL sequence every table's `id` is drawn from.
pub const ID_SEQUENCE: &str = "all_id_seq";

/// A 64-bit primary key: drawn from [`ID_SEQUENCE`] on PostgreSQL,
/// auto-incremented per table elsewhere. On SQLite the column is declared
/// `INTEGER` so that it aliases the 64-bit rowid.
pub fn id(backend: DbBackend, name: impl IntoIden) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.not_null().primary_key();
    match backend {
        DbBackend::Postgres => col
            .big_integer()
            .default(Expr::cust(format!("nextval('{ID_SEQUENCE}')"))),
        DbBackend::Sqlite => col.integer().auto_increment(),
        _ => col.big_integer().auto_increment(),
    };
    col
}

/// A `NOT NULL` UTC timestamp with microsecond precision: `TIMESTAMPTZ` on
/// PostgreSQL (precision 6 by default), `DATETIME(6)` on MySQL, ISO-8601 text
/// on SQLite.
pub fn timestamp_us(backend: DbBackend, name: impl IntoIden) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.not_null();
    match backend {
        DbBackend::Postgres => col.timestamp_with_time_zone(),
        DbBackend::MySql => col.custom("DATETIME(6)"),
        _ => col.text(),
    };
    col
}

/// A nullable `TEXT` column.
pub fn text(name: impl IntoIden) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.text().null();
    col
}

/// A `CREATE TABLE` that on MySQL pins InnoDB and a binary UTF-8 collation,
/// so text compares the same way (byte-wise, case-sensitive) on every backend
/// whatever the server's defaults are.
pub fn create_table(backend: DbBackend) -> TableCreateStatement {
    let mut stmt = Table::create();
    if backend == DbBackend::MySql {
        stmt.engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_bin");
    }
    stmt
}
