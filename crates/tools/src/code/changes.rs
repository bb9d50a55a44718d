//! `deploy_history`: deploys, config changes, flag flips, scaling and infra
//! changes, from the bundle's `changes.jsonl` or a configured source.
//!
//! Sources: [`ChangesFile`] (any file in the `changes.jsonl` format) and
//! [`ChangesHttp`] (an internal deploy API that returns the same records as
//! a JSON array for `?since=..&until=..`). Both are behind [`ChangeSource`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rootcause_diagnosis::TenantId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::bundle::read_jsonl;
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::logs::HttpAuth;
use crate::tool::{ToolOutput, TypedTool};

/// Default look-back before the incident window.
pub const DEFAULT_LOOKBACK_HOURS: i64 = 24;

/// One change, as in `changes.jsonl`: the analysis crate's record, so
/// what this tool returns is what the change ranking weighs.
pub use rootcause_analysis::changes::ChangeRecord;

/// Reads change records from JSON values (lines of `changes.jsonl`, items of
/// a deploy API's array), counting those that are not change records; the
/// one reader of the format, shared by the sources here and the CLI.
#[must_use]
pub fn change_records(values: Vec<Value>) -> (Vec<ChangeRecord>, usize) {
    let mut skipped = 0;
    let mut changes = Vec::new();
    for v in values {
        match serde_json::from_value::<ChangeRecord>(v) {
            Ok(c) => changes.push(c),
            Err(_) => skipped += 1,
        }
    }
    (changes, skipped)
}

/// What the source returned, with lines it could not read.
#[derive(Debug, Clone, Default)]
pub struct ChangeBatch {
    /// Changes in the range, any order.
    pub changes: Vec<ChangeRecord>,
    /// Records skipped as unreadable.
    pub skipped: usize,
    /// The source's query (a file path or URL).
    pub query: String,
    /// Whether the source exists at all (a bundle without `changes.jsonl`).
    pub present: bool,
}

/// A source of changes.
#[async_trait]
pub trait ChangeSource: Send + Sync + 'static {
    /// Label of the source (`bundle:changes`, `deploy-api`).
    fn source(&self) -> &str;
    /// Changes with `start <= ts < end`.
    ///
    /// # Errors
    /// [`ToolError`] when the source fails.
    async fn changes(
        &self,
        ctx: &ToolContext,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ChangeBatch, ToolError>;
}

/// Changes from a JSON-lines file owned by one tenant.
#[derive(Debug, Clone)]
pub struct ChangesFile {
    path: PathBuf,
    tenant: TenantId,
}

impl ChangesFile {
    /// The file at `path` (absent means "no changes recorded").
    #[must_use]
    pub fn new(path: impl Into<PathBuf>, tenant: TenantId) -> Self {
        Self {
            path: path.into(),
            tenant,
        }
    }
}

#[async_trait]
impl ChangeSource for ChangesFile {
    fn source(&self) -> &str {
        "bundle:changes"
    }
    async fn changes(
        &self,
        ctx: &ToolContext,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ChangeBatch, ToolError> {
        ctx.check_tenant(DeployHistoryTool::NAME, &self.tenant)?;
        if !self.path.is_file() {
            return Ok(ChangeBatch {
                query: self.path.display().to_string(),
                ..ChangeBatch::default()
            });
        }
        let path = self.path.clone();
        let (values, bad) = tokio::task::spawn_blocking(move || read_jsonl(&path))
            .await
            .map_err(|e| ToolError::backend("bundle:changes", e.to_string(), false))??;
        let (mut changes, skipped) = change_records(values);
        let skipped = skipped + bad;
        changes.retain(|c| c.ts >= start && c.ts < end);
        Ok(ChangeBatch {
            changes,
            skipped,
            query: self.path.display().to_string(),
            present: true,
        })
    }
}

/// Changes from an HTTP API: `GET <url>?since=<rfc3339>&until=<rfc3339>`
/// (plus `tenant=<tenant>`) returning a JSON array of change records.
#[derive(Debug, Clone)]
pub struct ChangesHttp {
    url: url::Url,
    auth: HttpAuth,
    client: reqwest::Client,
}

impl ChangesHttp {
    /// A source at `url`.
    ///
    /// # Errors
    /// [`ToolError::Backend`] when the HTTP client cannot be built.
    pub fn new(url: url::Url, auth: HttpAuth) -> Result<Self, ToolError> {
        let client = reqwest::Client::builder()
            .timeout(StdDuration::from_secs(15))
            .build()
            .map_err(|e| ToolError::backend("deploy-api", e.to_string(), false))?;
        Ok(Self { url, auth, client })
    }
}

#[async_trait]
impl ChangeSource for ChangesHttp {
    fn source(&self) -> &str {
        "deploy-api"
    }
    async fn changes(
        &self,
        ctx: &ToolContext,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ChangeBatch, ToolError> {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("since", &start.to_rfc3339_opts(SecondsFormat::Secs, true))
            .append_pair("until", &end.to_rfc3339_opts(SecondsFormat::Secs, true))
            .append_pair("tenant", ctx.tenant.as_str());
        let resp = self
            .auth
            .apply(self.client.get(url.clone()))
            .send()
            .await
            .map_err(|e| ToolError::backend("deploy-api", format!("GET {url}: {e}"), true))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ToolError::backend(
                "deploy-api",
                format!("GET {url} answered {status}"),
                status.is_server_error() || status.as_u16() == 429,
            ));
        }
        let values: Vec<Value> = resp.json().await.map_err(|e| ToolError::Parse {
            what: format!("response of {}", rootcause_redact::url(url.as_str())),
            message: format!("{e}; expected a JSON array of change records"),
        })?;
        let (mut changes, skipped) = change_records(values);
        // The API may ignore the range; filter anyway.
        changes.retain(|c| c.ts >= start && c.ts < end);
        Ok(ChangeBatch {
            changes,
            skipped,
            query: format!("GET {}", rootcause_redact::url(url.as_str())),
            present: true,
        })
    }
}

