//! [`Metrics`]: what `GET /metrics` exports, as Prometheus text
//! (OpenMetrics) through `prometheus-client`: HTTP requests, errors in
//! GraphQL answers by code, requests over the time limit, refused requests
//! by reason, SQL statements, the loaders' counters and batch-size
//! histogram, where requests read (primary or replica) and each replica's
//! health and lag. Every label takes its value from a fixed set, so no request
//! can add series: an unknown HTTP method is counted as `other`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use roster_loader::LoaderMetrics;
use roster_store::{Cluster, ReadFrom, WeakCluster};

/// The labels of `roster_reads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    /// `primary` or `replica`.
    pub from: &'static str,
}

/// The labels of `roster_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `GET`, `POST`, … or `other` (see [`method_label`]).
    pub method: &'static str,
    /// The route (`/graphql`, `/health`, `/metrics`) or `other`.
    pub path: &'static str,
    /// The response status code.
    pub status: u16,
}

/// The `method` label of `method`: one of the nine methods of RFC 9110 and
/// PATCH, or `other` for anything else, so that a made-up method cannot add
/// a series to `/metrics`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// Why a request was refused: the `reason` label of
/// `roster_requests_refused_total`. A fixed set.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// No, malformed or expired token (401).
    Unauthenticated,
    /// A token without the scope an operation needs (`FORBIDDEN`).
    Forbidden,
    /// A `POST /graphql` body that is not `application/json` (415).
    UnsupportedMediaType,
    /// A `Host` header not in `ROSTER_ALLOWED_HOSTS` (421).
    BadHost,
    /// A cross-origin request from an origin not in `ROSTER_CORS_ORIGINS`
    /// (403).
    Cors,
    /// A method a route does not serve (405), e.g. a GraphQL request over GET.
    Method,
    /// Request headers that did not arrive within `ROSTER_HEADER_TIMEOUT`.
    HeaderTimeout,
    /// A body that did not arrive within `ROSTER_BODY_TIMEOUT` (408).
    BodyTimeout,
    /// A request over `ROSTER_REQUEST_TIMEOUT` (504).
    RequestTimeout,
    /// An answer that moved no byte for `ROSTER_IDLE_TIMEOUT`.
    IdleTimeout,
    /// A body over the size limit (413).
    TooLarge,
    /// A connection over `ROSTER_MAX_CONNECTIONS`: an idle one closed to
    /// make room, or the new one answered 503.
    TooManyConnections,
    /// A GraphQL request refused for its cost (`BAD_USER_INPUT`,
    /// `extensions.reason = "cost"`).
    Cost,
    /// … for its depth.
    Depth,
    /// … for its fragments.
    Fragments,
    /// … for the size of its batch.
    Batch,
    /// … for the size of its answer.
    ResponseSize,
}

impl RefusalReason {
    /// Every reason.
    pub const ALL: [Self; 17] = [
        Self::Unauthenticated,
        Self::Forbidden,
        Self::UnsupportedMediaType,
        Self::BadHost,
        Self::Cors,
        Self::Method,
        Self::HeaderTimeout,
        Self::BodyTimeout,
        Self::RequestTimeout,
        Self::IdleTimeout,
        Self::TooLarge,
        Self::TooManyConnections,
        Self::Cost,
        Self::Depth,
        Self::Fragments,
        Self::Batch,
        Self::ResponseSize,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BadHost => "bad_host",
            Self::Cors => "cors",
            Self::Method => "method",
            Self::HeaderTimeout => "header_timeout",
            Self::BodyTimeout => "body_timeout",
            Self::RequestTimeout => "request_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::TooLarge => "too_large",
            Self::TooManyConnections => "too_many_connections",
            Self::Cost => "cost",
            Self::Depth => "depth",
            Self::Fragments => "fragments",
            Self::Batch => "batch",
            Self::ResponseSize => "response_size",
        }
    }

    /// The reason a GraphQL error's `extensions.reason` names, if it is one
    /// of the GraphQL-level refusals (`cost`, `depth`, `fragments`, `batch`,
    /// `response_size`); any other value is not a reason.
    pub fn from_graphql(reason: &str) -> Option<Self> {
        match reason {
            "cost" => Some(Self::Cost),
            "depth" => Some(Self::Depth),
            "fragments" => Some(Self::Fragments),
            "batch" => Some(Self::Batch),
            "response_size" => Some(Self::ResponseSize),
            _ => None,
        }
    }
}

impl EncodeLabelValue for RefusalReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

