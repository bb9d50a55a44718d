//! `prometheus_query`: instant and range PromQL queries over the Prometheus
//! HTTP API, or over the bundle's `metrics.om` with the analysis crate's
//! PromQL evaluator.
//!
//! Both backends return a [`QueryResult`]; the tool turns it into series the
//! model reads: labels plus a value (instant) or points with min, max and
//! last (range). Range queries default to the incident window with a step
//! that gives about [`TARGET_POINTS`] points, so a series stays readable.

pub mod bundle;
pub mod http;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::tool::{ToolOutput, TypedTool};

pub use bundle::BundleMetrics;
pub use http::{PrometheusConfig, PrometheusHttp};

/// Points per series a default range query aims at.
pub const TARGET_POINTS: i64 = 60;
/// The smallest default step, in seconds (a common scrape interval).
pub const MIN_STEP_SECONDS: i64 = 15;
/// Series returned at most; more are counted, not shown.
pub const MAX_SERIES: usize = 50;

/// What a query returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// An instant vector: one value per series.
    Vector,
    /// A range result: points per series.
    Matrix,
    /// A single number.
    Scalar,
    /// A string.
    String,
}

impl ResultKind {
    /// The Prometheus API name (`resultType`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vector => "vector",
            Self::Matrix => "matrix",
            Self::Scalar => "scalar",
            Self::String => "string",
        }
    }
}

/// One series of a result; an instant vector has one sample per series.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    /// Labels, with `__name__` when the query kept it.
    pub labels: BTreeMap<String, String>,
    /// `(unix milliseconds, value)` in time order.
    pub samples: Vec<(i64, f64)>,
}

/// The answer to one query, the same shape from every backend.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// What kind of value came back.
    pub kind: ResultKind,
    /// Series, sorted by labels (scalars are one unlabelled series).
    pub series: Vec<MetricSeries>,
    /// The exact request that reproduces it.
    pub query: String,
    /// Notes from the backend (Prometheus `warnings`, absent data).
    pub warnings: Vec<String>,
}

/// A source of PromQL answers.
#[async_trait]
pub trait MetricsBackend: Send + Sync + 'static {
    /// Label of the source (`prometheus`, `bundle:metrics`).
    fn source(&self) -> &str;

    /// Evaluates `query` at `time` (`/api/v1/query`).
    ///
    /// # Errors
    /// [`ToolError::QueryRefused`] for a query that does not parse or is not
    /// supported, [`ToolError::Backend`] when the source fails.
    async fn instant(
        &self,
        ctx: &ToolContext,
        query: &str,
        time: DateTime<Utc>,
    ) -> Result<QueryResult, ToolError>;

    /// Evaluates `query` from `start` to `end` every `step_seconds`
    /// (`/api/v1/query_range`).
    ///
    /// # Errors
    /// As [`Self::instant`].
    async fn range(
        &self,
        ctx: &ToolContext,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step_seconds: f64,
    ) -> Result<QueryResult, ToolError>;
}

/// The `prometheus_query` tool.
pub struct PrometheusQueryTool {
    backend: Arc<dyn MetricsBackend>,
}

impl PrometheusQueryTool {
    /// The tool's name.
    pub const NAME: &'static str = "prometheus_query";

    /// The tool over `backend`.
    pub fn new(backend: impl MetricsBackend) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }
}

/// Arguments of `prometheus_query`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusQueryArgs {
    /// PromQL.
    pub query: String,
    /// `instant` (default) or `range`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Instant query time; default the end of the incident window.
    pub time: Option<DateTime<Utc>>,
    /// Range start; default the incident window start.
    pub start: Option<DateTime<Utc>>,
    /// Range end; default the incident window end.
    pub end: Option<DateTime<Utc>>,
    /// Range step in seconds; default about 60 points over the range.
    pub step_seconds: Option<f64>,
}

