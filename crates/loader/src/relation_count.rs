//! [`RelationCount`]: how many rows a relation holds per parent, one
//! `GROUP BY` statement per batch of parents (a connection's `totalCount`
//! for every parent of a level at once).

use std::collections::HashMap;

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, DynIden, Expr, Func, Query};

use crate::error::BoxError;
use crate::read_route::ReadRoute;
use crate::source::BatchSource;
use crate::sql;

/// The column alias carrying each count's parent id.
const PARENT: &str = "roster_parent_id";
/// The column alias carrying each count.
const COUNT: &str = "roster_count";

/// The number of related rows of each parent id (0 when there are none).
/// Made by [`RelationSource::counts`](crate::RelationSource::counts).
pub struct RelationCount {
    pub(crate) route: ReadRoute,
    pub(crate) name: &'static str,
    /// `(table, column)` holding the parent id: the junction's for M:N, the
    /// related table's foreign key for 1:N.
    pub(crate) parent: (DynIden, DynIden),
}

#[async_trait::async_trait]
impl BatchSource for RelationCount {
    type Value = u64;

    fn name(&self) -> &'static str {
        self.name
    }

    fn max_ids_per_call(&self) -> usize {
        sql::max_ids_per_statement(self.route.backend())
    }

    async fn load(&self, parents: &[i64]) -> Result<HashMap<i64, u64>, BoxError> {
        let backend = self.route.backend();
        let column = || Expr::col((self.parent.0.clone(), self.parent.1.clone()));
        let mut select = Query::select();
        select
            .expr_as(column(), Alias::new(PARENT))
            .expr_as(Func::count(Expr::cust("*")), Alias::new(COUNT))
            .from(self.parent.0.clone())
            .and_where(sql::ids_filter(backend, column(), parents))
            .group_by_col((self.parent.0.clone(), self.parent.1.clone()));
        let rows = self.route.read(|db| db.query_all(&select)).await?;
        let mut counts: HashMap<i64, u64> = parents.iter().map(|&p| (p, 0)).collect();
        for row in rows {
            let parent: i64 = row.try_get("", PARENT)?;
            let count: i64 = row.try_get("", COUNT)?;
            counts.insert(parent, u64::try_from(count).unwrap_or(0));
        }
        Ok(counts)
    }
}
