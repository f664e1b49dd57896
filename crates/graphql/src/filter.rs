//! [`UserFilter`] and [`GroupFilter`]: the `filter` argument of the `users`
//! and `groups` pages. Each is checked first (`BAD_USER_INPUT`, before any
//! statement), then becomes one SQL condition that matches the same rows on
//! every backend:
//!
//! - `…Contains` is a case-sensitive substring match, with no wildcard:
//!   `strpos(column, $1) > 0` on PostgreSQL, `INSTR(column, ?) > 0` on
//!   SQLite and MySQL (whose text columns compare byte-wise there), never
//!   `LIKE` (case-insensitive on SQLite, and `%` and `_` are wildcards).
//! - Exact text (`email`, a group's `externalId`) is `column = ?`, and on
//!   MySQL also `LENGTH(column) = <bytes>`: MySQL's collations ignore
//!   trailing spaces when comparing.
//! - `groupId`: the members of that group (`id IN (SELECT user_id FROM
//!   users_groups WHERE group_id = ?)`).

use async_graphql::{ID, InputObject};
use roster_entity::{group, user, users_groups};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{ColumnTrait, Condition, DbBackend};

use crate::error::ApiError;
use crate::input::{MAX_EMAIL_BYTES, MAX_TEXT_BYTES, text};
use crate::scalars::parse_id;

/// Which users a page holds: every condition given must hold (none given:
/// every user). Text matches are case-sensitive and byte for byte on every
/// backend; `%` and `_` are ordinary characters.
#[derive(Debug, Default, Clone, InputObject)]
pub struct UserFilter {
    /// The name contains this text (at most 256 bytes; "" matches any
    /// name that is not null).
    name_contains: Option<String>,
    /// The surname contains this text (at most 256 bytes).
    surname_contains: Option<String>,
    /// The e-mail address is exactly this, as stored (at most 320 bytes).
    email: Option<String>,
    /// The id in the external system is this.
    external_id: Option<ID>,
    /// The user is a member of the group with this id.
    group_id: Option<ID>,
}

/// Which groups a page holds: every condition given must hold (none
/// given: every group). Text matches are case-sensitive and byte for byte
/// on every backend; `%` and `_` are ordinary characters.
#[derive(Debug, Default, Clone, InputObject)]
pub struct GroupFilter {
    /// The name contains this text (at most 256 bytes; "" matches any
    /// name that is not null).
    name_contains: Option<String>,
    /// The group is of the group type with this id.
    group_type_id: Option<ID>,
    /// The id in the external system is exactly this (at most 256 bytes).
    external_id: Option<String>,
    /// The entry year is this.
    entry_year_id: Option<i32>,
}

impl UserFilter {
    /// The condition on `users` this filter stands for, written for
    /// `backend`; `BAD_USER_INPUT` for a malformed id or overlong text.
    pub(crate) fn condition(&self, backend: DbBackend) -> Result<Condition, ApiError> {
        let mut all = Condition::all();
        if let Some(part) = &self.name_contains {
            let part = text("filter.nameContains", part, MAX_TEXT_BYTES)?;
            all = all.add(contains(backend, user::Column::Name, part));
        }
        if let Some(part) = &self.surname_contains {
            let part = text("filter.surnameContains", part, MAX_TEXT_BYTES)?;
            all = all.add(contains(backend, user::Column::Surname, part));
        }
        if let Some(email) = &self.email {
            let email = text("filter.email", email, MAX_EMAIL_BYTES)?;
            all = all.add(text_equals(backend, user::Column::Email, email));
        }
        if let Some(id) = &self.external_id {
            all = all.add(user::Column::ExternalId.eq(parse_id(id)?));
        }
        if let Some(id) = &self.group_id {
            let members = Query::select()
                .column(users_groups::Column::UserId)
                .from(users_groups::Entity)
                .and_where(users_groups::Column::GroupId.eq(parse_id(id)?))
                .to_owned();
            all = all.add(user::Column::Id.in_subquery(members));
        }
        Ok(all)
    }
}

impl GroupFilter {
    /// The condition on `groups` this filter stands for, written for
    /// `backend`; `BAD_USER_INPUT` for a malformed id or overlong text.
    pub(crate) fn condition(&self, backend: DbBackend) -> Result<Condition, ApiError> {
        let mut all = Condition::all();
        if let Some(part) = &self.name_contains {
            let part = text("filter.nameContains", part, MAX_TEXT_BYTES)?;
            all = all.add(contains(backend, group::Column::Name, part));
        }
        if let Some(id) = &self.group_type_id {
            all = all.add(group::Column::GrouptypeId.eq(parse_id(id)?));
        }
        if let Some(external_id) = &self.external_id {
            let external_id = text("filter.externalId", external_id, MAX_TEXT_BYTES)?;
            all = all.add(text_equals(backend, group::Column::ExternalId, external_id));
        }
        if let Some(year) = self.entry_year_id {
            all = all.add(group::Column::EntryYearId.eq(year));
        }
        Ok(all)
    }
}