#[async_trait]
impl TypedTool for PrometheusQueryTool {
    type Args = PrometheusQueryArgs;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn description(&self) -> &str {
        "Run a PromQL query. type=instant (default) evaluates at `time` (default: end of the \
         incident window) and returns one value per series; type=range evaluates from `start` to \
         `end` (default: the incident window) every step_seconds (default: about 60 points) and \
         returns points per series with min, max and last. Use rate(counter[5m]) for counters, \
         e.g. sum by (service, code) (rate(http_requests_total[5m]))."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                "type": {"type": "string", "enum": ["instant", "range"], "default": "instant"},
                "time": {"type": "string", "format": "date-time"},
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "step_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400}
            },
            "required": ["query"],
            "additionalProperties": false
        })
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        args: PrometheusQueryArgs,
    ) -> Result<ToolOutput, ToolError> {
        let range = match args.kind.as_deref() {
            None | Some("instant") => false,
            Some("range") => true,
            Some(other) => {
                return Err(ToolError::bad_argument(
                    Self::NAME,
                    "/type",
                    format!("{other:?} is not instant or range"),
                ));
            }
        };
        let result = if range {
            let (start, end) = ctx.range(Self::NAME, args.start, args.end)?;
            let step = args
                .step_seconds
                .unwrap_or_else(|| default_step(start, end));
            let points = ((end - start).num_seconds() as f64 / step).floor() + 1.0;
            if points > 11_000.0 {
                return Err(ToolError::bad_argument(
                    Self::NAME,
                    "/step_seconds",
                    format!("{points} points per series is more than 11000; use a larger step"),
                ));
            }
            self.backend
                .range(ctx, &args.query, start, end, step)
                .await?
        } else {
            let time = args.time.unwrap_or(ctx.window.end());
            self.backend.instant(ctx, &args.query, time).await?
        };
        Ok(result_to_output(result, self.backend.source()))
    }
}

/// A step that gives about [`TARGET_POINTS`] points, at least [`MIN_STEP_SECONDS`].
#[must_use]
pub fn default_step(start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    let secs = (end - start).num_seconds().max(1);
    let step = (secs + TARGET_POINTS - 1) / TARGET_POINTS;
    step.max(MIN_STEP_SECONDS) as f64
}

fn time_str(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// A JSON number, or `null` for NaN and infinities (which JSON cannot hold).
fn num(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// The compact result of a query.
#[must_use]
pub fn result_to_output(result: QueryResult, source: &str) -> ToolOutput {
    let total = result.series.len();
    let mut non_finite = false;
    let series: Vec<Value> = result
        .series
        .iter()
        .take(MAX_SERIES)
        .map(|s| {
            non_finite |= s.samples.iter().any(|(_, v)| !v.is_finite());
            match result.kind {
                ResultKind::Matrix => {
                    let finite: Vec<f64> = s.samples.iter().map(|(_, v)| *v).filter(|v| v.is_finite()).collect();
                    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    json!({
                        "labels": s.labels,
                        "min": num(min),
                        "max": num(max),
                        "last": s.samples.last().map_or(Value::Null, |(_, v)| num(*v)),
                        "points": s.samples.iter().map(|(t, v)| json!([time_str(*t), num(*v)])).collect::<Vec<_>>(),
                    })
                }
                _ => json!({
                    "labels": s.labels,
                    "time": s.samples.first().map(|(t, _)| time_str(*t)),
                    "value": s.samples.first().map_or(Value::Null, |(_, v)| num(*v)),
                }),
            }
        })
        .collect();
    let content = json!({
        "result_type": result.kind.as_str(),
        "series_count": total,
        "series": series,
    });
    let mut out = ToolOutput::new(content, result.query, source);
    if total > MAX_SERIES {
        out = out.with_warning(format!(
            "{total} series matched; showing the first {MAX_SERIES} by labels: aggregate (sum by (...)) or filter"
        ));
    }
    if total == 0 {
        out = out.with_warning("the query matched no series at that time");
    }
    if non_finite {
        out = out.with_warning("null values are NaN or infinite");
    }
    for w in result.warnings {
        out = out.with_warning(w);
    }
    out
}
