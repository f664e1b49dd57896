//! Logs and traces of the `roster-server` binary and the examples, set up in
//! one place: [`init`] installs the process's subscriber, configured from
//! the environment ([`TelemetryConfig::from_env`]).
//!
//! - Log lines go to stdout, as text or as one JSON object per line
//!   (`ROSTER_LOG_FORMAT=text|json`, default `text`), filtered by
//!   `RUST_LOG` (default `info`). Each line carries the spans it is in:
//!   `http.request` (with the `request_id`), `graphql` (the caller),
//!   `graphql.operation`, `roster_loader.batch`, `sea_orm.*` (a statement).
//! - With the `otel` feature, the spans are also exported over OTLP
//!   (HTTP, protobuf bodies) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; see [`EXPORT_VARIABLES`].
//!   Without the feature, setting it only earns a warning at start.
//!
//! A test builds the same subscriber over a buffer of its own with
//! [`TelemetryConfig::build`].

#[cfg(feature = "otel")]
mod otel;

use std::io::IsTerminal;

use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::ServerError;

#[cfg(feature = "otel")]
pub(crate) use otel::continue_trace;

/// `RUST_LOG` when unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// The `service.name` of the exported spans unless `OTEL_SERVICE_NAME` (or
/// `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "roster-server";

/// The standard OpenTelemetry variables the export honours (with the `otel`
/// feature): the endpoint ones switch it on; the OpenTelemetry SDK reads
/// the others itself. The protocol is always HTTP with protobuf bodies.
pub const EXPORT_VARIABLES: [&str; 8] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// How log lines are written (`ROSTER_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines: time, level, the spans with their fields, the
    /// target, the message (`text`, the default).
    #[default]
    Text,
    /// One JSON object per line (`json`): `timestamp`, `level`, `target`,
    /// the event's fields (`message` among them) at the top level, and
    /// `spans`, the spans it is in from the outermost, each with its
    /// `name` and fields (so `spans[0].request_id` in a request).
    Json,
}

/// The logs' and traces' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// Text or JSON lines (`ROSTER_LOG_FORMAT`, default text).
    pub format: LogFormat,
    /// What is logged (and exported), in `EnvFilter` syntax (`RUST_LOG`,
    /// default [`DEFAULT_LOG_FILTER`]).
    pub filter: String,
    /// Colours in text lines ([`TelemetryConfig::from_env`]: when stdout is
    /// a terminal).
    pub ansi: bool,
    /// Where spans are sent (OTLP over HTTP), the full URL:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` followed by `/v1/traces`. `None`: no
    /// export. Used only with the `otel` feature.
    pub otlp_traces_endpoint: Option<String>,
    /// The `service.name` to give the spans; `None` leaves it to the
    /// OpenTelemetry SDK (`OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
    /// is set).
    pub service_name: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: DEFAULT_LOG_FILTER.to_owned(),
            ansi: false,
            otlp_traces_endpoint: None,
            service_name: Some(DEFAULT_SERVICE_NAME.to_owned()),
        }
    }
}

impl TelemetryConfig {
    /// Reads the settings from the environment; colours when stdout is a
    /// terminal.
    pub fn from_env() -> Result<Self, ServerError> {
        let mut config = Self::from_lookup(|name| std::env::var(name).ok())?;
        config.ansi = std::io::stdout().is_terminal();
        Ok(config)
    }

    /// Like [`TelemetryConfig::from_env`], reading each variable through
    /// `var` (`None`: unset), without colours.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ServerError> {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let format = match set("ROSTER_LOG_FORMAT") {
            None => LogFormat::Text,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ServerError::Config {
                        var: "ROSTER_LOG_FORMAT",
                        value,
                        expected: "text or json",
                        source: "unknown log format".into(),
                    });
                }
            },
        };
        let filter = set("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        let otlp_traces_endpoint = match set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(endpoint) => Some(endpoint.trim().to_owned()),
            None => set("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|base| format!("{}/v1/traces", base.trim().trim_end_matches('/'))),
        };
        let named_elsewhere = set("OTEL_SERVICE_NAME").is_some()
            || set("OTEL_RESOURCE_ATTRIBUTES")
                .is_some_and(|attributes| attributes.contains("service.name="));
        let service_name = (!named_elsewhere).then(|| DEFAULT_SERVICE_NAME.to_owned());
        Ok(Self {
            format,
            filter,
            ansi: false,
            otlp_traces_endpoint,
            service_name,
        })
    }

    /// The subscriber these settings describe, writing its lines to
    /// `writer`, and the handle of its trace export; install it with
    /// [`tracing::dispatcher::set_global_default`] (as [`init`] does) or,
    /// in a test, `tracing::dispatcher::set_default`.
    pub fn build<W>(&self, writer: W) -> Result<(Dispatch, Telemetry), ServerError>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let filter = EnvFilter::try_new(&self.filter).map_err(|e| ServerError::Config {
            var: "RUST_LOG",
            value: self.filter.clone(),
            expected: "a log filter such as info or info,roster_loader=debug",
            source: Box::new(e),
        })?;
        let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::with_capacity(2);
        layers.push(match self.format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_ansi(self.ansi)
                .with_writer(writer)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .with_writer(writer)
                .boxed(),
        });
        let telemetry = Telemetry {
            #[cfg(feature = "otel")]
            provider: match &self.otlp_traces_endpoint {
                None => None,
                Some(endpoint) => {
                    let provider = otel::provider(endpoint, self.service_name.as_deref())?;
                    layers.push(otel::layer(&provider));
                    Some(provider)
                }
            },
        };
        let subscriber = Registry::default().with(layers).with(filter);
        Ok((Dispatch::new(subscriber), telemetry))
    }
}

