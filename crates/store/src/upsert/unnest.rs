//! PostgreSQL: one `INSERT … SELECT * FROM unnest($1, $2, …)` per chunk, one
//! array parameter per column, so the statement text is the same for every
//! chunk size and the server parses one small statement instead of tens of
//! thousands of placeholders.
//!
//! A column without `NULL`s in the chunk travels as a binary array of its
//! type (`$1::int8[]`); one with `NULL`s, and every text column, as the text
//! form of a PostgreSQL array (`{1,NULL,3}`) cast in SQL
//! (`$1::text[]::int8[]`): the driver's binary arrays cannot hold `NULL`
//! elements, and one text value per column is cheaper to build than one
//! string per row. Columns of a type not listed in [`pg_type`] make the
//! caller fall back to `VALUES` lists.
//!
//! The version column is one parameter when every row gets the same
//! version (`$n::timestamptz`), else one more array. The statement counts
//! what it did itself (`WITH w AS (INSERT … RETURNING (xmax = 0)) SELECT
//! count(*) FILTER (…), count(*) FROM w`), so one row comes back per chunk.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::ArrayType;
use sea_orm::{DbBackend, IdenStatic, Statement, Value};

use super::rows::{Prepared, Row};
use roster_entity::StoreEntity;

/// What happens to an existing row (mirrors `chunk::Action`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum OnExisting {
    Nothing,
    Overwrite,
    Bump,
}

/// The versions of a chunk's rows.
pub(super) enum Versions {
    /// The table has no version column.
    None,
    /// Every row gets this one.
    Same(DateTime<Utc>),
    /// One per row, in the order of the rows.
    Each(Vec<DateTime<Utc>>),
}

/// The array parameters of a chunk's columns ([`Prepared::columns`]),
/// built without a connection so they can be built ahead of the chunk.
pub(super) struct Arrays {
    /// One array per column.
    values: Vec<Value>,
    /// Each array's cast in SQL: `int8[]` or `text[]::int8[]`.
    casts: Vec<String>,
}

/// The arrays of `rows`, or `None` when a column's type has no array
/// mapping.
pub(super) fn arrays<E: StoreEntity>(prepared: &Prepared<E>, rows: &[&Row]) -> Option<Arrays> {
    let mut values = Vec::with_capacity(prepared.columns.len());
    let mut casts = Vec::with_capacity(prepared.columns.len());
    for i in 0..prepared.columns.len() {
        let sample = &rows.first()?.values[i];
        let ty = pg_type(sample)?;
        let native = native_type(sample).filter(|t| {
            rows.iter()
                .all(|r| native_type(&r.values[i]).as_ref() == Some(t))
        });
        match native {
            Some(array_type) => {
                let elements: Vec<Value> = rows.iter().map(|r| r.values[i].clone()).collect();
                values.push(Value::Array(array_type, Some(Box::new(elements))));
                casts.push(format!("{ty}[]"));
            }
            None => {
                let mut text = String::with_capacity(rows.len() * 16 + 2);
                text.push('{');
                for (n, row) in rows.iter().enumerate() {
                    if n > 0 {
                        text.push(',');
                    }
                    element(&mut text, &row.values[i])?;
                }
                text.push('}');
                values.push(Value::String(Some(text)));
                casts.push(if ty == "text" {
                    "text[]".to_owned()
                } else {
                    format!("text[]::{ty}[]")
                });
            }
        }
    }
    Some(Arrays { values, casts })
}

