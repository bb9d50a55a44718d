//! The offline backend: the bundle's `metrics.om`, parsed once, queried
//! with the analysis crate's PromQL evaluator (same selectors, `rate`
//! extrapolation and 5 minute lookback as Prometheus).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rootcause_analysis::metrics::promql::{Engine, Value as PromValue};
use rootcause_analysis::metrics::{Labels, MetricSet, QueryError, openmetrics};
use tokio::sync::OnceCell;

use super::{MetricSeries, MetricsBackend, QueryResult, ResultKind};
use crate::bundle::Bundle;
use crate::context::ToolContext;
use crate::error::ToolError;

const SOURCE: &str = "bundle:metrics";
const TOOL: &str = "prometheus_query";

/// PromQL over a bundle's `metrics.om` (parsed on first use).
pub struct BundleMetrics {
    bundle: Arc<Bundle>,
    /// `None` when the bundle has no `metrics.om`.
    set: OnceCell<Option<Arc<MetricSet>>>,
}

impl std::fmt::Debug for BundleMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleMetrics")
            .field("bundle", &self.bundle.dir())
            .finish_non_exhaustive()
    }
}

impl BundleMetrics {
    /// The metrics backend of `bundle`.
    #[must_use]
    pub fn new(bundle: Arc<Bundle>) -> Self {
        Self {
            bundle,
            set: OnceCell::new(),
        }
    }

    async fn set(&self, ctx: &ToolContext) -> Result<Option<Arc<MetricSet>>, ToolError> {
        ctx.check_tenant(TOOL, self.bundle.tenant())?;
        let path = self.bundle.path("metrics.om");
        self.set
            .get_or_try_init(|| async move {
                if !path.is_file() {
                    return Ok(None);
                }
                tokio::task::spawn_blocking(move || {
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| ToolError::io(&path, &e))?;
                    openmetrics::parse(&text)
                        .map(|s| Some(Arc::new(s)))
                        .map_err(|e| ToolError::Parse {
                            what: path.display().to_string(),
                            message: e.to_string(),
                        })
                })
                .await
                .map_err(|e| ToolError::backend(SOURCE, e.to_string(), false))?
            })
            .await
            .cloned()
    }
}

fn label_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn refused(e: &QueryError) -> ToolError {
    ToolError::QueryRefused {
        reason: format!("the bundle's PromQL evaluator cannot run this query: {e}"),
    }
}

fn no_data(query: String) -> QueryResult {
    QueryResult {
        kind: ResultKind::Vector,
        series: Vec::new(),
        query,
        warnings: vec!["the bundle has no metrics.om: no metric data".to_owned()],
    }
}

#[async_trait]
impl MetricsBackend for BundleMetrics {
    fn source(&self) -> &str {
        SOURCE
    }

    async fn instant(
        &self,
        ctx: &ToolContext,
        query: &str,
        time: DateTime<Utc>,
    ) -> Result<QueryResult, ToolError> {
        let shown = format!(
            "promql over metrics.om: {query} @ {}",
            time.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let Some(set) = self.set(ctx).await? else {
            return Ok(no_data(shown));
        };
        let q = query.to_owned();
        let t = time.timestamp_millis();
        let value = tokio::task::spawn_blocking(move || Engine::new(&set).instant_query(&q, t))
            .await
            .map_err(|e| ToolError::backend(SOURCE, e.to_string(), false))?
            .map_err(|e| refused(&e))?;
        let (kind, mut series) = match value {
            PromValue::Scalar(v) => (
                ResultKind::Scalar,
                vec![MetricSeries {
                    labels: BTreeMap::new(),
                    samples: vec![(t, v)],
                }],
            ),
            PromValue::Vector(v) => (
                ResultKind::Vector,
                v.into_iter()
                    .map(|e| MetricSeries {
                        labels: label_map(&e.labels),
                        samples: vec![(t, e.value)],
                    })
                    .collect(),
            ),
            PromValue::Matrix(m) => (
                ResultKind::Matrix,
                m.into_iter()
                    .map(|s| MetricSeries {
                        labels: label_map(&s.labels),
                        samples: s
                            .samples
                            .iter()
                            .map(|p| (p.timestamp_ms, p.value))
                            .collect(),
                    })
                    .collect(),
            ),
            PromValue::String(s) => (
                ResultKind::String,
                vec![MetricSeries {
                    labels: BTreeMap::from([("value".to_owned(), s)]),
                    samples: Vec::new(),
                }],
            ),
        };
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(QueryResult {
            kind,
            series,
            query: shown,
            warnings: Vec::new(),
        })
    }

    async fn range(
        &self,
        ctx: &ToolContext,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step_seconds: f64,
    ) -> Result<QueryResult, ToolError> {
        let shown = format!(
            "promql over metrics.om: {query} from {} to {} step {step_seconds}s",
            start.to_rfc3339_opts(SecondsFormat::Millis, true),
            end.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let Some(set) = self.set(ctx).await? else {
            return Ok(no_data(shown));
        };
        let q = query.to_owned();
        #[expect(clippy::cast_possible_truncation, reason = "steps are at most a day")]
        let step_ms = (step_seconds * 1000.0).round() as i64;
        let (s, e) = (start.timestamp_millis(), end.timestamp_millis());
        let result =
            tokio::task::spawn_blocking(move || Engine::new(&set).range_query(&q, s, e, step_ms))
                .await
                .map_err(|e| ToolError::backend(SOURCE, e.to_string(), false))?
                .map_err(|e| refused(&e))?;
        let mut series: Vec<MetricSeries> = result
            .into_iter()
            .map(|s| MetricSeries {
                labels: label_map(&s.labels),
                samples: s
                    .samples
                    .iter()
                    .map(|p| (p.timestamp_ms, p.value))
                    .collect(),
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(QueryResult {
            kind: ResultKind::Matrix,
            series,
            query: shown,
            warnings: Vec::new(),
        })
    }
}
