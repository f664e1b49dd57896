//! Bulk upsert: [`Store::upsert_many`] writes many rows per statement, chunk
//! by chunk, each chunk in its own transaction, and reports what each chunk
//! did as a stream of [`ChunkReport`]s.
//!
//! Races between writers are resolved inside the database (`ON CONFLICT` on
//! PostgreSQL and SQLite, `ON DUPLICATE KEY UPDATE` on MySQL); the store
//! never issues DDL. How one chunk is written on each backend is in
//! [`chunk`].

mod chunk;
mod pipeline;
mod rows;
mod unnest;

use std::fmt::Debug;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use roster_entity::StoreEntity;

use crate::error::{Error, Result};
use crate::transaction::TxError;
use crate::{Loaders, Store, TxOptions};

pub use rows::bind_limit;

/// What [`Store::upsert_many`] does with a row whose key already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnConflict {
    /// Overwrite the stored row with the given columns; a versioned row's
    /// `lastchange` becomes `max(now, old + 1 µs)`, as [`Store::update`]
    /// does.
    Update,
    /// Leave the stored row as it is.
    Ignore,
    /// Overwrite the stored row only if its `lastchange` is still the one
    /// the row carries (the version the caller read); every row that no
    /// longer matches is reported in [`ChunkReport::conflicts`] with its
    /// stored version. Rows that do not exist are inserted. Versioned
    /// tables only.
    UpdateIfUnchanged,
}

/// How [`Store::upsert_many`] cuts a call into chunks and how many it runs
/// at once. `None` and `Some(rows)` convert into options with that chunk
/// size and one chunk at a time.
///
/// ```
/// use roster_store::UpsertOptions;
/// let opts = UpsertOptions::new().chunk(5_000).parallel(2);
/// assert_eq!((opts.chunk, opts.parallel), (Some(5_000), 2));
/// assert_eq!(UpsertOptions::from(Some(100)).chunk, Some(100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpsertOptions {
    /// Rows per chunk; `None` (the default): as many as the backend's
    /// bind-parameter limit allows. A larger size is lowered to that limit.
    pub chunk: Option<usize>,
    /// How many chunks may be written at once, each in its own transaction
    /// on its own pooled connection (default 1).
    ///
    /// Chunks still commit in order, and only when the stream is polled
    /// for their report, so what is committed is always what the caller
    /// has been told (see [`Store::upsert_many`]). A chunk that fails while
    /// running ahead is written again at its turn, after the chunks before
    /// it have committed, and only that result is reported.
    ///
    /// PostgreSQL only: on MySQL, InnoDB's gap locks make chunks of one
    /// call wait for each other, and SQLite has one writer at a time; there
    /// (and inside a caller's transaction, or off a Tokio runtime) chunks
    /// run one at a time. Capped at the pool's size minus one; several
    /// calls at once still share the pool.
    pub parallel: usize,
    /// How long a chunk written ahead may hold its transaction (its
    /// connection and row locks) waiting for its turn to commit (default
    /// 1 s, or twice its statement's time if longer). Past it the chunk
    /// rolls back and is written again at its turn, so a caller that does
    /// other work between polls, another writer, or an earlier chunk that
    /// needs one of its locks never waits on it for long.
    pub wait_ahead: Duration,
}

impl Default for UpsertOptions {
    fn default() -> Self {
        Self {
            chunk: None,
            parallel: 1,
            wait_ahead: Duration::from_secs(1),
        }
    }
}

impl UpsertOptions {
    /// Chunks as large as the bind-parameter limit allows, one at a time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the rows per chunk.
    pub fn chunk(mut self, rows: usize) -> Self {
        self.chunk = Some(rows);
        self
    }

    /// Sets how many chunks may be written at once (0 counts as 1).
    pub fn parallel(mut self, chunks: usize) -> Self {
        self.parallel = chunks.max(1);
        self
    }

    /// Sets how long a chunk written ahead may wait for its turn.
    pub fn wait_ahead(mut self, wait: Duration) -> Self {
        self.wait_ahead = wait;
        self
    }
}

impl From<Option<usize>> for UpsertOptions {
    fn from(chunk: Option<usize>) -> Self {
        Self {
            chunk,
            ..Self::default()
        }
    }
}

