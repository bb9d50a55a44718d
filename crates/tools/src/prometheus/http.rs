//! The live backend: the Prometheus HTTP API (`/api/v1/query`,
//! `/api/v1/query_range`), also spoken by Thanos, Mimir, Cortex and
//! VictoriaMetrics.
//!
//! Multi-tenant stores take the tenant in a header (`X-Scope-OrgID`); set
//! [`PrometheusConfig::tenant_header`] and every request carries the
//! context's tenant.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{MetricSeries, MetricsBackend, QueryResult, ResultKind};
use crate::context::ToolContext;
use crate::error::{ToolError, json_response};
use crate::logs::HttpAuth;

const SOURCE: &str = "prometheus";

/// Where Prometheus is. `Debug` shows the URL with any embedded credential
/// masked.
#[derive(Clone)]
pub struct PrometheusConfig {
    /// Base URL (`http://prometheus:9090`, or a path prefix such as
    /// `https://mimir/prometheus`).
    pub url: url::Url,
    /// Credentials.
    pub auth: HttpAuth,
    /// Header carrying the tenant (`X-Scope-OrgID`), for multi-tenant stores.
    pub tenant_header: Option<String>,
    /// Per-request timeout (also sent as the query `timeout` parameter).
    pub request_timeout: Duration,
}

impl std::fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusConfig")
            .field("url", &rootcause_redact::url(self.url.as_str()))
            .field("auth", &self.auth)
            .field("tenant_header", &self.tenant_header)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl PrometheusConfig {
    /// No auth, no tenant header, 20 s requests.
    #[must_use]
    pub fn new(url: url::Url) -> Self {
        Self {
            url,
            auth: HttpAuth::None,
            tenant_header: None,
            request_timeout: Duration::from_secs(20),
        }
    }
}

/// The live metrics backend.
#[derive(Debug, Clone)]
pub struct PrometheusHttp {
    config: PrometheusConfig,
    client: reqwest::Client,
}

