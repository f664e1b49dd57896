//! The span tree of a request, recorded by a `tracing` layer in a process
//! of its own: request → GraphQL → operation → loader batch → SQL
//! statement, each closed inside its parent, with the fields an operator
//! follows and without values.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use roster_testkit::{TestDb, backend_tests};
use serde_json::json;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::{alone, post_with_id};
use crate::graphql::start;
use crate::http::INSERT;

/// One recorded span.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub name: &'static str,
    /// The index of its parent in the record.
    pub parent: Option<usize>,
    pub fields: BTreeMap<String, String>,
    pub opened: Instant,
    pub closed: Option<Instant>,
}

impl Recorded {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    pub fn duration(&self) -> Option<Duration> {
        Some(self.closed?.duration_since(self.opened))
    }
}

/// A layer recording every span: its name, parent, fields, when it opened
/// and closed.
#[derive(Clone, Default)]
pub struct SpanRecorder(Arc<Mutex<Vec<Recorded>>>);

/// A span's index in the record, kept in its extensions.
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl SpanRecorder {
    pub fn spans(&self) -> Vec<Recorded> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S> Layer<S> for SpanRecorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|parent| parent.extensions().get::<Index>().map(|i| i.0));
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        spans.push(Recorded {
            name: attrs.metadata().name(),
            parent,
            fields,
            opened: Instant::now(),
            closed: None,
        });
        span.extensions_mut().insert(Index(spans.len() - 1));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(index) = span.extensions().get::<Index>().map(|i| i.0) else {
            return;
        };
        let mut spans = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        values.record(&mut Fields(&mut spans[index].fields));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(index) = span.extensions().get::<Index>().map(|i| i.0) else {
            return;
        };
        self.0.lock().unwrap_or_else(PoisonError::into_inner)[index].closed = Some(Instant::now());
    }
}

/// The chain of span names from the root to `spans[at]`.
fn path(spans: &[Recorded], at: usize) -> Vec<&'static str> {
    let mut path = vec![spans[at].name];
    let mut next = spans[at].parent;
    while let Some(parent) = next {
        path.push(spans[parent].name);
        next = spans[parent].parent;
    }
    path.reverse();
    path
}

/// Checks that every span closed, and not after its parent.
fn closed_in_order(spans: &[Recorded]) {
    let open: Vec<Vec<&str>> = (0..spans.len())
        .filter(|&at| spans[at].closed.is_none())
        .map(|at| path(spans, at))
        .collect();
    assert!(open.is_empty(), "never closed: {open:?}\n{spans:#?}");
    for (at, span) in spans.iter().enumerate() {
        let closed = span.closed.expect("closed");
        assert!(closed >= span.opened);
        if let Some(parent) = span.parent {
            let parent_closed = spans[parent].closed.expect("the parent closed");
            assert!(
                closed <= parent_closed,
                "{:?} closed after its parent",
                path(spans, at)
            );
        }
    }
}

/// Records every span of this process at the default level (`info`):
/// only in a process of its own (see [`alone`](super::alone)).
fn record_this_process() -> SpanRecorder {
    let recorder = SpanRecorder::default();
    let subscriber = Registry::default()
        .with(recorder.clone())
        .with(EnvFilter::new("info"));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    recorder
}

