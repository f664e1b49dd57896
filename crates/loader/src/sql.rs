//! How a batch of keys becomes a `WHERE` clause whose SQL text stays stable.
//!
//! PostgreSQL gets typed array parameters: `col = ANY($1)` for a one-column
//! key, `(a, b) IN (SELECT * FROM UNNEST($1, $2))` for a pair; one statement
//! text for every batch size. MySQL and SQLite have no array parameters, so
//! `IN` lists (of values, or of row values for a pair) are padded (repeating
//! the last key) to the next power of two, at most [`MAX_IN_LIST`]: a dozen
//! statement texts per query instead of one per batch size, so
//! prepared-statement caches are not thrashed.
//!
//! [`ScalarKey`] is a value of one column (`i64`, `i32`, `String`);
//! [`SqlKey`] is what an [`EntitySource`](crate::EntitySource) can look rows
//! up by: one scalar, or a pair of them for a two-column unique key.

use sea_orm::sea_query::{
    Alias, Asterisk, Expr, ExprTrait, Func, Query, extension::postgres::PgFunc,
};
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, ModelTrait, Value};

use crate::key::Key;

/// The longest `IN` list (MySQL, SQLite); larger batches are split. With
/// two-column keys that is 8,192 parameters, well under SQLite's 32,766 and
/// MySQL's 65,535 bind parameters.
pub const MAX_IN_LIST: usize = 4096;

/// The most keys one statement may carry on `backend`.
pub fn max_ids_per_statement(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Postgres => usize::MAX,
        _ => MAX_IN_LIST,
    }
}

/// The padded `IN`-list length for `n` keys: the next power of two.
pub fn bucket(n: usize) -> usize {
    n.max(1).next_power_of_two().min(MAX_IN_LIST.max(n))
}

/// `keys`, padded to [`bucket`] size by repeating the last one.
fn padded<K: Clone>(keys: &[K]) -> impl Iterator<Item = K> + '_ {
    let last = keys.last().cloned();
    keys.iter()
        .cloned()
        .chain(std::iter::repeat_with(move || last.clone()).flatten())
        .take(bucket(keys.len()))
}

/// `column IN (…)` / `column = ANY($1)` for `ids` (non-empty, at most
/// [`max_ids_per_statement`]).
pub fn ids_filter(backend: DbBackend, column: Expr, ids: &[i64]) -> Expr {
    scalar_filter(backend, column, ids)
}

fn scalar_filter<K: ScalarKey>(backend: DbBackend, column: Expr, keys: &[K]) -> Expr {
    match backend {
        DbBackend::Postgres => column.eq(PgFunc::any(Expr::val(K::array(keys)))),
        _ => column.is_in(padded(keys).map(Into::<Value>::into)),
    }
}

/// A value of one column that rows can be looked up by.
pub trait ScalarKey: Key + Into<Value> {
    /// The PostgreSQL array parameter holding `keys` (typed, e.g. `int8[]`).
    fn array(keys: &[Self]) -> Value;
    /// The key in a column value read back from a row (`None` for NULL or
    /// another type).
    fn from_value(value: Value) -> Option<Self>;
}

impl ScalarKey for i64 {
    fn array(keys: &[Self]) -> Value {
        keys.to_vec().into()
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::BigInt(v) => v,
            Value::Int(v) => v.map(i64::from),
            Value::SmallInt(v) => v.map(i64::from),
            Value::TinyInt(v) => v.map(i64::from),
            Value::BigUnsigned(v) => v.and_then(|v| i64::try_from(v).ok()),
            Value::Unsigned(v) => v.map(i64::from),
            Value::SmallUnsigned(v) => v.map(i64::from),
            Value::TinyUnsigned(v) => v.map(i64::from),
            _ => None,
        }
    }
}

impl ScalarKey for i32 {
    fn array(keys: &[Self]) -> Value {
        keys.to_vec().into()
    }
    fn from_value(value: Value) -> Option<Self> {
        i64::from_value(value).and_then(|v| i32::try_from(v).ok())
    }
}

impl ScalarKey for String {
    fn array(keys: &[Self]) -> Value {
        keys.to_vec().into()
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::String(v) => v,
            _ => None,
        }
    }
}

/// What an [`EntitySource`](crate::EntitySource) looks rows up by: a
/// [`ScalarKey`] of one column, or a pair of them for a two-column key
/// (e.g. a membership's `(user_id, group_id)`).
pub trait SqlKey: Key {
    /// The key's columns of a table whose columns are `C`: `C` for one
    /// column, `(C, C)` for a pair.
    type Columns<C: ColumnTrait>: Copy + Send + Sync + 'static;

