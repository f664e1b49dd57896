//! [`RelationSource`]: related rows by parent id, one statement per batch.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::sea_query::{
    Alias, Asterisk, DynIden, Expr, ExprTrait, Func, IntoIden, Order, Query, SelectStatement,
    WindowStatement,
};
use sea_orm::{Condition, ConnectionTrait, EntityTrait, FromQueryResult, Iterable};

use crate::entity_source::primary_key;
use crate::error::BoxError;
use crate::read_route::ReadRoute;
use crate::source::BatchSource;
use crate::sql;

/// The column alias carrying each row's parent id.
const PARENT: &str = "roster_parent_id";
/// The column alias carrying each row's rank within its parent.
const RANK: &str = "roster_rank";

/// Loads the rows of `E` related to each parent id, as a `Vec` per parent
/// (empty when there are none), in a stable order. Each row is shared
/// (`Arc`), so resolvers hand rows on without copying them.
///
/// - [`has_many`](Self::has_many): `E` rows whose foreign key holds the
///   parent id (a group type's groups).
/// - [`many_to_many`](Self::many_to_many): `E` rows linked through a
///   junction table (a user's groups via `users_groups`), in one join.
///
/// The order (default: `E`'s primary key) and an optional
/// [`limit_per_parent`](Self::limit_per_parent) are applied in SQL, the limit
/// with `ROW_NUMBER() OVER (PARTITION BY parent …)`.
pub struct RelationSource<E: EntityTrait> {
    route: ReadRoute,
    name: &'static str,
    /// `(table, column)` holding the parent id.
    parent: (DynIden, DynIden),
    /// For M:N: the junction table and its column pointing at `E`'s key.
    junction: Option<(DynIden, DynIden)>,
    order: Vec<(E::Column, Order)>,
    limit_per_parent: Option<u64>,
    filter: Option<Condition>,
    /// The tables whose writes change what this source loads.
    tables: Vec<&'static str>,
}

impl<E: EntityTrait> RelationSource<E> {
    /// Rows of `E` whose `foreign_key` equals the parent id (1:N).
    pub fn has_many(db: impl Into<ReadRoute>, foreign_key: E::Column) -> Self {
        let tables = vec![E::default().table_name()];
        Self::has_many_column(db.into(), foreign_key.into_iden(), tables)
    }

    pub(crate) fn has_many_column(
        db: ReadRoute,
        foreign_key: DynIden,
        tables: Vec<&'static str>,
    ) -> Self {
        Self::with_parent(db, (E::default().into_iden(), foreign_key), None, tables)
    }

    /// Rows of `E` linked to the parent through junction `J`:
    /// `J.parent_key` = parent id and `J.target_key` = `E`'s primary key (M:N).
    pub fn many_to_many<J: EntityTrait>(
        db: impl Into<ReadRoute>,
        parent_key: J::Column,
        target_key: J::Column,
    ) -> Self {
        let tables = vec![E::default().table_name(), J::default().table_name()];
        Self::many_to_many_columns(
            db.into(),
            J::default().into_iden(),
            parent_key.into_iden(),
            target_key.into_iden(),
            tables,
        )
    }

    pub(crate) fn many_to_many_columns(
        db: ReadRoute,
        junction: DynIden,
        parent_key: DynIden,
        target_key: DynIden,
        tables: Vec<&'static str>,
    ) -> Self {
        Self::with_parent(
            db,
            (junction.clone(), parent_key),
            Some((junction, target_key)),
            tables,
        )
    }

    fn with_parent(
        db: ReadRoute,
        parent: (DynIden, DynIden),
        junction: Option<(DynIden, DynIden)>,
        tables: Vec<&'static str>,
    ) -> Self {
        Self {
            route: db,
            name: E::default().table_name(),
            parent,
            junction,
            order: Vec::new(),
            limit_per_parent: None,
            filter: None,
            tables,
        }
    }