/// The statement that writes `arrays` and returns one row: (rows
/// inserted, rows written).
pub(super) fn statement<E: StoreEntity>(
    prepared: &Prepared<E>,
    arrays: &Arrays,
    versions: Versions,
    on_existing: OnExisting,
    table: &str,
) -> Statement {
    let mut names: Vec<&str> = prepared.columns.iter().map(|c| c.as_str()).collect();
    let mut values = arrays.values.clone();
    let mut params: Vec<String> = arrays
        .casts
        .iter()
        .enumerate()
        .map(|(i, cast)| format!("${}::{cast}", i + 1))
        .collect();
    let mut stamp = None;
    if let Some(version) = prepared.version {
        names.push(version.as_str());
        match versions {
            Versions::Same(t) => {
                values.push(Value::ChronoDateTimeUtc(Some(t)));
                stamp = Some(format!("${}::timestamptz", values.len()));
            }
            Versions::Each(ts) => {
                let ts: Vec<Value> = ts
                    .into_iter()
                    .map(|t| Value::ChronoDateTimeUtc(Some(t)))
                    .collect();
                values.push(Value::Array(
                    ArrayType::ChronoDateTimeUtc,
                    Some(Box::new(ts)),
                ));
                params.push(format!("${}::timestamptz[]", values.len()));
            }
            Versions::None => {}
        }
    }

    let mut sql = format!("WITH \"w\" AS (INSERT INTO {} (", quote(table));
    sql.push_str(
        &names
            .iter()
            .map(|n| quote(n))
            .collect::<Vec<_>>()
            .join(", "),
    );
    sql.push_str(") SELECT \"u\".*");
    if let Some(stamp) = &stamp {
        sql.push_str(", ");
        sql.push_str(stamp);
    }
    sql.push_str(" FROM unnest(");
    sql.push_str(&params.join(", "));
    sql.push_str(") AS \"u\" ON CONFLICT (");
    let keys: Vec<String> = prepared
        .key_columns
        .iter()
        .map(|c| quote(c.as_str()))
        .collect();
    sql.push_str(&keys.join(", "));
    sql.push_str(") ");
    let data: Vec<&str> = prepared
        .columns
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !prepared.key_columns.iter().any(|k| k.as_str() == *c))
        .collect();
    let version = prepared.version.map(|v| v.as_str());
    let mut sets: Vec<String> = data
        .iter()
        .map(|c| format!("{0} = \"excluded\".{0}", quote(c)))
        .collect();
    match (on_existing, version) {
        (OnExisting::Bump, Some(v)) => sets.push(format!(
            "{0} = GREATEST(\"excluded\".{0}, {1}.{0} + INTERVAL '1 microsecond')",
            quote(v),
            quote(table)
        )),
        (OnExisting::Overwrite, Some(v)) => sets.push(format!("{0} = \"excluded\".{0}", quote(v))),
        _ => {}
    }
    if on_existing == OnExisting::Nothing || sets.is_empty() {
        sql.push_str("DO NOTHING");
    } else {
        sql.push_str("DO UPDATE SET ");
        sql.push_str(&sets.join(", "));
    }
    sql.push_str(&format!(" RETURNING (xmax = 0) AS \"inserted\") {COUNT}"));
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// What follows `WITH "w" AS (INSERT … RETURNING (xmax = 0) AS "inserted")`
/// to count the rows inserted and the rows written.
pub(super) const COUNT: &str = "SELECT count(*) FILTER (WHERE \"inserted\"), count(*) FROM \"w\"";

/// The binary array type for a non-`NULL` `value`, if the driver has one.
fn native_type(value: &Value) -> Option<ArrayType> {
    Some(match value {
        Value::Bool(Some(_)) => ArrayType::Bool,
        Value::SmallInt(Some(_)) => ArrayType::SmallInt,
        Value::Int(Some(_)) => ArrayType::Int,
        Value::BigInt(Some(_)) => ArrayType::BigInt,
        Value::Float(Some(_)) => ArrayType::Float,
        Value::Double(Some(_)) => ArrayType::Double,
        Value::ChronoDateTimeUtc(Some(_)) => ArrayType::ChronoDateTimeUtc,
        _ => return None,
    })
}

/// The PostgreSQL type of a column holding `value`s.
fn pg_type(value: &Value) -> Option<&'static str> {
    Some(match value {
        Value::Bool(_) => "bool",
        Value::SmallInt(_) => "int2",
        Value::Int(_) => "int4",
        Value::BigInt(_) => "int8",
        Value::Float(_) => "float4",
        Value::Double(_) => "float8",
        Value::String(_) => "text",
        Value::ChronoDateTimeUtc(_) => "timestamptz",
        _ => return None,
    })
}

/// Appends `value` as an array element in PostgreSQL's text form.
fn element(out: &mut String, value: &Value) -> Option<()> {
    match value {
        Value::Bool(Some(b)) => out.push(if *b { 't' } else { 'f' }),
        Value::SmallInt(Some(n)) => write!(out, "{n}").ok()?,
        Value::Int(Some(n)) => write!(out, "{n}").ok()?,
        Value::BigInt(Some(n)) => write!(out, "{n}").ok()?,
        Value::Float(Some(x)) => float(out, f64::from(*x)),
        Value::Double(Some(x)) => float(out, *x),
        Value::String(Some(s)) => {
            out.push('"');
            if s.contains(['"', '\\']) {
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
            } else {
                out.push_str(s);
            }
            out.push('"');
        }
        Value::ChronoDateTimeUtc(Some(t)) => {
            write!(out, "\"{}\"", t.format("%Y-%m-%d %H:%M:%S%.6f+00")).ok()?
        }
        Value::Bool(None)
        | Value::SmallInt(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::Float(None)
        | Value::Double(None)
        | Value::String(None)
        | Value::ChronoDateTimeUtc(None) => out.push_str("NULL"),
        _ => return None,
    }
    Some(())
}

/// A float as PostgreSQL reads it (`NaN`, `Infinity`, `-Infinity`).
fn float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let _ = write!(out, "{x:?}");
    }
}

/// A quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