    /// The condition "the row's key is one of `keys`" (non-empty, at most
    /// [`max_ids_per_statement`]), with stable SQL text.
    fn filter<C: ColumnTrait>(backend: DbBackend, columns: Self::Columns<C>, keys: &[Self])
    -> Expr;

    /// The key of a loaded row.
    fn of_model<M: ModelTrait>(
        model: &M,
        columns: Self::Columns<<M::Entity as EntityTrait>::Column>,
    ) -> Option<Self>;
}

fn qualified<C: ColumnTrait>(column: C) -> Expr {
    Expr::col((column.entity_name(), column))
}

impl<T: ScalarKey> SqlKey for T {
    type Columns<C: ColumnTrait> = C;

    fn filter<C: ColumnTrait>(backend: DbBackend, column: C, keys: &[Self]) -> Expr {
        scalar_filter(backend, qualified(column), keys)
    }

    fn of_model<M: ModelTrait>(
        model: &M,
        column: <M::Entity as EntityTrait>::Column,
    ) -> Option<Self> {
        T::from_value(model.get(column))
    }
}

impl<A: ScalarKey, B: ScalarKey> SqlKey for (A, B) {
    type Columns<C: ColumnTrait> = (C, C);

    fn filter<C: ColumnTrait>(backend: DbBackend, (a, b): (C, C), keys: &[Self]) -> Expr {
        let row = Expr::tuple([qualified(a), qualified(b)]);
        match backend {
            DbBackend::Postgres => {
                let (first, second): (Vec<A>, Vec<B>) = keys.iter().cloned().unzip();
                let mut unnest = Query::select();
                unnest.column(Asterisk).from_function(
                    Func::cust(Alias::new("UNNEST"))
                        .arg(Expr::val(A::array(&first)))
                        .arg(Expr::val(B::array(&second))),
                    Alias::new("roster_keys"),
                );
                row.in_subquery(unnest)
            }
            _ => row.in_tuples(padded(keys).map(|(a, b)| (a.into(), b.into()))),
        }
    }

    fn of_model<M: ModelTrait>(
        model: &M,
        (a, b): (
            <M::Entity as EntityTrait>::Column,
            <M::Entity as EntityTrait>::Column,
        ),
    ) -> Option<Self> {
        Some((A::from_value(model.get(a))?, B::from_value(model.get(b))?))
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_IN_LIST, SqlKey, bucket, ids_filter};
    use sea_orm::DbBackend;
    use sea_orm::sea_query::{
        Alias, Expr, MysqlQueryBuilder, PostgresQueryBuilder, Query, SqliteQueryBuilder,
    };

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

    fn pair_sql(backend: DbBackend, n: usize) -> (String, usize) {
        use roster_entity::users_groups::Column;
        let keys: Vec<(i64, i64)> = (1..=n as i64).map(|i| (i, i * 10)).collect();
        let mut q = Query::select();
        q.column(Alias::new("id"))
            .from(Alias::new("users_groups"))
            .and_where(<(i64, i64)>::filter(
                backend,
                (Column::UserId, Column::GroupId),
                &keys,
            ));
        let (text, values) = match backend {
            DbBackend::Postgres => q.build(PostgresQueryBuilder),
            DbBackend::MySql => q.build(MysqlQueryBuilder),
            _ => q.build(SqliteQueryBuilder),
        };
        (text, values.0.len())
    }

    #[test]
    fn pairs_are_two_arrays_on_postgres_and_padded_row_values_elsewhere() {
        let (text, params) = pair_sql(DbBackend::Postgres, 37);
        assert_eq!(params, 2, "{text}");
        assert!(
            text.contains(r#"("users_groups"."user_id", "users_groups"."group_id") IN (SELECT * FROM UNNEST($1, $2)"#),
            "{text}"
        );
        let texts: std::collections::HashSet<_> = (1..=100)
            .map(|n| pair_sql(DbBackend::Postgres, n).0)
            .collect();
        assert_eq!(texts.len(), 1);

        let (text, params) = pair_sql(DbBackend::Sqlite, 37);
        assert_eq!(params, 2 * 64, "padded to 64 pairs: {text}");
        let texts: std::collections::HashSet<_> =
            (1..=100).map(|n| pair_sql(DbBackend::MySql, n).0).collect();
        assert_eq!(texts.len(), 8, "1, 2, 4, …, 128");
    }
}