/// What one chunk of [`Store::upsert_many`] did. Its transaction has
/// committed when the report is yielded.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkReport<M> {
    /// The positions in the caller's input this chunk covers. The ranges of
    /// a call's chunks are consecutive and cover the whole input.
    pub rows: Range<usize>,
    /// Rows inserted.
    pub inserted: u64,
    /// Existing rows overwritten.
    pub updated: u64,
    /// Existing rows left as they were ([`OnConflict::Ignore`]).
    pub ignored: u64,
    /// Rows left out because a later row of the same call has the same key
    /// (the last occurrence wins).
    pub superseded: u64,
    /// [`OnConflict::UpdateIfUnchanged`]: the stored versions of the rows
    /// that were not written because their `lastchange` no longer matched.
    pub conflicts: Vec<M>,
}

/// The sum of a call's [`ChunkReport`]s, from [`Store::upsert_all`].
#[derive(Clone, Debug, PartialEq)]
pub struct UpsertTotals<M> {
    /// Chunks written (one statement and one transaction each).
    pub chunks: u64,
    /// Rows inserted.
    pub inserted: u64,
    /// Existing rows overwritten.
    pub updated: u64,
    /// Existing rows left as they were.
    pub ignored: u64,
    /// Rows left out for a later row with the same key.
    pub superseded: u64,
    /// Stored versions of the rows not written for a stale `lastchange`.
    pub conflicts: Vec<M>,
}

impl<M> Default for UpsertTotals<M> {
    fn default() -> Self {
        Self {
            chunks: 0,
            inserted: 0,
            updated: 0,
            ignored: 0,
            superseded: 0,
            conflicts: Vec::new(),
        }
    }
}

impl<M> UpsertTotals<M> {
    fn add(&mut self, chunk: ChunkReport<M>) {
        self.chunks += 1;
        self.inserted += chunk.inserted;
        self.updated += chunk.updated;
        self.ignored += chunk.ignored;
        self.superseded += chunk.superseded;
        self.conflicts.extend(chunk.conflicts);
    }
}

