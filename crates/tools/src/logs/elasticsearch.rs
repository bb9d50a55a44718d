//! Elasticsearch 7/8 and OpenSearch `_search` backend.
//!
//! One request shape serves all three: a `bool` query whose filters are a
//! `range` on `@timestamp`, `term` on the service field, `terms` on the
//! level field (with its case variants) and, for free text, a
//! `simple_query_string` on `message` with AND semantics. Results are sorted
//! by `@timestamp` then `_doc`, and paging uses `search_after` with the sort
//! values of the last hit (the cursor), so deep pages cost the same as the
//! first. Shard failures inside a 200 make the answer partial, never silently
//! complete.

use std::time::Duration;

use async_trait::async_trait;
use chrono::SecondsFormat;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{LogBackend, LogPage, LogQuery, LogRecord, level_variants};
use crate::context::ToolContext;
use crate::error::{ToolError, body_excerpt, json_response};

const SOURCE: &str = "elasticsearch";
/// Documents per request when scanning for template summaries.
const SCAN_PAGE: usize = 1_000;
/// Counting stops here; past it the total is a lower bound.
const TRACK_TOTAL_HITS: u64 = 100_000;

/// How to authenticate to the cluster.
#[derive(Debug, Clone, Default)]
pub enum HttpAuth {
    /// No credentials (a local cluster, or a proxy that adds them).
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretString,
    },
    /// An Elasticsearch API key, the base64 `id:api_key` value Kibana shows
    /// as "encoded" (sent as `Authorization: ApiKey <value>`).
    ApiKey(SecretString),
    /// A bearer token (sent as `Authorization: Bearer <value>`).
    Bearer(SecretString),
}

impl HttpAuth {
    pub(crate) fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Self::None => req,
            Self::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose_secret()))
            }
            Self::ApiKey(key) => req.header(
                reqwest::header::AUTHORIZATION,
                format!("ApiKey {}", key.expose_secret()),
            ),
            Self::Bearer(token) => req.bearer_auth(token.expose_secret()),
        }
    }
}