/// The labels of `roster_requests_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// Why.
    pub reason: RefusalReason,
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
    refused: Family<RefusalLabels, Counter>,
    request_timeouts: Counter,
    sql_statements: Counter,
    reads: Family<ReadLabels, Counter>,
    cluster: Arc<OnceLock<WeakCluster>>,
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
        let refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "roster_requests_refused",
            "Requests (or connections) refused, by reason",
            refused.clone(),
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
        let reads = Family::<ReadLabels, Counter>::default();
        registry.register(
            "roster_reads",
            "GraphQL requests by where their reads were routed at the start: primary or replica (a request that writes reads from the primary after its first write)",
            reads.clone(),
        );
        let loader = Arc::new(LoaderMetrics::new());
        registry.register_collector(Box::new(LoaderCollector(loader.clone())));
        let cluster = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(ReplicaCollector(cluster.clone())));
        Self {
            registry,
            http_requests,
            graphql_errors,
            refused,
            request_timeouts,
            sql_statements,
            reads,
            cluster,
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

    /// Counts one answered HTTP request; `method` is mapped through
    /// [`method_label`].
    pub fn http_request(&self, method: &str, path: &'static str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method_label(method),
                path,
                status,
            })
            .inc();
    }

    /// Counts one refused request (or connection).
    pub fn refused(&self, reason: RefusalReason) {
        self.refused.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// Requests refused for `reason` so far.
    pub fn refusals(&self, reason: RefusalReason) -> u64 {
        self.refused.get_or_create(&RefusalLabels { reason }).get()
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

    /// A request's reads were routed to `from`.
    pub fn read_routed(&self, from: ReadFrom) {
        self.reads
            .get_or_create(&ReadLabels {
                from: from.as_str(),
            })
            .inc();
    }

    /// Exports `cluster`'s replicas (`roster_replica_healthy`,
    /// `roster_replica_lag_seconds`, one series per replica); the first
    /// cluster given is kept.
    pub fn watch(&self, cluster: &Cluster) {
        // Weak: the cluster's pools count their statements here, so a
        // strong handle would keep both alive for ever.
        let _ = self.cluster.set(cluster.downgrade());
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

/// Reads the replicas' health at scrape time.
#[derive(Debug)]
struct ReplicaCollector(Arc<OnceLock<WeakCluster>>);

impl Collector for ReplicaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(cluster) = self.0.get().and_then(WeakCluster::upgrade) else {
            return Ok(());
        };
        let replicas = cluster.replicas();
        if replicas.is_empty() {
            return Ok(());
        }
        let mut healthy = encoder.encode_descriptor(
            "roster_replica_healthy",
            "1 while reads are routed to the replica, 0 while it is skipped",
            None,
            MetricType::Gauge,
        )?;
        for replica in &replicas {
            let labels = [("replica", replica.endpoint.as_str())];
            ConstGauge::new(i64::from(replica.healthy)).encode(healthy.encode_family(&labels)?)?;
        }
        let mut lag = encoder.encode_descriptor(
            "roster_replica_lag_seconds",
            "How far the replica was behind the primary at its last check",
            None,
            MetricType::Gauge,
        )?;
        for replica in &replicas {
            if let Some(behind) = replica.lag {
                let labels = [("replica", replica.endpoint.as_str())];
                ConstGauge::new(behind.as_secs_f64()).encode(lag.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_five_graphql_reasons_become_labels() {
        for (reason, label) in [
            ("cost", "cost"),
            ("depth", "depth"),
            ("fragments", "fragments"),
            ("batch", "batch"),
            ("response_size", "response_size"),
        ] {
            assert_eq!(
                RefusalReason::from_graphql(reason).map(RefusalReason::as_str),
                Some(label)
            );
        }
        for other in [
            "",
            "COST",
            "cors",
            "unauthenticated",
            "x".repeat(60_000).as_str(),
        ] {
            assert_eq!(RefusalReason::from_graphql(other), None, "{other:.20}");
        }
    }

    #[test]
    fn made_up_methods_share_one_label() {
        let metrics = Metrics::new();
        for method in ["GET", "POST", "BREW", "X".repeat(60_000).as_str(), "get"] {
            metrics.http_request(method, "/graphql", 405);
        }
        let text = metrics.encode().expect("encode");
        assert!(text.len() < 4_000, "{} bytes", text.len());
        assert!(
            text.contains(r#"method="other",path="/graphql",status="405"} 3"#),
            "{text}"
        );
        for reason in RefusalReason::ALL {
            metrics.refused(reason);
        }
        let text = metrics.encode().expect("encode");
        for reason in RefusalReason::ALL {
            let line = format!(
                "roster_requests_refused_total{{reason=\"{}\"}} 1",
                reason.as_str()
            );
            assert!(text.contains(&line), "{line}");
        }
    }
}
