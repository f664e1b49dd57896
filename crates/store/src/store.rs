//! [`Store`]: a request's handle on the database, inside or outside a
//! transaction, and its write-through to the request's loaders.

use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::{DatabaseConnection, DatabaseExecutor, DatabaseTransaction, DbBackend};

use crate::Loaders;

/// A change to the request's loader caches, applied when the write that
/// caused it is durable (at once outside a transaction, at commit inside).
pub(crate) type Effect = Box<dyn FnOnce(&Loaders) + Send>;

/// One request's access to the directory: CRUD with optimistic concurrency,
/// memberships, transactions with retry.
///
/// A `Store` pairs a database connection (the pool) with the request's
/// [`Loaders`]; reads go through the loaders (batched, cached), and every
/// write updates them, so a `load` after a write in the same request sees
/// the write without a query. Make one per request with [`Store::new`]; it
/// is cheap to clone.
///
/// Inside [`Store::transaction`] the closure receives a `Store` bound to the
/// transaction: its reads and writes run in the transaction, and its cache
/// effects reach the loaders only if the transaction commits.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let url = format!("sqlite://{}?mode=rwc", dir.path().join("doc.db").display());
/// # roster_migrations::run(&url, roster_migrations::Action::Up { steps: None }).await?;
/// # let db = sea_orm::Database::connect(&url).await?;
/// use roster_entity::user;
/// use roster_store::{Error, Store};
/// use sea_orm::ActiveValue::Set;
///
/// let store = Store::new(db.clone());
/// let ada = store
///     .insert::<user::Entity>(user::ActiveModel { name: Set(Some("Ada".into())), ..Default::default() })
///     .await?;
///
/// // Update with the version we read: succeeds and bumps `lastchange`.
/// let changes = user::ActiveModel { email: Set(Some("ada@example.org".into())), ..Default::default() };
/// let ada2 = store.update::<user::Entity>(ada.id, ada.lastchange, changes.clone()).await?;
/// assert!(ada2.lastchange > ada.lastchange);
/// assert_eq!(ada2.name.as_deref(), Some("Ada")); // fields left out stay
///
/// // The same stale version again: a conflict carrying the stored row.
/// let err = store.update::<user::Entity>(ada.id, ada.lastchange, changes).await.unwrap_err();
/// let Error::Conflict(conflict) = err else { panic!("expected a conflict") };
/// assert_eq!(conflict.current::<user::Model>(), Some(&ada2));
///
/// // Read-your-writes: served from the request's cache.
/// assert_eq!(store.get::<user::Entity>(ada.id).await?, Some(ada2));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    pub(crate) tx: Option<Arc<TxState>>,
    pub(crate) loaders: Loaders,
}

/// The open transaction of a transaction-bound [`Store`].
pub(crate) struct TxState {
    pub(crate) txn: DatabaseTransaction,
    pub(crate) read_only: bool,
    pub(crate) effects: Mutex<Vec<Effect>>,
    /// MySQL advisory locks: each on a connection of its own, released when
    /// the transaction ends (or the connection is dropped, if it is
    /// abandoned).
    pub(crate) mysql_locks: tokio::sync::Mutex<Vec<sea_orm::sqlx::MySqlConnection>>,
}

impl Store {
    /// A store over `db` with fresh loaders (one request's worth).
    pub fn new(db: DatabaseConnection) -> Self {
        let loaders = Loaders::new(db.clone());
        Self::with_loaders(db, loaders)
    }

    /// A store over `db` that keeps `loaders` current; use the same
    /// `loaders` for the request's reads.
    pub fn with_loaders(db: DatabaseConnection, loaders: Loaders) -> Self {
        Self {
            db,
            tx: None,
            loaders,
        }
    }

    /// The request's loaders.
    pub fn loaders(&self) -> &Loaders {
        &self.loaders
    }

    /// The database connection (pool) under this store.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Where this store's statements run: the transaction, if bound to one,
    /// else the pool. Statements run here directly bypass the loader caches;
    /// call [`Loaders::clear_all`] after writing this way.
    pub fn connection(&self) -> DatabaseExecutor<'_> {
        match &self.tx {
            Some(state) => DatabaseExecutor::Transaction(&state.txn),
            None => DatabaseExecutor::Connection(&self.db),
        }
    }

    /// Whether this store is bound to a transaction.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Refuses a write to `table` in a read-only transaction.
    pub(crate) fn check_writable(&self, table: &'static str) -> crate::Result<()> {
        match &self.tx {
            Some(state) if state.read_only => Err(crate::Error::ReadOnly { table }),
            _ => Ok(()),
        }
    }

    /// Applies `effect` to the loaders now, or at commit inside a transaction.
    pub(crate) fn after_write(&self, effect: impl FnOnce(&Loaders) + Send + 'static) {
        match &self.tx {
            Some(state) => state
                .effects
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Box::new(effect)),
            None => effect(&self.loaders),
        }
    }
}