/// Where and how to search. `Debug` shows the URL with any embedded
/// credential masked (the `auth` secrets are `SecretString`s).
#[derive(Clone)]
pub struct ElasticsearchConfig {
    /// Base URL of the cluster (`https://es.internal:9200`).
    pub url: url::Url,
    /// Index or pattern; `{tenant}` is replaced by the context's tenant
    /// (`logs-{tenant}-*`), which keeps tenants in separate indices.
    pub index: String,
    /// Credentials.
    pub auth: HttpAuth,
    /// Field holding the service name (a `keyword`).
    pub service_field: String,
    /// Field holding the level (a `keyword`).
    pub level_field: String,
    /// When set, a `term` filter on this field with the tenant is added to
    /// every query (for shared indices).
    pub tenant_field: Option<String>,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for ElasticsearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticsearchConfig")
            .field("url", &rootcause_redact::url(self.url.as_str()))
            .field("index", &self.index)
            .field("auth", &self.auth)
            .field("service_field", &self.service_field)
            .field("level_field", &self.level_field)
            .field("tenant_field", &self.tenant_field)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl ElasticsearchConfig {
    /// ECS defaults: `service.name`, `log.level`, 20 s requests, no auth.
    #[must_use]
    pub fn new(url: url::Url, index: impl Into<String>) -> Self {
        Self {
            url,
            index: index.into(),
            auth: HttpAuth::None,
            service_field: "service.name".to_owned(),
            level_field: "log.level".to_owned(),
            tenant_field: None,
            request_timeout: Duration::from_secs(20),
        }
    }
}

/// The live log backend.
#[derive(Debug, Clone)]
pub struct ElasticsearchLogs {
    config: ElasticsearchConfig,
    client: reqwest::Client,
}

impl ElasticsearchLogs {
    /// A backend for `config`.
    ///
    /// # Errors
    /// [`ToolError::Backend`] when the HTTP client cannot be built.
    pub fn new(config: ElasticsearchConfig) -> Result<Self, ToolError> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| {
                ToolError::backend(SOURCE, format!("building the HTTP client: {e}"), false)
            })?;
        Ok(Self { config, client })
    }

    fn index_for(&self, ctx: &ToolContext) -> String {
        self.config.index.replace("{tenant}", ctx.tenant.as_str())
    }

    /// The request body for a query; `search_after` is the cursor's sort values.
    #[must_use]
    pub fn request_body(
        &self,
        ctx: &ToolContext,
        q: &LogQuery,
        size: usize,
        search_after: Option<&Value>,
    ) -> Value {
        let mut filter = vec![json!({"range": {"@timestamp": {
            "gte": q.start.to_rfc3339_opts(SecondsFormat::Millis, true),
            "lt": q.end.to_rfc3339_opts(SecondsFormat::Millis, true),
            "format": "strict_date_optional_time"
        }}})];
        if let Some(service) = &q.service {
            filter.push(json!({"term": {self.config.service_field.as_str(): service}}));
        }
        if !q.levels.is_empty() {
            filter.push(
                json!({"terms": {self.config.level_field.as_str(): level_variants(&q.levels)}}),
            );
        }
        if let Some(field) = &self.config.tenant_field {
            filter.push(json!({"term": {field.as_str(): ctx.tenant.as_str()}}));
        }
        let mut bool_q = json!({"filter": filter});
        if let Some(text) = &q.text {
            bool_q["must"] = json!([{"simple_query_string": {
                "query": text,
                "fields": ["message"],
                "default_operator": "and"
            }}]);
        }
        let mut body = json!({
            "size": size,
            "track_total_hits": TRACK_TOTAL_HITS,
            "sort": [{"@timestamp": {"order": "asc"}}, {"_doc": {"order": "asc"}}],
            "query": {"bool": bool_q},
        });
        if let Some(after) = search_after {
            body["search_after"] = after.clone();
        }
        body
    }

    async fn post(&self, index: &str, body: &Value) -> Result<Value, ToolError> {
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
            .push(index)
            .push("_search");
        let req = self
            .config
            .auth
            .apply(self.client.post(url.clone()).json(body));
        let resp = req.send().await.map_err(|e| {
            ToolError::backend(
                SOURCE,
                format!("request to {url} failed: {e}; check the URL and that the cluster is up"),
                e.is_timeout() || e.is_connect(),
            )
        })?;
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // An error page that is not JSON still says what went wrong: its
        // text stands in for the cluster's reason.
        let (status, json) =
            json_response(resp, SOURCE, |text| json!({"error": {"reason": text}})).await?;
        if status.is_success() {
            if !json.is_object() {
                return Err(ToolError::Parse {
                    what: format!("response of {}", rootcause_redact::url(url.as_str())),
                    message: format!(
                        "expected a JSON object, got {}",
                        body_excerpt(&json.to_string())
                    ),
                });
            }
            return Ok(json);
        }
        Err(classify_error(status, &json, index, retry_after.as_deref()))
    }
}

