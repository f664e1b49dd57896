//! The rows of one upsert call, checked and cut into chunks: which columns
//! are written, each row's key and expected version, duplicates dropped
//! (the last occurrence wins), chunk sizes under the bind-parameter limit.

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue, DbBackend, IdenStatic, Iterable, Value};

use roster_entity::StoreEntity;

use super::OnConflict;
use crate::error::{Error, Refusal, Result};

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
    /// The conflict key, to hash and order by.
    pub key: Key,
    /// The version the caller expects ([`OnConflict::UpdateIfUnchanged`]).
    pub expected: Option<DateTime<Utc>>,
}

/// A conflict key to hash and order by; stored rows' keys
/// (`chunk::stored_key`) are made the same way, by [`key_of`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Key {
    /// A one-column key (the common case: no allocation for an integer).
    One(KeyPart),
    /// A key of several columns.
    Many(Box<[KeyPart]>),
}

/// One column of a [`Key`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum KeyPart {
    /// Any signed or unsigned integer up to 64 bits.
    Int(i128),
    /// A string.
    Text(String),
    /// Any other type, by its `Debug` rendering.
    Other(String),
}

impl KeyPart {
    fn of(value: &Value) -> Self {
        match value {
            Value::TinyInt(Some(n)) => Self::Int(i128::from(*n)),
            Value::SmallInt(Some(n)) => Self::Int(i128::from(*n)),
            Value::Int(Some(n)) => Self::Int(i128::from(*n)),
            Value::BigInt(Some(n)) => Self::Int(i128::from(*n)),
            Value::TinyUnsigned(Some(n)) => Self::Int(i128::from(*n)),
            Value::SmallUnsigned(Some(n)) => Self::Int(i128::from(*n)),
            Value::Unsigned(Some(n)) => Self::Int(i128::from(*n)),
            Value::BigUnsigned(Some(n)) => Self::Int(i128::from(*n)),
            Value::String(Some(s)) => Self::Text(s.clone()),
            other => Self::Other(format!("{other:?}")),
        }
    }
}

/// The key made of `values` (one per key column, in order).
pub(super) fn key_of<'a>(mut values: impl ExactSizeIterator<Item = &'a Value>) -> Key {
    if values.len() == 1
        && let Some(only) = values.next()
    {
        return Key::One(KeyPart::of(only));
    }
    Key::Many(values.map(KeyPart::of).collect())
}

/// A chunk: a range of [`Prepared::rows`], and what it covers of the input.
#[derive(Clone)]
pub(super) struct Batch {
    pub rows: Range<usize>,
    pub input: Range<usize>,
    pub superseded: u64,
}

/// What the first row sets, and so every row must.
struct Shape<C> {
    /// Per candidate column (not generated, not the version): set or not.
    mask: Vec<bool>,
    /// The candidate columns set.
    columns: Vec<C>,
    /// Where each conflict-key column is in `columns`.
    key_index: Vec<usize>,
}

