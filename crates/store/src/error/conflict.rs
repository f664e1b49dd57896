//! [`Conflict`]: the details of [`Error::Conflict`](super::Error::Conflict),
//! with the row as stored now.

use std::any::Any;
use std::fmt;

use chrono::{DateTime, Utc};

/// The details of [`Error::Conflict`](super::Error::Conflict).
#[derive(thiserror::Error)]
#[error(
    "{table} {id} was changed by someone else (expected lastchange {expected}, stored {stored})"
)]
pub struct Conflict {
    /// The table.
    pub table: &'static str,
    /// The row's id.
    pub id: i64,
    /// The `lastchange` the caller expected.
    pub expected: DateTime<Utc>,
    /// The `lastchange` stored now.
    pub stored: DateTime<Utc>,
    current: Box<dyn CurrentRow>,
}

trait CurrentRow: Any + Send + Sync + fmt::Debug {
    fn as_any(&self) -> &dyn Any;
}

impl<M: Any + Send + Sync + fmt::Debug> CurrentRow for M {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Conflict {
    pub(crate) fn new<M: Any + Send + Sync + fmt::Debug>(
        table: &'static str,
        id: i64,
        expected: DateTime<Utc>,
        stored: DateTime<Utc>,
        current: M,
    ) -> Self {
        Self {
            table,
            id,
            expected,
            stored,
            current: Box::new(current),
        }
    }

    /// The row as stored now, as the entity's model (e.g. `user::Model`);
    /// `None` if `M` is not this table's model.
    ///
    /// ```
    /// # use roster_store::Error;
    /// # fn f(err: Error) {
    /// use roster_entity::user;
    /// if let Error::Conflict(conflict) = &err {
    ///     let current: Option<&user::Model> = conflict.current();
    /// #   let _ = current;
    /// }
    /// # }
    /// ```
    pub fn current<M: Any>(&self) -> Option<&M> {
        (*self.current).as_any().downcast_ref()
    }
}

impl fmt::Debug for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conflict")
            .field("table", &self.table)
            .field("id", &self.id)
            .field("expected", &self.expected)
            .field("stored", &self.stored)
            .field("current", &self.current)
            .finish()
    }
}