/// `column` contains `part`, case-sensitively, with no wildcard: the
/// position of `part` in `column` is positive (null for a null column,
/// which no filter then matches).
fn contains(backend: DbBackend, column: impl ColumnTrait, part: &str) -> Expr {
    let position = match backend {
        DbBackend::Postgres => Func::cust("strpos")
            .arg(column.into_expr())
            .arg(part.to_owned()),
        // SQLite's and MySQL's INSTR(haystack, needle); on MySQL the
        // column's binary collation (utf8mb4_bin) decides the comparison.
        _ => Func::cust("INSTR")
            .arg(column.into_expr())
            .arg(part.to_owned()),
    };
    Expr::expr(position).gt(0)
}

/// `column` is exactly `value`, byte for byte. MySQL's `=` ignores
/// trailing spaces (PAD SPACE collations), so there the byte length must
/// match too; `column = ?` alone still picks the index.
fn text_equals(backend: DbBackend, column: impl ColumnTrait, value: &str) -> Condition {
    let equal = Condition::all().add(column.eq(value));
    if backend != DbBackend::MySql {
        return equal;
    }
    let bytes = i64::try_from(value.len()).unwrap_or(i64::MAX);
    equal.add(Expr::expr(Func::cust("LENGTH").arg(column.into_expr())).eq(bytes))
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, QueryFilter, QueryTrait};

    use super::*;

    fn users_sql(filter: &UserFilter, backend: DbBackend) -> String {
        let condition = filter.condition(backend).expect("a valid filter");
        user::Entity::find()
            .filter(condition)
            .build(backend)
            .to_string()
    }

    #[test]
    fn contains_is_a_position_never_like() {
        let filter = UserFilter {
            name_contains: Some("a%_b".into()),
            ..Default::default()
        };
        let pg = users_sql(&filter, DbBackend::Postgres);
        assert!(pg.contains(r#"strpos("users"."name", 'a%_b') > 0"#), "{pg}");
        for backend in [DbBackend::Sqlite, DbBackend::MySql] {
            let sql = users_sql(&filter, backend);
            assert!(sql.contains("INSTR("), "{sql}");
            assert!(!sql.to_ascii_uppercase().contains("LIKE"), "{sql}");
        }
    }

    #[test]
    fn exact_text_checks_the_length_on_mysql_only() {
        let filter = UserFilter {
            email: Some("ada@example.org".into()),
            ..Default::default()
        };
        let mysql = users_sql(&filter, DbBackend::MySql);
        assert!(mysql.contains("LENGTH(`users`.`email`) = 15"), "{mysql}");
        let sqlite = users_sql(&filter, DbBackend::Sqlite);
        assert!(!sqlite.contains("LENGTH"), "{sqlite}");
    }

    #[test]
    fn no_filter_is_no_condition() {
        let condition = UserFilter::default().condition(DbBackend::Sqlite);
        assert!(condition.expect("valid").is_empty());
        let condition = GroupFilter::default().condition(DbBackend::MySql);
        assert!(condition.expect("valid").is_empty());
    }

    #[test]
    fn bad_filters_are_bad_user_input() {
        let bad = [
            UserFilter {
                group_id: Some(ID("one".into())),
                ..Default::default()
            },
            UserFilter {
                external_id: Some(ID("1.5".into())),
                ..Default::default()
            },
            UserFilter {
                name_contains: Some("x".repeat(MAX_TEXT_BYTES + 1)),
                ..Default::default()
            },
            UserFilter {
                email: Some("x".repeat(MAX_EMAIL_BYTES + 1)),
                ..Default::default()
            },
        ];
        for filter in bad {
            assert_eq!(
                filter
                    .condition(DbBackend::Postgres)
                    .map(|_| ())
                    .map_err(|e| e.code()),
                Err("BAD_USER_INPUT"),
                "{filter:?}"
            );
        }
        let group = GroupFilter {
            group_type_id: Some(ID("".into())),
            ..Default::default()
        };
        assert!(group.condition(DbBackend::Sqlite).is_err());
    }
}