/// The spans of the request with id `id` (its `http.request` span and
/// everything under it), parents renumbered, once all have closed (or
/// after 5 s). SQLite's connection worker, a thread of its own, holds the
/// span of the statement it runs until it has handed over the last row, so
/// the spans above it may close a moment after the answer.
async fn tree_of(recorder: &SpanRecorder, id: &str) -> Vec<Recorded> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let all = recorder.spans();
        let mut index = vec![None; all.len()];
        let mut tree: Vec<Recorded> = Vec::new();
        for (at, span) in all.iter().enumerate() {
            let parent = span.parent.and_then(|p| index[p]);
            let root = span.parent.is_none()
                && span.name == "http.request"
                && span.field("request_id") == Some(id);
            if root || parent.is_some() {
                index[at] = Some(tree.len());
                tree.push(Recorded {
                    parent,
                    ..span.clone()
                });
            }
        }
        if (!tree.is_empty() && tree.iter().all(|s| s.closed.is_some()))
            || Instant::now() > deadline
        {
            closed_in_order(&tree);
            return tree;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Posts `body` with `x-request-id: id` to a server over `db`; the spans of
/// that request.
async fn spans_of(
    recorder: &SpanRecorder,
    db: &TestDb,
    id: &str,
    body: serde_json::Value,
) -> Vec<Recorded> {
    let server = start(db).await;
    let (status, echoed) = post_with_id(&server, Some(id), &body).await;
    assert_eq!((status, echoed.as_str()), (200, id));
    server.stop().await;
    tree_of(recorder, id).await
}

/// A query through the loaders: the statement is four levels under the
/// request's span, every span closed inside its parent.
async fn a_query_traces_from_the_request_to_the_statement(db: &TestDb) {
    if !alone::is_child() {
        alone::run_alone(&[]).await;
        return;
    }
    let recorder = record_this_process();
    db.migrate().await;
    let server = start(db).await;
    let id = server.data(INSERT, json!({})).await["userInsert"]["id"].clone();
    server.stop().await;

    let query = "query Directory($ids: [ID!]!) { usersByIds(ids: $ids) { name groups { name } } }";
    let spans = spans_of(
        &recorder,
        db,
        "trace-query-1",
        json!({ "query": query, "variables": { "ids": [id] } }),
    )
    .await;

    let request = &spans[0];
    assert_eq!(request.name, "http.request");
    assert_eq!(request.field("request_id"), Some("trace-query-1"));
    assert_eq!(request.field("http.request.method"), Some("POST"));
    assert_eq!(request.field("http.route"), Some("/graphql"));
    assert_eq!(request.field("http.response.status_code"), Some("200"));

    let operation = spans
        .iter()
        .find(|s| s.name == "graphql.operation")
        .expect("the operation's span");
    assert_eq!(operation.field("graphql.operation.type"), Some("query"));
    assert_eq!(operation.field("graphql.operation.name"), Some("Directory"));
    assert_eq!(operation.field("graphql.errors"), None);

    // Each batch (users by id, then the users' groups) under the
    // operation, each with its statement under it.
    let batches: Vec<usize> = (0..spans.len())
        .filter(|&at| spans[at].name == "roster_loader.batch")
        .collect();
    assert_eq!(batches.len(), 2, "{spans:#?}");
    for &batch in &batches {
        assert_eq!(
            path(&spans, batch),
            [
                "http.request",
                "graphql",
                "graphql.operation",
                "roster_loader.batch"
            ]
        );
        assert_eq!(spans[batch].field("statements"), Some("1"));
        let statements: Vec<&Recorded> = spans.iter().filter(|s| s.parent == Some(batch)).collect();
        assert_eq!(statements.len(), 1, "{spans:#?}");
        assert_eq!(statements[0].name, "sea_orm.query_all");
        assert_eq!(statements[0].field("db.operation"), Some("SELECT"));
        assert_eq!(statements[0].field("otel.status_code"), Some("OK"));
        assert!(statements[0].duration().is_some());
    }
    assert_eq!(spans[batches[0]].field("source"), Some("users"));
    // Durations nest: the request took at least as long as each batch.
    let longest = batches
        .iter()
        .filter_map(|&b| spans[b].duration())
        .max()
        .expect("durations");
    assert!(request.duration().expect("closed") >= longest);
    // No span carries the query text.
    for span in &spans {
        for value in span.fields.values() {
            assert!(!value.contains("usersByIds"), "{span:#?}");
        }
    }
}

/// A mutation: the store's statements under the operation, their text
/// with placeholders and never the values written; after it, the request
/// reads the primary's commit position (PostgreSQL, MariaDB with a binary
/// log) in a span of its own.
async fn a_mutation_traces_its_statements_without_values(db: &TestDb) {
    if !alone::is_child() {
        alone::run_alone(&[]).await;
        return;
    }
    let recorder = record_this_process();
    db.migrate().await;
    let spans = spans_of(
        &recorder,
        db,
        "trace-mutation-1",
        json!({ "query": INSERT }),
    )
    .await;
    let operation = spans
        .iter()
        .position(|s| s.name == "graphql.operation")
        .expect("the operation's span");
    assert_eq!(
        spans[operation].field("graphql.operation.type"),
        Some("mutation")
    );
    let statements: Vec<usize> = (0..spans.len())
        .filter(|&at| spans[at].name.starts_with("sea_orm."))
        .collect();
    assert!(!statements.is_empty(), "{spans:#?}");
    for &at in &statements {
        let path = path(&spans, at);
        assert!(
            path[..3] == ["http.request", "graphql", "graphql.operation"]
                || path[..3] == ["http.request", "graphql", "roster.commit_position"],
            "{path:?}"
        );
        let text = spans[at].field("db.statement").unwrap_or_default();
        assert!(!text.contains("Mallory"), "a value in a statement: {text}");
    }
    assert!(
        statements
            .iter()
            .any(|&at| spans[at].field("db.operation") == Some("INSERT")),
        "{spans:#?}"
    );
}

backend_tests!(
    a_query_traces_from_the_request_to_the_statement,
    a_mutation_traces_its_statements_without_values,
);