/// The `deploy_history` tool.
pub struct DeployHistoryTool {
    source: Arc<dyn ChangeSource>,
}

impl DeployHistoryTool {
    /// The tool's name.
    pub const NAME: &'static str = "deploy_history";
    /// The tool over `source`.
    pub fn new(source: impl ChangeSource) -> Self {
        Self {
            source: Arc::new(source),
        }
    }
}

/// Arguments of `deploy_history`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployHistoryArgs {
    /// Only this service.
    pub service: Option<String>,
    /// Only these kinds.
    pub kinds: Option<Vec<String>>,
    /// Range start; default 24 hours before the incident window.
    pub start: Option<DateTime<Utc>>,
    /// Range end; default the end of the incident window.
    pub end: Option<DateTime<Utc>>,
    /// Changes to return, newest first.
    pub limit: Option<usize>,
}

#[async_trait]
impl TypedTool for DeployHistoryTool {
    type Args = DeployHistoryArgs;
    fn name(&self) -> &str {
        Self::NAME
    }
    fn description(&self) -> &str {
        "List deploys, config changes, feature-flag flips, scaling and infra changes (newest \
         first) with service, version, commit and description, and how long before the incident \
         window each happened. Default range: 24 hours before the window to its end."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "service": {"type": "string", "minLength": 1},
                "kinds": {"type": "array", "items": {"enum": ["deploy", "config", "flag", "scale", "infra"]}, "uniqueItems": true},
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
            },
            "additionalProperties": false
        })
    }
    async fn run(
        &self,
        ctx: &ToolContext,
        args: DeployHistoryArgs,
    ) -> Result<ToolOutput, ToolError> {
        let (start, end) = ctx.range_with_lookback(
            Self::NAME,
            args.start,
            args.end,
            Duration::hours(DEFAULT_LOOKBACK_HOURS),
        )?;
        let batch = self.source.changes(ctx, start, end).await?;
        let mut changes: Vec<ChangeRecord> = batch
            .changes
            .into_iter()
            .filter(|c| args.service.as_ref().is_none_or(|s| s == &c.service))
            .filter(|c| args.kinds.as_ref().is_none_or(|k| k.contains(&c.kind)))
            .collect();
        changes.sort_by_key(|c| std::cmp::Reverse(c.ts));
        let matched = changes.len();
        let limit = args.limit.unwrap_or(50).clamp(1, 200);
        let window_start = ctx.window.start();
        let items: Vec<Value> = changes
            .iter()
            .take(limit)
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                let minutes = (window_start - c.ts).num_minutes();
                v["minutes_before_window"] = json!(minutes);
                v
            })
            .collect();
        let mut query = format!(
            "{}: changes with {} <= ts < {}",
            batch.query,
            start.to_rfc3339_opts(SecondsFormat::Secs, true),
            end.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        if let Some(s) = &args.service {
            query.push_str(&format!(" and service == {s:?}"));
        }
        if let Some(k) = &args.kinds {
            query.push_str(&format!(" and kind in {k:?}"));
        }
        let mut out = ToolOutput::new(
            json!({"matched": matched, "returned": items.len(), "changes": items}),
            query,
            self.source.source(),
        );
        if !batch.present {
            out = out.with_warning("no change log is configured or present: no change data");
        } else if matched == 0 {
            out = out.with_warning("no changes recorded in the range");
        }
        if batch.skipped > 0 {
            out = out.partial(format!("{} change records did not parse", batch.skipped));
        }
        Ok(out)
    }
}
