//! PostgreSQL: one `INSERT … SELECT * FROM unnest($1, $2, …)` per chunk, one
//! array parameter per column, so the statement text is the same for every
//! chunk size and the server parses one small statement instead of tens of
//! thousands of placeholders.
//!
//! Each array travels as the text form of a PostgreSQL array (`{1,NULL,3}`)
//! and is cast to its column's type in SQL (`$1::text[]::int8[]`): the
//! driver's binary arrays cannot hold `NULL` elements. Columns of a type
//! not listed in [`pg_type`] make the caller fall back to `VALUES` lists.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, IdenStatic, Statement, Value};

use super::Upsert;
use super::rows::{Prepared, Row};

/// What happens to an existing row (mirrors `chunk::Action`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum OnExisting {
    Nothing,
    Overwrite,
    Bump,
}

/// The statement, or `None` when a column's type has no array mapping.
pub(super) fn statement<E: Upsert>(
    prepared: &Prepared<E>,
    rows: &[(&Row, Option<DateTime<Utc>>)],
    on_existing: OnExisting,
    table: &str,
) -> Option<Statement> {
    let mut types = Vec::with_capacity(prepared.columns.len() + 1);
    for (i, _) in prepared.columns.iter().enumerate() {
        let sample = rows.first().map(|(r, _)| &r.values[i])?;
        types.push(pg_type(sample)?);
    }
    let mut arrays: Vec<String> = vec![String::from("{"); prepared.columns.len()];
    let mut versions = String::from("{");
    for (n, (row, version)) in rows.iter().enumerate() {
        for (array, value) in arrays.iter_mut().zip(&row.values) {
            if n > 0 {
                array.push(',');
            }
            element(array, value)?;
        }
        if let Some(version) = version {
            if n > 0 {
                versions.push(',');
            }
            let _ = write!(
                versions,
                "\"{}\"",
                version.format("%Y-%m-%d %H:%M:%S%.6f+00")
            );
        }
    }
    let mut names: Vec<&str> = prepared.columns.iter().map(|c| c.as_str()).collect();
    let mut values: Vec<Value> = arrays
        .into_iter()
        .map(|mut a| {
            a.push('}');
            Value::String(Some(a))
        })
        .collect();
    if let Some(version) = prepared.version {
        names.push(version.as_str());
        types.push("timestamptz");
        versions.push('}');
        values.push(Value::String(Some(versions)));
    }

    let mut sql = format!("INSERT INTO {} (", quote(table));
    sql.push_str(
        &names
            .iter()
            .map(|n| quote(n))
            .collect::<Vec<_>>()
            .join(", "),
    );
    sql.push_str(") SELECT * FROM unnest(");
    for (i, ty) in types.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "${}::text[]::{ty}[]", i + 1);
    }
    sql.push_str(") ON CONFLICT (");
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
    sql.push_str(" RETURNING (xmax = 0)");
    Some(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
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
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
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