impl Store {
    /// Inserts or updates `rows` (sea-orm active models; every row sets the
    /// same columns, including the conflict key) in chunks of one statement
    /// each, and yields what each chunk did.
    ///
    /// - Chunks hold [`UpsertOptions::chunk`] rows, or (with `None`) as many
    ///   as the backend's bind-parameter limit allows. Each chunk runs in its
    ///   own transaction, retried on serialization failure or deadlock;
    ///   inside a caller's transaction each chunk is a savepoint of it.
    /// - With [`UpsertOptions::parallel`] above 1 (PostgreSQL), the chunks
    ///   after the one being reported are already written on other
    ///   connections, but each commits only when the stream is polled for
    ///   its report, so what is committed is what the caller was told. A
    ///   chunk that fails while running ahead is written again at its turn,
    ///   and only that result is reported.
    /// - Rows with the same key in one call: the last one wins, the others
    ///   are counted as `superseded`.
    /// - A versioned row's `lastchange` is the current time on insert and
    ///   `max(now, old + 1 µs)` on update; with
    ///   [`OnConflict::UpdateIfUnchanged`] the row's own `lastchange` is the
    ///   version it expects.
    /// - A chunk that fails yields an error and writes nothing; when the
    ///   database refused one of its rows, the error is
    ///   [`Error::BadRow`] naming the row's position in `rows`. Chunks
    ///   before it stay committed; the stream goes on with the next chunk,
    ///   so stop polling it to stop there. Dropping the stream part-way
    ///   rolls back the chunk in flight.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let url = format!("sqlite://{}?mode=rwc", dir.path().join("doc.db").display());
    /// # roster_migrations::run(&url, roster_migrations::Action::Up { steps: None }).await?;
    /// # let db = sea_orm::Database::connect(&url).await?;
    /// use futures::TryStreamExt;
    /// use roster_entity::user;
    /// use roster_store::{OnConflict, Store};
    /// use sea_orm::ActiveValue::Set;
    ///
    /// let store = Store::new(db);
    /// let people = |n: i64| (1..=n).map(|id| user::ActiveModel {
    ///     id: Set(id),
    ///     name: Set(Some(format!("user {id}"))),
    ///     ..Default::default()
    /// });
    /// let totals = store.upsert_all::<user::Entity>(people(3), OnConflict::Update, None).await?;
    /// assert_eq!((totals.inserted, totals.updated), (3, 0));
    ///
    /// // Chunk by chunk, e.g. to show progress:
    /// let mut chunks = std::pin::pin!(store.upsert_many::<user::Entity>(people(5), OnConflict::Ignore, Some(2)));
    /// while let Some(chunk) = chunks.try_next().await? {
    ///     println!("rows {:?}: {} new, {} left alone", chunk.rows, chunk.inserted, chunk.ignored);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn upsert_many<E>(
        &self,
        rows: impl IntoIterator<Item = E::ActiveModel>,
        on_conflict: OnConflict,
        options: impl Into<UpsertOptions>,
    ) -> impl Stream<Item = Result<ChunkReport<E::Model>>> + Send + 'static
    where
        E: StoreEntity,
    {
        let options = options.into();
        let prepared = self.check_writable(E::TABLE).and_then(|()| {
            rows::Prepared::<E>::new(rows, on_conflict, options.chunk, self.backend())
        });
        let store = self.clone();
        let state = match prepared {
            Ok(prepared) => match self.parallel_width(options.parallel) {
                Some((runtime, width)) => State::Parallel(Box::new(pipeline::Pipeline::new(
                    store,
                    Arc::new(prepared),
                    runtime,
                    width,
                    options.wait_ahead,
                ))),
                None => State::Ready {
                    store,
                    prepared: Arc::new(prepared),
                    next: 0,
                    ahead: None,
                },
            },
            Err(err) => State::Failed(err),
        };
        futures::stream::unfold(state, |state| async move {
            match state {
                State::Done => None,
                State::Failed(err) => Some((Err(err), State::Done)),
                State::Parallel(mut pipeline) => {
                    let report = pipeline.next().await?;
                    Some((report, State::Parallel(pipeline)))
                }
                State::Ready {
                    store,
                    prepared,
                    next,
                    ahead,
                } => {
                    let batch = prepared.chunks.get(next)?.clone();
                    let backend = store.backend();
                    let encoded = match ahead {
                        Some(ahead) => ahead.await.ok().flatten(),
                        None => chunk::encode(&prepared, &batch, backend),
                    };
                    // The next chunk's statement is built while this one runs.
                    let ahead = encode_ahead(&prepared, next + 1, backend);
                    let report = store
                        .upsert_chunk(&prepared, &batch, encoded.as_ref(), None)
                        .await;
                    let state = State::Ready {
                        store,
                        prepared,
                        next: next + 1,
                        ahead,
                    };
                    Some((report, state))
                }
            }
        })
    }

    /// [`upsert_many`](Store::upsert_many), folded into totals; stops at
    /// the first failed chunk (the chunks before it stay committed).
    pub async fn upsert_all<E>(
        &self,
        rows: impl IntoIterator<Item = E::ActiveModel>,
        on_conflict: OnConflict,
        options: impl Into<UpsertOptions>,
    ) -> Result<UpsertTotals<E::Model>>
    where
        E: StoreEntity,
    {
        use futures::TryStreamExt;
        let stream = self.upsert_many::<E>(rows, on_conflict, options);
        stream
            .try_fold(UpsertTotals::default(), |mut totals, chunk| async move {
                totals.add(chunk);
                Ok(totals)
            })
            .await
    }

    /// The runtime and the number of chunks for a pipeline of `parallel`
    /// chunks, where [`UpsertOptions::parallel`] allows one; `None`: one
    /// chunk at a time.
    fn parallel_width(&self, parallel: usize) -> Option<(tokio::runtime::Handle, usize)> {
        if parallel <= 1 || self.tx.is_some() {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let width = match &self.db.inner {
            sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                let pool = self.db.get_postgres_connection_pool().options();
                let size = usize::try_from(pool.get_max_connections()).unwrap_or(usize::MAX);
                parallel.min(size.saturating_sub(1))
            }
            _ => 1,
        };
        (width > 1).then_some((runtime, width))
    }

    /// Writes one chunk in its own transaction (a savepoint inside the
    /// caller's) and commits it at once; names the bad row if the database
    /// refused one. In a pipeline (its turn has come), `turn` lets the next
    /// chunk take a connection once this one has its own.
    async fn upsert_chunk<E: StoreEntity>(
        &self,
        prepared: &rows::Prepared<E>,
        batch: &rows::Batch,
        encoded: Option<&unnest::Arrays>,
        turn: Option<&pipeline::Turn>,
    ) -> Result<ChunkReport<E::Model>> {
        let now = crate::lastchange::truncate_to_micros(Utc::now());
        let commit_now = |_: Duration| async { Ok::<(), Error>(()) };
        let written = self
            .write_chunk(prepared, batch, encoded, now, turn, commit_now)
            .await;
        match written {
            Ok(counts) => Ok(report(batch, counts)),
            Err(err @ Error::Invalid { .. }) if self.tx.is_none() => {
                match chunk::find_bad_row::<E>(&self.db, prepared, batch, now).await {
                    Some(row) => Err(Error::BadRow {
                        table: E::TABLE,
                        row,
                        chunk: batch.input.clone(),
                        source: Box::new(err),
                    }),
                    None => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Writes a chunk of a pipeline before its turn: its transaction stays
    /// open until the chunks before it have committed, then commits. A
    /// failure is provisional (the chunk is written again at its turn), so
    /// no bad row is looked for.
    async fn upsert_chunk_ahead<E: StoreEntity>(
        &self,
        prepared: &rows::Prepared<E>,
        batch: &rows::Batch,
        encoded: Option<&unnest::Arrays>,
        turn: &pipeline::Turn,
    ) -> Result<ChunkReport<E::Model>, pipeline::Ahead> {
        let now = crate::lastchange::truncate_to_micros(Utc::now());
        let at_its_turn = |statement: Duration| async move {
            turn.wait(statement).await.map_err(pipeline::Ahead::Missed)
        };
        let counts = self
            .write_chunk(prepared, batch, encoded, now, Some(turn), at_its_turn)
            .await?;
        Ok(report(batch, counts))
    }

    /// Writes `batch` in a transaction of its own, stamping versions with
    /// `now`; `before_commit` is given the statement's time and decides
    /// when (and whether) the transaction commits. `turn`, in a pipeline,
    /// hears when the chunk has its connection.
    async fn write_chunk<E, X, C, Fut>(
        &self,
        prepared: &rows::Prepared<E>,
        batch: &rows::Batch,
        encoded: Option<&unnest::Arrays>,
        now: DateTime<Utc>,
        turn: Option<&pipeline::Turn>,
        before_commit: C,
    ) -> Result<chunk::Counts<E::Model>, X>
    where
        E: StoreEntity,
        X: TxError,
        C: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<(), X>>,
    {
        let before_commit = &before_commit;
        self.transaction_with(TxOptions::new(), |tx| async move {
            if let Some(turn) = turn {
                turn.began();
            }
            let started = std::time::Instant::now();
            let counts = chunk::write::<E>(&tx, prepared, batch, encoded, now).await?;
            before_commit(started.elapsed()).await?;
            tx.after_write(Loaders::wrote_many::<E>);
            Ok(counts)
        })
        .await
    }
}

/// The report of `batch`, which wrote `counts`.
fn report<M>(batch: &rows::Batch, counts: chunk::Counts<M>) -> ChunkReport<M> {
    ChunkReport {
        rows: batch.input.clone(),
        inserted: counts.inserted,
        updated: counts.updated,
        ignored: counts.ignored,
        superseded: batch.superseded,
        conflicts: counts.conflicts,
    }
}

enum State<E: StoreEntity> {
    Ready {
        store: Store,
        prepared: Arc<rows::Prepared<E>>,
        next: usize,
        /// Chunk `next`'s arrays, being built.
        ahead: Option<tokio::task::JoinHandle<Option<unnest::Arrays>>>,
    },
    /// Several chunks at once ([`UpsertOptions::parallel`]).
    Parallel(Box<pipeline::Pipeline<E>>),
    Failed(Error),
    Done,
}

/// Starts building chunk `index`'s arrays on a blocking thread, when it
/// exists and has any to build (see [`chunk::encode`]); used by both the
/// one-at-a-time stream and the pipeline.
fn encode_ahead<E: StoreEntity>(
    prepared: &Arc<rows::Prepared<E>>,
    index: usize,
    backend: sea_orm::DbBackend,
) -> Option<tokio::task::JoinHandle<Option<unnest::Arrays>>> {
    if !chunk::encodes(prepared, backend) {
        return None;
    }
    let batch = prepared.chunks.get(index)?.clone();
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let prepared = prepared.clone();
    Some(runtime.spawn_blocking(move || chunk::encode(&prepared, &batch, backend)))
}
