//! The rows of one upsert call, checked and cut into chunks: which columns
//! are written, each row's key and expected version, duplicates dropped
//! (the last occurrence wins), chunk sizes under the bind-parameter limit.

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue, DbBackend, IdenStatic, Iterable, Value};

use super::{OnConflict, Upsert};
use crate::error::{Error, Result};

/// The most bind parameters one statement may carry on `backend`:
/// PostgreSQL and MySQL 65,535, SQLite 32,766.
pub fn bind_limit(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Sqlite => 32_766,
        _ => 65_535,
    }
}

/// One row to write.
pub(super) struct Row {
    /// Values of [`Prepared::columns`], in that order.
    pub values: Vec<Value>,
    /// The conflict key, rendered for hashing and ordering.
    pub key: String,
    /// The version the caller expects ([`OnConflict::UpdateIfUnchanged`]).
    pub expected: Option<DateTime<Utc>>,
}

/// A chunk: a range of [`Prepared::rows`], and what it covers of the input.
#[derive(Clone)]
pub(super) struct Batch {
    pub rows: Range<usize>,
    pub input: Range<usize>,
    pub superseded: u64,
}

/// The checked rows of one call.
pub(super) struct Prepared<E: Upsert> {
    pub on_conflict: OnConflict,
    /// The columns written, without the version column.
    pub columns: Vec<E::Column>,
    pub key_columns: Vec<E::Column>,
    pub version: Option<E::Column>,
    /// Rows left after duplicates were dropped, in input order.
    pub rows: Vec<Row>,
    /// Each surviving row's position in the input.
    pub positions: Vec<usize>,
    pub chunks: Vec<Batch>,
}

impl<E: Upsert> Prepared<E> {
    pub fn new(
        input: impl IntoIterator<Item = E::ActiveModel>,
        on_conflict: OnConflict,
        chunk: Option<usize>,
        backend: DbBackend,
    ) -> Result<Self> {
        let refused = |why: String| Error::refused(E::TABLE, why);
        let version = E::version_column();
        if on_conflict == OnConflict::UpdateIfUnchanged && version.is_none() {
            return Err(refused(
                "UpdateIfUnchanged needs a versioned table (one with lastchange)".into(),
            ));
        }
        let key_columns = E::conflict_columns();
        let generated: Vec<&str> = E::generated_columns().iter().map(|c| c.as_str()).collect();
        let version_name = version.map(|v| v.as_str());
        let mut columns: Option<Vec<E::Column>> = None;
        let mut all = Vec::new();
        for (position, model) in input.into_iter().enumerate() {
            let given: Vec<E::Column> = E::Column::iter()
                .filter(|c| {
                    !generated.contains(&c.as_str())
                        && Some(c.as_str()) != version_name
                        && !matches!(model.get(*c), ActiveValue::NotSet)
                })
                .collect();
            let columns = columns.get_or_insert_with(|| given.clone());
            if !columns
                .iter()
                .map(|c| c.as_str())
                .eq(given.iter().map(|c| c.as_str()))
            {
                return Err(refused(format!(
                    "row {position} sets the columns {:?}, the first row {:?}; every row must set the same columns",
                    names(&given),
                    names(columns)
                )));
            }
            let values: Vec<Value> = columns.iter().map(|c| value(model.get(*c))).collect();
            let key: Vec<Value> = key_columns.iter().map(|c| value(model.get(*c))).collect();
            if key.iter().any(is_null) {
                return Err(refused(format!(
                    "row {position} has no value for the conflict key {:?}",
                    names(&key_columns)
                )));
            }
            let expected = match (on_conflict, version) {
                (OnConflict::UpdateIfUnchanged, Some(v)) => {
                    Some(datetime(value(model.get(v))).ok_or_else(|| {
                        refused(format!(
                            "row {position} has no lastchange: UpdateIfUnchanged needs the version the caller read"
                        ))
                    })?)
                }
                _ => None,
            };
            all.push((
                position,
                Row {
                    values,
                    key: render_key(&key),
                    expected,
                },
            ));
        }
        let columns = columns.unwrap_or_default();

        // The last occurrence of a key wins.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(all.len());
        for (position, row) in &all {
            last.insert(row.key.as_str(), *position);
        }
        let keep: Vec<bool> = all
            .iter()
            .map(|(position, row)| last.get(row.key.as_str()) == Some(position))
            .collect();
        let total = all.len();
        let mut rows = Vec::with_capacity(last.len());
        let mut positions = Vec::with_capacity(last.len());
        drop(last);
        for ((position, row), keep) in all.into_iter().zip(&keep) {
            if *keep {
                rows.push(row);
                positions.push(position);
            }
        }

        let per_row = columns.len() + usize::from(version.is_some());
        let most = (bind_limit(backend) / per_row.max(1)).max(1);
        let size = match chunk {
            Some(0) => return Err(refused("the chunk size must be at least 1".into())),
            Some(n) => n.min(most),
            None => most,
        };
        let mut chunks = Vec::new();
        let mut start = 0;
        let mut input_start = 0;
        while start < rows.len() {
            let end = (start + size).min(rows.len());
            let input_end = if end == rows.len() {
                total
            } else {
                positions[end - 1] + 1
            };
            let covered = input_end - input_start;
            chunks.push(Batch {
                rows: start..end,
                input: input_start..input_end,
                superseded: (covered - (end - start)) as u64,
            });
            start = end;
            input_start = input_end;
        }
        if rows.is_empty() && total > 0 {
            // Unreachable in practice (the last occurrence always stays),
            // but keep the ranges covering the input.
            chunks.push(Batch {
                rows: 0..0,
                input: 0..total,
                superseded: total as u64,
            });
        }
        Ok(Self {
            on_conflict,
            columns,
            key_columns,
            version,
            rows,
            positions,
            chunks,
        })
    }
}

/// A conflict key as a string to hash and order by; stored rows' keys
/// (`chunk::stored_key`) are rendered the same way.
pub(super) fn render_key(key: &[Value]) -> String {
    format!("{key:?}")
}

fn names<C: IdenStatic>(columns: &[C]) -> Vec<&'static str> {
    columns.iter().map(|c| c.as_str()).collect()
}

fn value(v: ActiveValue<Value>) -> Value {
    match v {
        ActiveValue::Set(v) | ActiveValue::Unchanged(v) => v,
        ActiveValue::NotSet => Value::Bool(None),
    }
}

fn is_null(v: &Value) -> bool {
    *v == v.as_null()
}

/// A `chrono` UTC value out of a sea-query value.
pub(crate) fn datetime(v: Value) -> Option<DateTime<Utc>> {
    match v {
        Value::ChronoDateTimeUtc(t) => t,
        _ => None,
    }
}