/// Unix seconds with millisecond precision, as the API takes them.
fn unix(t: DateTime<Utc>) -> String {
    let ms = t.timestamp_millis();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn parse_value(v: &Value) -> Option<f64> {
    let s = v.as_str()?;
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// `[1435781451.781, "1"]` as `(ms, value)`.
fn parse_pair(v: &Value) -> Option<(i64, f64)> {
    let t = v.get(0)?.as_f64()?;
    #[expect(clippy::cast_possible_truncation, reason = "unix ms fits i64")]
    let ms = (t * 1000.0).round() as i64;
    Some((ms, parse_value(v.get(1)?)?))
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses the `data` of a successful response.
///
/// # Errors
/// [`ToolError::Parse`] when the shape is not the documented one.
pub fn parse_data(body: &Value) -> Result<(ResultKind, Vec<MetricSeries>), ToolError> {
    let bad = |m: &str| ToolError::Parse {
        what: "prometheus response".to_owned(),
        message: m.to_owned(),
    };
    let data = body.get("data").ok_or_else(|| bad("no `data`"))?;
    let result = &data["result"];
    let kind = match data["resultType"].as_str() {
        Some("vector") => ResultKind::Vector,
        Some("matrix") => ResultKind::Matrix,
        Some("scalar") => ResultKind::Scalar,
        Some("string") => ResultKind::String,
        other => return Err(bad(&format!("unknown resultType {other:?}"))),
    };
    let mut series = match kind {
        ResultKind::Vector => result
            .as_array()
            .ok_or_else(|| bad("vector result is not an array"))?
            .iter()
            .map(|e| {
                Ok(MetricSeries {
                    labels: labels(&e["metric"]),
                    samples: vec![parse_pair(&e["value"]).ok_or_else(|| bad("bad vector sample"))?],
                })
            })
            .collect::<Result<Vec<_>, ToolError>>()?,
        ResultKind::Matrix => result
            .as_array()
            .ok_or_else(|| bad("matrix result is not an array"))?
            .iter()
            .map(|e| {
                let samples = e["values"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|p| parse_pair(p).ok_or_else(|| bad("bad matrix sample")))
                    .collect::<Result<Vec<_>, ToolError>>()?;
                Ok(MetricSeries {
                    labels: labels(&e["metric"]),
                    samples,
                })
            })
            .collect::<Result<Vec<_>, ToolError>>()?,
        ResultKind::Scalar => vec![MetricSeries {
            labels: BTreeMap::new(),
            samples: vec![parse_pair(result).ok_or_else(|| bad("bad scalar"))?],
        }],
        ResultKind::String => vec![MetricSeries {
            labels: BTreeMap::from([(
                "value".to_owned(),
                result
                    .get(1)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )]),
            samples: Vec::new(),
        }],
    };
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok((kind, series))
}

impl PrometheusHttp {
    /// A backend for `config`.
    ///
    /// # Errors
    /// [`ToolError::Backend`] when the HTTP client cannot be built.
    pub fn new(config: PrometheusConfig) -> Result<Self, ToolError> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| {
                ToolError::backend(SOURCE, format!("building the HTTP client: {e}"), false)
            })?;
        Ok(Self { config, client })
    }

    async fn get(
        &self,
        ctx: &ToolContext,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<QueryResult, ToolError> {
        let mut url = self.config.url.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ToolError::backend(
                    SOURCE,
                    format!(
                        "{} cannot be a base URL",
                        rootcause_redact::url(self.config.url.as_str())
                    ),
                    false,
                )
            })?
            .pop_if_empty()
            .extend(["api", "v1", endpoint]);
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let mut req = self.config.auth.apply(self.client.get(url.clone()));
        if let Some(h) = &self.config.tenant_header {
            req = req.header(h.as_str(), ctx.tenant.as_str());
        }
        let resp = req.send().await.map_err(|e| {
            ToolError::backend(
                SOURCE,
                format!("request to {url} failed: {e}; check the URL and that Prometheus is up"),
                e.is_timeout() || e.is_connect(),
            )
        })?;
        // An error page that is not JSON still says what went wrong: its
        // text stands in for Prometheus' error.
        let (status, body) = json_response(resp, SOURCE, |text| json!({"error": text})).await?;
        let query = format!("GET {}?{}", url.path(), url.query().unwrap_or_default());
        if body["status"].as_str() == Some("success") {
            let (kind, series) = parse_data(&body)?;
            let warnings = body["warnings"]
                .as_array()
                .map(|w| {
                    w.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            return Ok(QueryResult {
                kind,
                series,
                query,
                warnings,
            });
        }
        let error_type = body["errorType"].as_str().unwrap_or("");
        let error = body["error"].as_str().unwrap_or("no error message");
        Err(match (status.as_u16(), error_type) {
            (400 | 422, _) | (_, "bad_data") => ToolError::QueryRefused {
                reason: format!("Prometheus rejected the query ({error_type}): {error}"),
            },
            (429, _) | (503, _) | (_, "timeout") | (_, "canceled") => ToolError::backend(
                SOURCE,
                format!("{status} {error_type}: {error}; retry later or narrow the query"),
                true,
            ),
            _ => ToolError::backend(
                SOURCE,
                format!("{status} {error_type}: {error}"),
                status.is_server_error(),
            ),
        })
    }
}

#[async_trait]
impl MetricsBackend for PrometheusHttp {
    fn source(&self) -> &str {
        SOURCE
    }

    async fn instant(
        &self,
        ctx: &ToolContext,
        query: &str,
        time: DateTime<Utc>,
    ) -> Result<QueryResult, ToolError> {
        self.get(
            ctx,
            "query",
            &[
                ("query", query.to_owned()),
                ("time", unix(time)),
                (
                    "timeout",
                    format!("{}s", self.config.request_timeout.as_secs().max(1)),
                ),
            ],
        )
        .await
    }

    async fn range(
        &self,
        ctx: &ToolContext,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step_seconds: f64,
    ) -> Result<QueryResult, ToolError> {
        self.get(
            ctx,
            "query_range",
            &[
                ("query", query.to_owned()),
                ("start", unix(start)),
                ("end", unix(end)),
                ("step", format!("{step_seconds}")),
                (
                    "timeout",
                    format!("{}s", self.config.request_timeout.as_secs().max(1)),
                ),
            ],
        )
        .await
    }
}
