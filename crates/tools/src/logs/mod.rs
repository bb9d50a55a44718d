//! `elasticsearch_search`: log search by service, level, time range and free
//! text, over Elasticsearch/OpenSearch or the bundle's `logs/*.jsonl`.
//!
//! Both backends answer the same [`LogQuery`] with the same [`LogPage`]; the
//! tool turns a page into the compact result the model reads: the first
//! records (oldest first, messages cut to a few hundred characters), a cursor
//! for the next page, and, when more records matched than are shown,
//! template summaries mined from up to [`SUMMARY_SAMPLE`] matching records
//! with the log analyzer, so the model sees the shape of ten thousand lines
//! instead of the first fifty.

pub mod bundle;
pub mod elasticsearch;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::tool::{ToolOutput, TypedTool};

pub use bundle::BundleLogs;
pub use elasticsearch::{ElasticsearchConfig, ElasticsearchLogs, HttpAuth};

/// How many matching records at most are scanned for template summaries.
pub const SUMMARY_SAMPLE: usize = 5_000;
/// Messages are cut to this many characters in records shown to the model.
pub const MESSAGE_CHARS: usize = 400;

/// A log search, after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// `service.name` to match exactly.
    pub service: Option<String>,
    /// Levels to keep (case-insensitive); empty keeps all.
    pub levels: Vec<String>,
    /// Range start (inclusive).
    pub start: DateTime<Utc>,
    /// Range end (exclusive).
    pub end: DateTime<Utc>,
    /// Free text: every word must appear in the message (case-insensitive).
    pub text: Option<String>,
    /// Records to return.
    pub limit: usize,
    /// Where the previous page ended (the `next_cursor` it returned).
    pub cursor: Option<String>,
    /// Matching records to scan for template summaries when more matched
    /// than `limit` (0 = no summaries).
    pub summary_sample: usize,
}

/// One log record, with the ECS fields agents use.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// `@timestamp`.
    pub timestamp: DateTime<Utc>,
    /// `service.name`.
    pub service: String,
    /// `log.level`.
    pub level: Option<String>,
    /// `host.name`.
    pub host: Option<String>,
    /// `trace.id`.
    pub trace_id: Option<String>,
    /// `message`, complete.
    pub message: String,
}

impl LogRecord {
    /// Reads a record from an ECS document, flattened (`"service.name"`) or
    /// nested (`{"service": {"name": ..}}`). `None` without the required
    /// `@timestamp`, `service.name` and `message`.
    #[must_use]
    pub fn from_ecs(doc: &Value) -> Option<Self> {
        let timestamp = ecs_str(doc, "@timestamp")
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())?
            .with_timezone(&Utc);
        Some(Self {
            timestamp,
            service: ecs_str(doc, "service.name")?.to_owned(),
            level: ecs_str(doc, "log.level").map(str::to_owned),
            host: ecs_str(doc, "host.name").map(str::to_owned),
            trace_id: ecs_str(doc, "trace.id").map(str::to_owned),
            message: ecs_str(doc, "message")?.to_owned(),
        })
    }

    /// The record as the model sees it, with the message cut.
    #[must_use]
    pub fn to_compact_json(&self) -> Value {
        let mut v = json!({
            "@timestamp": self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            "service": self.service,
            "message": cut_chars(&self.message, MESSAGE_CHARS),
        });
        if let Some(level) = &self.level {
            v["level"] = json!(level);
        }
        if let Some(host) = &self.host {
            v["host"] = json!(host);
        }
        if let Some(trace) = &self.trace_id {
            v["trace_id"] = json!(trace);
        }
        v
    }
}

/// A field of an ECS document, by dotted name, flattened or nested.
#[must_use]
pub fn ecs_field<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(name) {
        return Some(v);
    }
    let mut cur = doc;
    for part in name.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

fn ecs_str<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    ecs_field(doc, name).and_then(Value::as_str)
}

/// One page of results.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    /// Records matching the query (exact, or a lower bound).
    pub total: u64,
    /// Whether `total` is only a lower bound (Elasticsearch stops counting).
    pub total_is_lower_bound: bool,
    /// This page, oldest first.
    pub records: Vec<LogRecord>,
    /// Pass back as `cursor` to get the next page; `None` on the last.
    pub next_cursor: Option<String>,
    /// Matching records scanned for template summaries (this page's records
    /// plus up to `summary_sample` more); empty when all matches are shown.
    pub sample: Vec<LogRecord>,
    /// Whether `sample` holds every match (otherwise counts are of a sample).
    pub sample_is_complete: bool,
    /// The exact query that reproduces the page.
    pub query: String,
    /// Where it came from.
    pub source: String,
    /// Why the answer is partial (shard failures, bad lines); empty when complete.
    pub partial: Vec<String>,
    /// Other notes (no data, ...).
    pub warnings: Vec<String>,
}

/// A log store that can answer a [`LogQuery`].
#[async_trait]
pub trait LogBackend: Send + Sync + 'static {
    /// Runs the query.
    ///
    /// # Errors
    /// [`ToolError::Backend`], [`ToolError::NotFound`] (index), ...
    async fn search(&self, ctx: &ToolContext, query: &LogQuery) -> Result<LogPage, ToolError>;
}

/// The `elasticsearch_search` tool over any [`LogBackend`].
pub struct LogSearchTool {
    backend: Arc<dyn LogBackend>,
}

impl LogSearchTool {
    /// The tool's name, as in the `agent_tools` table.
    pub const NAME: &'static str = "elasticsearch_search";

    /// A log search tool over `backend`.
    pub fn new(backend: impl LogBackend) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }
}

