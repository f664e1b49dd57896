//! [`EntitySource`]: rows of a sea-orm entity by integer primary key.

use std::collections::HashMap;
use std::marker::PhantomData;

use sea_orm::sea_query::Expr;
use sea_orm::{
    Condition, DatabaseConnection, EntityTrait, Iterable, ModelTrait, PrimaryKeyToColumn,
    PrimaryKeyTrait, QueryFilter, Value,
};

use crate::error::BoxError;
use crate::source::BatchSource;
use crate::sql;

/// Loads rows of `E` by primary key: one `SELECT … WHERE pk = ANY($1)` per
/// batch on PostgreSQL, a padded `IN (…)` elsewhere.
///
/// `E` needs a single integer primary key. Build one per request; a
/// [`with_filter`](Self::with_filter) condition (the caller's visibility, a
/// tenant) applies to every batch, and rows it hides load as `None`.
pub struct EntitySource<E> {
    db: DatabaseConnection,
    filter: Option<Condition>,
    entity: PhantomData<fn() -> E>,
}

impl<E: EntityTrait> EntitySource<E> {
    /// A source reading `E` through `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            filter: None,
            entity: PhantomData,
        }
    }

    /// Restricts every batch to rows matching `condition`.
    pub fn with_filter(mut self, condition: Condition) -> Self {
        self.filter = Some(condition);
        self
    }
}

/// The single primary-key column of `E`.
pub(crate) fn primary_key<E: EntityTrait>() -> Result<E::Column, BoxError> {
    let mut keys = E::PrimaryKey::iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) => Ok(key.into_column()),
        _ => Err(format!(
            "`{}` needs exactly one primary-key column to be loaded by id",
            E::default().table_name()
        )
        .into()),
    }
}

/// An integer column value as `i64`.
pub(crate) fn as_i64(value: Value) -> Option<i64> {
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

#[async_trait::async_trait]
impl<E> BatchSource for EntitySource<E>
where
    E: EntityTrait,
    E::Model: Clone + Send + Sync + 'static,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: Into<i64>,
{
    type Value = E::Model;

    fn name(&self) -> &'static str {
        E::default().table_name()
    }

    fn max_ids_per_call(&self) -> usize {
        sql::max_ids_per_statement(self.db.get_database_backend())
    }

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, E::Model>, BoxError> {
        let key = primary_key::<E>()?;
        let backend = self.db.get_database_backend();
        let mut select = E::find().filter(sql::ids_filter(
            backend,
            Expr::col((E::default(), key)),
            ids,
        ));
        if let Some(filter) = &self.filter {
            select = select.filter(filter.clone());
        }
        let rows = select.all(&self.db).await?;
        rows.into_iter()
            .map(|model| match as_i64(model.get(key)) {
                Some(id) => Ok((id, model)),
                None => Err("a loaded row has no integer primary key".into()),
            })
            .collect()
    }
}