    /// The number of related rows per parent (all of them: neither the
    /// filter nor the limit applies), for the same relation.
    pub fn counts(&self) -> crate::RelationCount {
        crate::RelationCount {
            route: self.route.clone(),
            name: self.name,
            parent: self.parent.clone(),
        }
    }

    /// The tables whose writes can change what this source loads: `E`'s,
    /// the junction's, and (for [`related`](Self::related)) the parent's,
    /// whose deletions cascade. A cache of it is stale after a write to any.
    pub fn tables(&self) -> &[&'static str] {
        &self.tables
    }

    /// Orders each parent's rows by `column` (repeat for more keys; the
    /// primary key always breaks ties).
    pub fn order_by(mut self, column: E::Column, order: Order) -> Self {
        self.order.push((column, order));
        self
    }

    /// Keeps at most `limit` rows per parent (the first in order).
    pub fn limit_per_parent(mut self, limit: u64) -> Self {
        self.limit_per_parent = Some(limit);
        self
    }

    /// Restricts the related rows to those matching `condition`.
    pub fn with_filter(mut self, condition: Condition) -> Self {
        self.filter = Some(condition);
        self
    }

    /// Names the source in logs and metrics (default: `E`'s table).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    fn statement(&self, parents: &[i64]) -> Result<SelectStatement, BoxError> {
        let key = primary_key::<E>()?;
        let backend = self.route.backend();
        let parent_col = || (self.parent.0.clone(), self.parent.1.clone());

        let mut inner = Query::select();
        inner
            .columns(E::Column::iter().map(|c| (E::default(), c)))
            .expr_as(Expr::col(parent_col()), Alias::new(PARENT))
            .from(E::default());
        if let Some((table, target)) = &self.junction {
            inner.inner_join(
                table.clone(),
                Expr::col((table.clone(), target.clone())).equals((E::default(), key)),
            );
        }
        inner.and_where(sql::ids_filter(backend, Expr::col(parent_col()), parents));
        if let Some(filter) = &self.filter {
            inner.cond_where(filter.clone());
        }
        let mut order = self.order.clone();
        if !order
            .iter()
            .any(|(c, _)| c.into_iden().to_string() == key.into_iden().to_string())
        {
            order.push((key, Order::Asc));
        }

        let Some(limit) = self.limit_per_parent else {
            inner.order_by(parent_col(), Order::Asc);
            for (column, dir) in order {
                inner.order_by((E::default(), column), dir);
            }
            return Ok(inner);
        };
        let mut window = WindowStatement::partition_by(parent_col());
        for (column, dir) in order {
            window.order_by((E::default(), column), dir);
        }
        inner.expr_window_as(
            Func::cust(Alias::new("ROW_NUMBER")),
            window,
            Alias::new(RANK),
        );
        let mut outer = Query::select();
        outer
            .column(Asterisk)
            .from_subquery(inner, Alias::new("roster_ranked"))
            .and_where(Expr::col(Alias::new(RANK)).lte(limit))
            .order_by(Alias::new(PARENT), Order::Asc)
            .order_by(Alias::new(RANK), Order::Asc);
        Ok(outer)
    }
}

#[async_trait::async_trait]
impl<E> BatchSource for RelationSource<E>
where
    E: EntityTrait,
    E::Model: Clone + Send + Sync + 'static,
{
    type Value = Vec<Arc<E::Model>>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn max_ids_per_call(&self) -> usize {
        sql::max_ids_per_statement(self.route.backend())
    }

    async fn load(&self, parents: &[i64]) -> Result<HashMap<i64, Vec<Arc<E::Model>>>, BoxError> {
        let statement = self.statement(parents)?;
        let rows = self.route.read(|db| db.query_all(&statement)).await?;
        let mut related: HashMap<i64, Vec<Arc<E::Model>>> =
            parents.iter().map(|&p| (p, Vec::new())).collect();
        for row in rows {
            let parent: i64 = row.try_get("", PARENT)?;
            let model = E::Model::from_query_result(&row, "")?;
            related.entry(parent).or_default().push(Arc::new(model));
        }
        Ok(related)
    }
}