/// The checked rows of one call.
pub(super) struct Prepared<E: StoreEntity> {
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

impl<E: StoreEntity> Prepared<E> {
    /// Checks the rows of `input` and cuts them into chunks of at most
    /// `chunk` rows (and at most the backend's bind-parameter limit).
    pub fn new(
        input: impl IntoIterator<Item = E::ActiveModel>,
        on_conflict: OnConflict,
        chunk: Option<usize>,
        backend: DbBackend,
    ) -> Result<Self> {
        let refused = |refusal| Error::refused(E::TABLE, refusal);
        let version = E::version_column();
        if on_conflict == OnConflict::UpdateIfUnchanged && version.is_none() {
            return Err(refused(Refusal::NotVersioned));
        }
        let key_columns = E::conflict_columns();
        let (columns, mut rows) = read_rows::<E>(input, on_conflict, version, &key_columns)?;
        let total = rows.len();
        let positions = drop_superseded(&mut rows);
        let per_row = columns.len() + usize::from(version.is_some());
        let size = chunk_size(chunk, per_row, backend).map_err(refused)?;
        let chunks = cut(rows.len(), &positions, total, size);
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

/// Reads the rows of `input`: the columns they set (those the first row
/// sets, which every row must), and each row's values, key and expected
/// version.
fn read_rows<E: StoreEntity>(
    input: impl IntoIterator<Item = E::ActiveModel>,
    on_conflict: OnConflict,
    version: Option<E::Column>,
    key_columns: &[E::Column],
) -> Result<(Vec<E::Column>, Vec<Row>)> {
    let candidates = candidates::<E>(version);
    let mut first: Option<Shape<E::Column>> = None;
    let mut taken: Vec<ActiveValue<Value>> = Vec::with_capacity(candidates.len());
    let input = input.into_iter();
    let mut rows: Vec<Row> = Vec::with_capacity(input.size_hint().0);
    for (position, mut model) in input.enumerate() {
        // Moved out of the model, not cloned.
        taken.clear();
        taken.extend(candidates.iter().map(|c| model.take(*c)));
        let shape = match &first {
            Some(first) => first,
            None => first.insert(
                Shape::of(&candidates, &taken, key_columns)
                    .ok_or_else(|| missing_key::<E>(position, key_columns))?,
            ),
        };
        shape.check::<E>(position, &candidates, &taken)?;
        let mut values: Vec<Value> = Vec::with_capacity(shape.columns.len());
        values.extend(taken.drain(..).filter_map(set_value));
        if shape.key_index.iter().any(|i| is_null(&values[*i])) {
            return Err(missing_key::<E>(position, key_columns));
        }
        let key = key_of(shape.key_index.iter().map(|i| &values[*i]));
        let expected = match (on_conflict, version) {
            (OnConflict::UpdateIfUnchanged, Some(v)) => {
                Some(datetime(value(model.take(v))).ok_or_else(|| {
                    Error::refused(E::TABLE, Refusal::MissingVersion { row: position })
                })?)
            }
            _ => None,
        };
        rows.push(Row {
            values,
            key,
            expected,
        });
    }
    let columns = first.map(|shape| shape.columns).unwrap_or_default();
    Ok((columns, rows))
}

/// The columns a row may write: all but the generated ones and the version.
fn candidates<E: StoreEntity>(version: Option<E::Column>) -> Vec<E::Column> {
    let generated: Vec<&str> = E::generated_columns().iter().map(|c| c.as_str()).collect();
    let version_name = version.map(|v| v.as_str());
    E::Column::iter()
        .filter(|c| !generated.contains(&c.as_str()) && Some(c.as_str()) != version_name)
        .collect()
}

/// Row `position` has no value for a conflict-key column.
fn missing_key<E: StoreEntity>(position: usize, key_columns: &[E::Column]) -> Error {
    Error::refused(
        E::TABLE,
        Refusal::MissingKey {
            row: position,
            key: names(key_columns),
        },
    )
}

impl<C: IdenStatic> Shape<C> {
    /// The shape of a first row that set `taken` of `candidates`; `None` if
    /// it leaves out a column of the conflict key.
    fn of(candidates: &[C], taken: &[ActiveValue<Value>], key_columns: &[C]) -> Option<Self> {
        let mask: Vec<bool> = taken.iter().map(|v| !v.is_not_set()).collect();
        let columns: Vec<C> = candidates
            .iter()
            .zip(&mask)
            .filter_map(|(c, set)| set.then_some(*c))
            .collect();
        let key_index = key_columns
            .iter()
            .map(|k| columns.iter().position(|c| c.as_str() == k.as_str()))
            .collect::<Option<Vec<usize>>>()?;
        Some(Self {
            mask,
            columns,
            key_index,
        })
    }

    /// Refuses row `position`, which set `taken` of `candidates`, unless it
    /// sets the same columns as the first row.
    fn check<E: StoreEntity>(
        &self,
        position: usize,
        candidates: &[C],
        taken: &[ActiveValue<Value>],
    ) -> Result<()> {
        if taken
            .iter()
            .map(|v| !v.is_not_set())
            .eq(self.mask.iter().copied())
        {
            return Ok(());
        }
        let given: Vec<C> = candidates
            .iter()
            .zip(taken)
            .filter_map(|(c, v)| (!v.is_not_set()).then_some(*c))
            .collect();
        Err(Error::refused(
            E::TABLE,
            Refusal::ColumnsDiffer {
                row: position,
                columns: names(&given),
                first: names(&self.columns),
            },
        ))
    }
}

/// Drops every row a later row with the same key supersedes (the last
/// occurrence wins); returns the input position of each row left.
fn drop_superseded(rows: &mut Vec<Row>) -> Vec<usize> {
    let total = rows.len();
    // Keys in increasing order (the usual bulk load) have no duplicates,
    // and need no map.
    if rows.windows(2).all(|w| w[0].key < w[1].key) {
        return (0..total).collect();
    }
    let mut last: HashMap<&Key, usize> = HashMap::with_capacity(total);
    for (position, row) in rows.iter().enumerate() {
        last.insert(&row.key, position);
    }
    let keep: Vec<bool> = rows
        .iter()
        .enumerate()
        .map(|(position, row)| last.get(&row.key) == Some(&position))
        .collect();
    drop(last);
    let mut position = 0;
    rows.retain(|_| {
        position += 1;
        keep[position - 1]
    });
    (0..total).filter(|p| keep[*p]).collect()
}

/// The rows per chunk: `chunk` if given, at most as many as the
/// bind-parameter limit allows for rows of `per_row` values.
fn chunk_size(chunk: Option<usize>, per_row: usize, backend: DbBackend) -> Result<usize, Refusal> {
    let most = (bind_limit(backend) / per_row.max(1)).max(1);
    match chunk {
        Some(0) => Err(Refusal::ZeroChunk),
        Some(n) => Ok(n.min(most)),
        None => Ok(most),
    }
}

/// Cuts `rows` rows (left of `total` in the input, at input `positions`)
/// into chunks of `size`, each covering a range of the input; together the
/// ranges cover it all.
fn cut(rows: usize, positions: &[usize], total: usize, size: usize) -> Vec<Batch> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut input_start = 0;
    while start < rows {
        let end = (start + size).min(rows);
        let input_end = if end == rows {
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
    if rows == 0 && total > 0 {
        // Unreachable in practice (the last occurrence always stays),
        // but keep the ranges covering the input.
        chunks.push(Batch {
            rows: 0..0,
            input: 0..total,
            superseded: total as u64,
        });
    }
    chunks
}

fn names<C: IdenStatic>(columns: &[C]) -> Box<[&'static str]> {
    columns.iter().map(|c| c.as_str()).collect()
}

fn set_value(v: ActiveValue<Value>) -> Option<Value> {
    match v {
        ActiveValue::Set(v) | ActiveValue::Unchanged(v) => Some(v),
        ActiveValue::NotSet => None,
    }
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