/// Turns an error response into a [`ToolError`] that says what to do.
fn classify_error(
    status: StatusCode,
    body: &Value,
    index: &str,
    retry_after: Option<&str>,
) -> ToolError {
    let err_type = body["error"]["type"].as_str().unwrap_or("");
    let reason = body["error"]["root_cause"][0]["reason"]
        .as_str()
        .or_else(|| body["error"]["reason"].as_str())
        .map_or_else(|| body.to_string(), str::to_owned);
    match status {
        StatusCode::NOT_FOUND if err_type == "index_not_found_exception" => ToolError::NotFound {
            what: "index".to_owned(),
            value: format!("{index} ({reason}); check the configured index pattern"),
        },
        StatusCode::TOO_MANY_REQUESTS => ToolError::backend(
            SOURCE,
            format!(
                "rejected with 429 ({err_type}: {reason}); the cluster is overloaded, retry {}",
                retry_after.map_or_else(|| "later".to_owned(), |s| format!("after {s}s"))
            ),
            true,
        ),
        StatusCode::BAD_REQUEST => ToolError::QueryRefused {
            reason: format!("{err_type}: {reason}"),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ToolError::backend(
            SOURCE,
            format!(
                "{status} ({err_type}: {reason}); check the configured credentials and index privileges"
            ),
            false,
        ),
        s => ToolError::backend(
            SOURCE,
            format!("{s} ({err_type}: {reason})"),
            s.is_server_error(),
        ),
    }
}

/// Hits, totals and shard failures of one response.
struct Parsed {
    total: u64,
    lower_bound: bool,
    hits: Vec<(LogRecord, Value)>,
    unparsed: usize,
    partial: Vec<String>,
}

fn parse_response(resp: &Value) -> Result<Parsed, ToolError> {
    let hits_obj = resp.get("hits").ok_or_else(|| ToolError::Parse {
        what: "search response".to_owned(),
        message: "no `hits` object".to_owned(),
    })?;
    // ES 7+/OpenSearch: {"value": n, "relation": "eq"|"gte"}; ES 6: a number.
    let (total, lower_bound) = match &hits_obj["total"] {
        Value::Number(n) => (n.as_u64().unwrap_or(0), false),
        t => (
            t["value"].as_u64().unwrap_or(0),
            t["relation"].as_str() == Some("gte"),
        ),
    };
    let mut hits = Vec::new();
    let mut unparsed = 0;
    for h in hits_obj["hits"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match LogRecord::from_ecs(&h["_source"]) {
            Some(r) => hits.push((r, h["sort"].clone())),
            None => unparsed += 1,
        }
    }
    let mut partial = Vec::new();
    let shards = &resp["_shards"];
    if let Some(failed) = shards["failed"].as_u64().filter(|n| *n > 0) {
        let reasons: Vec<String> = shards["failures"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|f| {
                format!(
                    "index {} shard {}: {}",
                    f["index"].as_str().unwrap_or("?"),
                    f["shard"],
                    f["reason"]["reason"].as_str().unwrap_or("unknown reason")
                )
            })
            .collect();
        partial.push(format!(
            "{failed} of {} shards failed, results are incomplete: {}",
            shards["total"],
            reasons.join("; ")
        ));
    }
    if resp["timed_out"].as_bool() == Some(true) {
        partial.push("the search timed out on the cluster; results are incomplete".to_owned());
    }
    Ok(Parsed {
        total,
        lower_bound,
        hits,
        unparsed,
        partial,
    })
}

#[async_trait]
impl LogBackend for ElasticsearchLogs {
    async fn search(&self, ctx: &ToolContext, q: &LogQuery) -> Result<LogPage, ToolError> {
        let index = self.index_for(ctx);
        let after: Option<Value> = match &q.cursor {
            None => None,
            Some(c) => Some(
                serde_json::from_str::<Value>(c)
                    .ok()
                    .filter(Value::is_array)
                    .ok_or_else(|| {
                        ToolError::bad_argument(
                            "elasticsearch_search",
                            "/cursor",
                            format!("{c:?} is not a cursor returned by this tool"),
                        )
                    })?,
            ),
        };
        let body = self.request_body(ctx, q, q.limit, after.as_ref());
        let query = format!("POST /{index}/_search\n{body}");
        let resp = self.post(&index, &body).await?;
        let parsed = parse_response(&resp)?;
        let mut page = LogPage {
            total: parsed.total,
            total_is_lower_bound: parsed.lower_bound,
            query,
            source: SOURCE.to_owned(),
            partial: parsed.partial,
            ..LogPage::default()
        };
        if parsed.unparsed > 0 {
            page.warnings.push(format!(
                "{} hits lacked @timestamp, service.name or message and were skipped",
                parsed.unparsed
            ));
        }
        let mut last_sort = parsed.hits.last().map(|(_, s)| s.clone());
        let got = parsed.hits.len() + parsed.unparsed;
        page.records = parsed.hits.into_iter().map(|(r, _)| r).collect();
        let more = got == q.limit && (page.total > q.limit as u64 || page.total_is_lower_bound);
        if more {
            page.next_cursor = last_sort.as_ref().map(Value::to_string);
        }
        if page.total == 0 {
            page.warnings.push(format!(
                "no log records in {index} match between {} and {}",
                q.start, q.end
            ));
        }

        // More matched than shown: scan further pages for template summaries.
        if more && q.summary_sample > 0 && q.cursor.is_none() {
            page.sample = page.records.clone();
            let mut sample_complete = false;
            while page.sample.len() < q.summary_sample {
                let Some(after) = last_sort.take() else { break };
                let size = SCAN_PAGE.min(q.summary_sample - page.sample.len());
                let body = self.request_body(ctx, q, size, Some(&after));
                let resp = self.post(&index, &body).await?;
                let parsed = parse_response(&resp)?;
                page.partial.extend(parsed.partial);
                let n = parsed.hits.len() + parsed.unparsed;
                last_sort = parsed.hits.last().map(|(_, s)| s.clone());
                page.sample.extend(parsed.hits.into_iter().map(|(r, _)| r));
                if n < size {
                    sample_complete = true;
                    break;
                }
            }
            page.sample_is_complete = sample_complete;
            page.partial.dedup();
        }
        Ok(page)
    }
}