/// What a service name may hold: the tool's arguments are chosen by a model
/// that reads log content, so they are held to the shape of real names and
/// cannot carry quotes, spaces or shell syntax into a query or a command.
pub const SERVICE_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$";

/// What a log level may hold (`ERROR`, `warn`, `Information`).
pub const LEVEL_PATTERN: &str = r"^[A-Za-z]{1,16}$";

static SERVICE_RE: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(SERVICE_PATTERN).ok());
static LEVEL_RE: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(LEVEL_PATTERN).ok());

/// The schema already checks these patterns when the call comes through the
/// registry; this repeats it for callers that run the tool directly.
fn check_pattern<'a>(
    tool: &str,
    path: &str,
    values: impl Iterator<Item = &'a String>,
    re: Option<&regex::Regex>,
) -> Result<(), ToolError> {
    for v in values {
        // A pattern that failed to compile refuses everything (never open).
        if !re.is_some_and(|re| re.is_match(v)) {
            return Err(ToolError::bad_argument(
                tool,
                path,
                format!("{v:?} is not a valid name (letters, digits and . _ : / @ - only)"),
            ));
        }
    }
    Ok(())
}

/// A string or a list of strings (models send both for "level").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `"error"`.
    One(String),
    /// `["error", "warn"]`.
    Many(Vec<String>),
}

/// Arguments of `elasticsearch_search`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSearchArgs {
    /// Exact `service.name`.
    pub service: Option<String>,
    /// Level or levels.
    pub level: Option<OneOrMany>,
    /// Free text.
    pub text: Option<String>,
    /// Range start; defaults to the incident window start.
    pub start: Option<DateTime<Utc>>,
    /// Range end; defaults to the incident window end.
    pub end: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: Option<usize>,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
}

#[async_trait]
impl TypedTool for LogSearchTool {
    type Args = LogSearchArgs;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn description(&self) -> &str {
        "Search log records by service, level, time range and free text. Returns the oldest \
         matching records first (messages cut to 400 characters), the total count, a cursor for \
         the next page and, when more records match than are shown, message templates with \
         counts and first/last seen times. The time range defaults to the incident window."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "service": {"type": "string", "pattern": SERVICE_PATTERN, "description": "service.name, matched exactly"},
                "level": {
                    "description": "log level or levels, case-insensitive (ERROR, WARN, INFO, DEBUG)",
                    "anyOf": [
                        {"type": "string", "pattern": LEVEL_PATTERN},
                        {"type": "array", "items": {"type": "string", "pattern": LEVEL_PATTERN}, "maxItems": 8}
                    ]
                },
                "text": {"type": "string", "minLength": 1, "maxLength": 500, "description": "words that must all appear in the message"},
                "start": {"type": "string", "format": "date-time", "description": "RFC 3339; default: incident window start"},
                "end": {"type": "string", "format": "date-time", "description": "RFC 3339; default: incident window end"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                "cursor": {"type": "string", "description": "next_cursor of the previous page"}
            },
            "additionalProperties": false
        })
    }

    async fn run(&self, ctx: &ToolContext, args: LogSearchArgs) -> Result<ToolOutput, ToolError> {
        let (start, end) = ctx.range(Self::NAME, args.start, args.end)?;
        let levels = match args.level {
            None => Vec::new(),
            Some(OneOrMany::One(l)) => vec![l],
            Some(OneOrMany::Many(ls)) => ls,
        };
        check_pattern(
            Self::NAME,
            "/service",
            args.service.iter(),
            SERVICE_RE.as_ref(),
        )?;
        check_pattern(Self::NAME, "/level", levels.iter(), LEVEL_RE.as_ref())?;
        let query = LogQuery {
            service: args.service,
            levels,
            start,
            end,
            text: args.text.filter(|t| !t.trim().is_empty()),
            limit: args.limit.unwrap_or(50).clamp(1, 200),
            cursor: args.cursor,
            summary_sample: SUMMARY_SAMPLE,
        };
        let page = self.backend.search(ctx, &query).await?;
        Ok(page_to_output(page))
    }
}

/// The compact result of a page.
#[must_use]
pub fn page_to_output(page: LogPage) -> ToolOutput {
    let mut content = json!({
        "total": page.total,
        "total_is_lower_bound": page.total_is_lower_bound,
        "returned": page.records.len(),
        "records": page.records.iter().map(LogRecord::to_compact_json).collect::<Vec<_>>(),
    });
    if let Some(cursor) = &page.next_cursor {
        content["next_cursor"] = json!(cursor);
    }
    if !page.sample.is_empty() {
        content["templates"] = templates::summarize(&page.sample);
        content["templates_over"] = json!({
            "records": page.sample.len(),
            "all_matches": page.sample_is_complete,
        });
    }
    let mut out = ToolOutput::new(content, page.query, page.source);
    for p in page.partial {
        out = out.partial(p);
    }
    for w in page.warnings {
        out = out.with_warning(w);
    }
    out
}

pub mod templates;

/// Case variants of a level as stored by common loggers (`error`, `ERROR`, `Error`).
#[must_use]
pub fn level_variants(levels: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in levels {
        let lower = l.to_lowercase();
        let upper = l.to_uppercase();
        let mut title = lower.clone();
        if let Some(first) = title.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        for v in [lower, upper, title] {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// The words of a text, lowercased: runs of letters, digits and `_`
/// (close to how an analyzed `message` field is tokenized).
#[must_use]
pub fn text_terms(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Counts by key, for small summaries.
pub(crate) fn count_by<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i.to_owned()).or_insert(0) += 1;
    }
    m
}
