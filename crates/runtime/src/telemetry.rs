//! Logs, traces and metrics.
//!
//! - [`subscriber`] builds the `tracing` subscriber (JSON or pretty lines to
//!   a writer, plus an OpenTelemetry layer when an OTLP endpoint is set);
//!   [`init`] installs it process-wide, once.
//! - Traces leave over OTLP/HTTP (protobuf) through a batch exporter, with the
//!   W3C trace-context propagator installed so envelopes can carry
//!   `traceparent` across services.
//! - [`metrics`] installs the Prometheus recorder once and hands out the
//!   handle that renders `/metrics`.
//!
//! Tests pass `std::io::sink` as the writer unless `TEST_LOG` is set, so a
//! failing test can be rerun with its logs.

use std::sync::{Mutex, PoisonError};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

use crate::error::TelemetryError;
use crate::settings::{LogFormat, TelemetrySettings};

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] (or drop) flushes
/// the spans still buffered, so the last request before a SIGTERM is not lost.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported (an OTLP endpoint is configured).
    #[must_use]
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// The tracer provider, when exporting (tests flush through it).
    #[must_use]
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Flushes and stops the exporter. Errors are logged, not returned: a
    /// collector that is down must not turn a clean stop into a failure.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "flushing traces at shutdown failed");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds the subscriber for `service` writing lines to `sink`, and the
/// trace provider behind its OpenTelemetry layer when exporting.
///
/// # Errors
/// [`TelemetryError::Filter`] for an unparsable filter,
/// [`TelemetryError::Exporter`] when the OTLP exporter cannot be built.
pub fn subscriber<W>(
    service: &str,
    settings: &TelemetrySettings,
    sink: W,
) -> Result<(impl Subscriber + Send + Sync + 'static, Telemetry), TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| TelemetryError::Filter {
        filter: settings.filter.clone(),
        message: e.to_string(),
    })?;
    let fmt_layer = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(sink)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .pretty()
            .with_writer(sink)
            .boxed(),
    };
    let provider = match settings.otlp_endpoint() {
        Some(endpoint) => Some(tracer_provider(service, endpoint, settings.sample_ratio)?),
        None => None,
    };
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service.to_owned()))
            .boxed()
    });
    let subscriber = Registry::default()
        .with(fmt_layer)
        .with(otel_layer)
        .with(filter);
    Ok((subscriber, Telemetry { provider }))
}

/// Builds the subscriber writing to stdout and installs it (and the trace
/// propagator) for the whole process. Call once, in `main`.
///
/// # Errors
/// As [`subscriber`], and [`TelemetryError::AlreadyInstalled`] on a second call.
pub fn init(service: &str, settings: &TelemetrySettings) -> Result<Telemetry, TelemetryError> {
    let (subscriber, telemetry) = subscriber(service, settings, std::io::stdout)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    if let Some(provider) = &telemetry.provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    tracing::info!(
        service,
        log_format = ?settings.log_format,
        filter = %settings.filter,
        otlp_endpoint = settings.otlp_endpoint().unwrap_or("off"),
        "telemetry installed"
    );
    Ok(telemetry)
}

/// The OTLP/HTTP URL for traces: the configured base URL plus `/v1/traces`
/// (as the OTLP spec does for `OTEL_EXPORTER_OTLP_ENDPOINT`), unless the
/// operator already gave the full path.
#[must_use]
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

fn tracer_provider(
    service: &str,
    endpoint: &str,
    ratio: f64,
) -> Result<SdkTracerProvider, TelemetryError> {
    let url = traces_url(endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: url,
            message: e.to_string(),
        })?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build())
}

/// The process's Prometheus handle; the first call installs the recorder.
/// Later calls return the same handle, so tests that build several servers
/// in one process share one registry instead of failing.
///
/// # Errors
/// [`TelemetryError::Metrics`] when another recorder was installed by
/// something else first.
pub fn metrics() -> Result<PrometheusHandle, TelemetryError> {
    // A std mutex: nothing awaits while it is held, and it makes
    // check-then-install atomic.
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?;
    describe_metrics();
    *slot = Some(handle.clone());
    Ok(handle)
}

/// Metric names declared by this crate, described once with their unit.
pub mod names {
    /// Counter: HTTP requests answered, by `method`, `route` (the route
    /// pattern, never the raw path) and `status`.
    pub const HTTP_REQUESTS: &str = "rootcause_http_requests_total";
    /// Histogram: HTTP request duration by `method` and `route`.
    pub const HTTP_DURATION: &str = "rootcause_http_request_duration_seconds";
    /// Histogram: dependency check duration by `dependency`.
    pub const HEALTH_CHECK_DURATION: &str = "rootcause_health_check_duration_seconds";
    /// Gauge: 1 when the last check of `dependency` passed, else 0.
    pub const HEALTH_DEPENDENCY_UP: &str = "rootcause_health_dependency_up";
    /// Gauge: always 1, labelled with `service` and `version`.
    pub const BUILD_INFO: &str = "rootcause_build_info";
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::HTTP_REQUESTS, Unit::Count, "HTTP requests answered");
    describe_histogram!(names::HTTP_DURATION, Unit::Seconds, "HTTP request duration");
    describe_histogram!(
        names::HEALTH_CHECK_DURATION,
        Unit::Seconds,
        "Duration of one readiness dependency check"
    );
    describe_gauge!(
        names::HEALTH_DEPENDENCY_UP,
        "1 when the dependency's last readiness check passed"
    );
    describe_gauge!(names::BUILD_INFO, "Service name and version");
}

/// Whether tests should print logs (`TEST_LOG` set), for [`test_writer`].
#[must_use]
pub fn test_log_enabled() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}

/// The writer tests use: stdout when `TEST_LOG` is set, else a sink.
#[must_use]
pub fn test_writer() -> tracing_subscriber::fmt::writer::BoxMakeWriter {
    if test_log_enabled() {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::sink)
    }
}
