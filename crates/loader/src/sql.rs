//! How a batch of ids becomes a `WHERE` clause whose SQL text stays stable.
//!
//! PostgreSQL gets one array parameter, `col = ANY($1)`: one statement text
//! for every batch size. MySQL and SQLite have no array parameters, so `IN`
//! lists are padded (repeating the last id) to the next power of two, at most
//! [`MAX_IN_LIST`]: a dozen statement texts per query instead of one per
//! batch size, so prepared-statement caches are not thrashed.

use sea_orm::DbBackend;
use sea_orm::sea_query::{Expr, ExprTrait, extension::postgres::PgFunc};

/// The longest `IN` list (MySQL, SQLite); larger batches are split. Well
/// under SQLite's 32,766 and MySQL's 65,535 bind parameters.
pub const MAX_IN_LIST: usize = 4096;

/// The most ids one statement may carry on `backend`.
pub fn max_ids_per_statement(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Postgres => usize::MAX,
        _ => MAX_IN_LIST,
    }
}

/// The padded `IN`-list length for `n` ids: the next power of two.
pub fn bucket(n: usize) -> usize {
    n.max(1).next_power_of_two().min(MAX_IN_LIST.max(n))
}

/// `column IN (…)` / `column = ANY($1)` for `ids` (non-empty, at most
/// [`max_ids_per_statement`]).
pub fn ids_filter(backend: DbBackend, column: Expr, ids: &[i64]) -> Expr {
    match backend {
        DbBackend::Postgres => column.eq(PgFunc::any(Expr::val(ids.to_vec()))),
        _ => {
            let last = ids.last().copied().unwrap_or_default();
            let padded = ids
                .iter()
                .copied()
                .chain(std::iter::repeat(last))
                .take(bucket(ids.len()));
            column.is_in(padded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_IN_LIST, bucket, ids_filter};
    use sea_orm::DbBackend;
    use sea_orm::sea_query::{Alias, Expr, MysqlQueryBuilder, PostgresQueryBuilder, Query};

    fn sql(backend: DbBackend, n: usize) -> String {
        let ids: Vec<i64> = (1..=n as i64).collect();
        let mut q = Query::select();
        q.column(Alias::new("id"))
            .from(Alias::new("t"))
            .and_where(ids_filter(backend, Expr::col(Alias::new("id")), &ids));
        match backend {
            DbBackend::Postgres => q.build(PostgresQueryBuilder).0,
            _ => q.build(MysqlQueryBuilder).0,
        }
    }

    #[test]
    fn buckets_are_powers_of_two_up_to_the_limit() {
        assert_eq!(bucket(0), 1);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(3), 4);
        assert_eq!(bucket(1000), 1024);
        assert_eq!(bucket(MAX_IN_LIST), MAX_IN_LIST);
    }

    #[test]
    fn postgres_has_one_statement_text_for_every_size() {
        let texts: std::collections::HashSet<_> =
            (1..=300).map(|n| sql(DbBackend::Postgres, n)).collect();
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert!(texts.iter().all(|t| t.contains("= ANY($1)")));
    }

    #[test]
    fn in_lists_have_one_text_per_bucket() {
        let texts: std::collections::HashSet<_> =
            (1..=300).map(|n| sql(DbBackend::MySql, n)).collect();
        // 1, 2, 4, ..., 256, 512
        assert_eq!(texts.len(), 10);
    }
}
