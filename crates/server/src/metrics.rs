//! [`Metrics`]: what `GET /metrics` exports, as Prometheus text
//! (OpenMetrics) through `prometheus-client`: HTTP requests, errors in
//! GraphQL answers by code, requests over the time limit, SQL statements,
//! and the loaders' counters and batch-size histogram.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use roster_loader::LoaderMetrics;

/// The labels of `roster_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `GET`, `POST`, …
    pub method: String,
    /// The route (`/graphql`, `/health`, `/metrics`) or `other`.
    pub path: String,
    /// The response status code.
    pub status: u16,
}

/// The labels of `roster_graphql_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error's `extensions.code` (`CONFLICT`, `NOT_FOUND`,
    /// `BAD_USER_INPUT`, `INTERNAL`), or `none` if it has none.
    pub code: String,
}

impl ErrorLabels {
    fn of(code: Option<&str>) -> Self {
        Self {
            code: code.unwrap_or("none").to_owned(),
        }
    }
}

/// The server's metrics, shared by every request.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    graphql_errors: Family<ErrorLabels, Counter>,
    request_timeouts: Counter,
    sql_statements: Counter,
    loader: Arc<LoaderMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh, zeroed metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "roster_http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        let graphql_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "roster_graphql_errors",
            "Errors in GraphQL answers, by extensions.code",
            graphql_errors.clone(),
        );
        let request_timeouts = Counter::default();
        registry.register(
            "roster_request_timeouts",
            "GraphQL requests answered 504 at the request time limit",
            request_timeouts.clone(),
        );
        let sql_statements = Counter::default();
        registry.register(
            "roster_sql_statements",
            "SQL statements issued through the server's pool",
            sql_statements.clone(),
        );
        let loader = Arc::new(LoaderMetrics::new());
        registry.register_collector(Box::new(LoaderCollector(loader.clone())));
        Self {
            registry,
            http_requests,
            graphql_errors,
            request_timeouts,
            sql_statements,
            loader,
        }
    }

    /// The loader metrics every request's loaders record into.
    pub fn loader(&self) -> &Arc<LoaderMetrics> {
        &self.loader
    }

    /// Counts one SQL statement (called by the pool's metric callback).
    pub fn sql_statement(&self) {
        self.sql_statements.inc();
    }

    /// SQL statements counted so far.
    pub fn sql_statements(&self) -> u64 {
        self.sql_statements.get()
    }

    /// Counts one answered HTTP request.
    pub fn http_request(&self, method: &str, path: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                path: path.to_owned(),
                status,
            })
            .inc();
    }

    /// Counts one error in a GraphQL answer, by its `extensions.code`.
    pub fn graphql_error(&self, code: Option<&str>) {
        self.graphql_errors
            .get_or_create(&ErrorLabels::of(code))
            .inc();
    }

    /// Errors with `code` counted so far (`None`: those without a code).
    pub fn graphql_errors(&self, code: Option<&str>) -> u64 {
        self.graphql_errors
            .get_or_create(&ErrorLabels::of(code))
            .get()
    }

    /// Counts one request answered 504 at the request time limit.
    pub fn request_timeout(&self) {
        self.request_timeouts.inc();
    }

    /// Requests answered 504 at the request time limit so far.
    pub fn request_timeouts(&self) -> u64 {
        self.request_timeouts.get()
    }

    /// Everything, as OpenMetrics text (which Prometheus reads).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Reads the loaders' atomics at scrape time.
#[derive(Debug)]
struct LoaderCollector(Arc<LoaderMetrics>);

impl Collector for LoaderCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let m = self.0.snapshot();
        let counters = [
            (
                "roster_loader_loads",
                "Ids asked for through the loaders",
                m.loads,
            ),
            (
                "roster_loader_cache_hits",
                "Loads answered from a request's cache",
                m.cache_hits,
            ),
            (
                "roster_loader_deduplicated",
                "Loads that joined a batch already asking for the id",
                m.deduplicated,
            ),
            (
                "roster_loader_batches",
                "Loader batches dispatched",
                m.batches,
            ),
            (
                "roster_loader_statements",
                "SQL statements issued by the loaders",
                m.statements,
            ),
            (
                "roster_loader_failed_batches",
                "Loader batches whose statement failed",
                m.failed_batches,
            ),
        ];
        for (name, help, value) in counters {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        let mut buckets = Vec::with_capacity(m.batch_size.buckets.len() + 1);
        let mut below = 0;
        for &(bound, cumulative) in &m.batch_size.buckets {
            buckets.push((bound as f64, cumulative.saturating_sub(below)));
            below = cumulative;
        }
        buckets.push((f64::INFINITY, m.batch_size.count.saturating_sub(below)));
        let mut metric = encoder.encode_descriptor(
            "roster_loader_batch_size",
            "Distinct ids per loader batch",
            None,
            MetricType::Histogram,
        )?;
        metric.encode_histogram::<NoLabelSet>(
            m.batch_size.sum as f64,
            m.batch_size.count,
            &buckets,
            None,
        )
    }
}