/// The trace export of an installed subscriber. Dropping it sends the spans
/// still queued (waiting up to the exporter's timeout) and stops the export:
/// keep it until the program ends.
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        #[cfg(feature = "otel")]
        let exporting = self.provider.is_some();
        #[cfg(not(feature = "otel"))]
        let exporting = false;
        exporting
    }

    /// Sends the finished spans still queued, and waits until they are
    /// sent (or failed). Blocks the thread: from async code, call it in
    /// `tokio::task::spawn_blocking`.
    pub fn flush(&self) -> Result<(), ServerError> {
        #[cfg(feature = "otel")]
        if let Some(provider) = &self.provider {
            provider.force_flush().map_err(|e| ServerError::Telemetry {
                step: "sending the queued spans",
                source: Box::new(e),
            })?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.exporting())
            .finish()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "stopping the trace export failed");
        }
    }
}

/// Installs the process's subscriber from the environment
/// ([`TelemetryConfig::from_env`]), writing to stdout; `log` records are
/// passed on too. Keep the returned [`Telemetry`] until the program ends.
///
/// ```no_run
/// # fn main() -> Result<(), roster_server::ServerError> {
/// let _telemetry = roster_server::telemetry::init()?;
/// tracing::info!("logged as text or JSON, exported with the otel feature");
/// # Ok(()) }
/// ```
pub fn init() -> Result<Telemetry, ServerError> {
    let config = TelemetryConfig::from_env()?;
    let (dispatch, telemetry) = config.build(std::io::stdout)?;
    dispatch.try_init().map_err(|e| ServerError::Telemetry {
        step: "installing the log subscriber",
        source: Box::new(e),
    })?;
    match &config.otlp_traces_endpoint {
        Some(endpoint) if telemetry.exporting() => {
            tracing::info!(endpoint = %endpoint, "exporting traces over OTLP");
        }
        Some(_) => tracing::warn!(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but this build cannot export traces: build \
             roster-server with the otel feature"
        ),
        None => {}
    }
    Ok(telemetry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<TelemetryConfig, ServerError> {
        TelemetryConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults() {
        let config = config(&[]).expect("valid");
        assert_eq!(config, TelemetryConfig::default());
        assert_eq!(config.format, LogFormat::Text);
        assert_eq!(config.filter, "info");
        assert_eq!(config.otlp_traces_endpoint, None);
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        let json = config(&[("ROSTER_LOG_FORMAT", " JSON ")]).expect("valid");
        assert_eq!(json.format, LogFormat::Json);
        match config(&[("ROSTER_LOG_FORMAT", "yaml")]) {
            Err(ServerError::Config { var, .. }) => assert_eq!(var, "ROSTER_LOG_FORMAT"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_filter_names_rust_log() {
        let config = config(&[("RUST_LOG", "roster=loud")]).expect("read");
        match config.build(std::io::sink) {
            Err(ServerError::Config { var, .. }) => assert_eq!(var, "RUST_LOG"),
            other => panic!("{:?}", other.map(|(_, telemetry)| telemetry)),
        }
    }

    #[test]
    fn the_traces_endpoint_follows_the_standard_variables() {
        let base =
            config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).expect("valid");
        assert_eq!(
            base.otlp_traces_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let traces = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/x"),
        ])
        .expect("valid");
        assert_eq!(
            traces.otlp_traces_endpoint.as_deref(),
            Some("http://traces:4318/x")
        );
        let named = config(&[("OTEL_SERVICE_NAME", "directory")]).expect("valid");
        assert_eq!(named.service_name, None);
        assert_eq!(base.service_name.as_deref(), Some(DEFAULT_SERVICE_NAME));
    }
}
