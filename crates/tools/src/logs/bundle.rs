//! The offline log backend: `logs/*.jsonl` of an incident bundle.
//!
//! Filters mirror the Elasticsearch query: exact service, case-insensitive
//! level, `[start, end)` on `@timestamp`, and free text where every query
//! word must be a word of the message (as `simple_query_string` with AND
//! over an analyzed field). The reproducing query is a `jq` command over the
//! bundle's files.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::SecondsFormat;
use tokio::sync::OnceCell;

use super::{LogBackend, LogPage, LogQuery, LogRecord, text_terms};
use crate::bundle::{Bundle, read_jsonl_lossy};
use crate::context::ToolContext;
use crate::error::ToolError;

/// Records of every file, oldest first, plus lines that did not parse.
struct Loaded {
    records: Vec<LogRecord>,
    skipped: usize,
    files: usize,
    /// `file: lines` for lines that held bytes that are not UTF-8.
    lossy: Vec<String>,
}

/// Log search over a bundle's `logs/` directory (loaded once, on first use).
pub struct BundleLogs {
    bundle: Arc<Bundle>,
    loaded: OnceCell<Arc<Loaded>>,
}

impl std::fmt::Debug for BundleLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleLogs")
            .field("bundle", &self.bundle.dir())
            .finish_non_exhaustive()
    }
}

impl BundleLogs {
    /// The log backend of `bundle`.
    #[must_use]
    pub fn new(bundle: Arc<Bundle>) -> Self {
        Self {
            bundle,
            loaded: OnceCell::new(),
        }
    }

    async fn load(&self) -> Result<Arc<Loaded>, ToolError> {
        let bundle = Arc::clone(&self.bundle);
        self.loaded
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || load_logs(&bundle))
                    .await
                    .map_err(|e| {
                        ToolError::backend("bundle:logs", format!("loading logs: {e}"), false)
                    })?
                    .map(Arc::new)
            })
            .await
            .cloned()
    }
}

fn load_logs(bundle: &Bundle) -> Result<Loaded, ToolError> {
    let files = bundle.jsonl_files("logs")?;
    let mut records = Vec::new();
    let mut skipped = 0;
    let mut lossy = Vec::new();
    for f in &files {
        let file = read_jsonl_lossy(f)?;
        skipped += file.unparsed;
        if !file.lossy_lines.is_empty() {
            let name = f.file_name().map_or_else(
                || f.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let shown: Vec<String> = file
                .lossy_lines
                .iter()
                .take(10)
                .map(ToString::to_string)
                .collect();
            let more = file.lossy_lines.len().saturating_sub(shown.len());
            lossy.push(format!(
                "logs/{name} lines {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        for v in file.values {
            match LogRecord::from_ecs(&v) {
                Some(r) => records.push(r),
                None => skipped += 1,
            }
        }
    }
    // Stable: records with equal timestamps keep file then line order.
    records.sort_by_key(|r| r.timestamp);
    Ok(Loaded {
        records,
        skipped,
        files: files.len(),
        lossy,
    })
}

/// Whether a record matches the query's filters.
#[must_use]
pub fn matches(r: &LogRecord, q: &LogQuery, levels: &[String], terms: &[String]) -> bool {
    if r.timestamp < q.start || r.timestamp >= q.end {
        return false;
    }
    if q.service.as_ref().is_some_and(|s| s != &r.service) {
        return false;
    }
    if !levels.is_empty()
        && !r
            .level
            .as_ref()
            .is_some_and(|l| levels.contains(&l.to_lowercase()))
    {
        return false;
    }
    if !terms.is_empty() {
        let words = text_terms(&r.message);
        if !terms.iter().all(|t| words.contains(t)) {
            return false;
        }
    }
    true
}

/// The `jq` command that selects the same records from the bundle.
fn jq_command(q: &LogQuery) -> String {
    let mut conds = vec![
        format!(
            ".\"@timestamp\" >= \"{}\"",
            q.start.to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
        format!(
            ".\"@timestamp\" < \"{}\"",
            q.end.to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
    ];
    if let Some(s) = &q.service {
        conds.push(format!(
            ".\"service.name\" == {}",
            serde_json::Value::from(s.as_str())
        ));
    }
    if !q.levels.is_empty() {
        let ls: Vec<String> = q
            .levels
            .iter()
            .map(|l| serde_json::Value::from(l.to_lowercase()).to_string())
            .collect();
        conds.push(format!(
            "((.\"log.level\" // \"\") | ascii_downcase | IN({}))",
            ls.join(", ")
        ));
    }
    if let Some(text) = &q.text {
        for t in text_terms(text) {
            conds.push(format!(
                "(.message | ascii_downcase | [scan(\"[a-z0-9_]+\")] | index({}) != null)",
                serde_json::Value::from(t)
            ));
        }
    }
    let offset: usize = q
        .cursor
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let program = format!(
        "map(select({})) | sort_by(.\"@timestamp\") | .[{offset}:{}][]",
        conds.join(" and "),
        offset + q.limit
    );
    // The program holds model-chosen values (service, level, text): quote it
    // as one shell word so no value can end the word or start a command. A
    // NUL cannot be quoted; the values never hold one after schema checks,
    // and if one did the command says so instead of being runnable.
    let quoted = shlex::try_quote(&program).map_or_else(
        |_| "'<query holds a NUL byte; not reproducible in a shell>'".to_owned(),
        std::borrow::Cow::into_owned,
    );
    format!("jq -c -s {quoted} logs/*.jsonl")
}

#[async_trait]
impl LogBackend for BundleLogs {
    async fn search(&self, ctx: &ToolContext, q: &LogQuery) -> Result<LogPage, ToolError> {
        ctx.check_tenant("elasticsearch_search", self.bundle.tenant())?;
        let loaded = self.load().await?;
        let offset = match &q.cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| {
                ToolError::bad_argument(
                    "elasticsearch_search",
                    "/cursor",
                    format!("{c:?} is not a cursor returned by this tool"),
                )
            })?,
        };
        let levels: Vec<String> = q.levels.iter().map(|l| l.to_lowercase()).collect();
        let terms = q.text.as_deref().map(text_terms).unwrap_or_default();
        let matching: Vec<&LogRecord> = loaded
            .records
            .iter()
            .filter(|r| matches(r, q, &levels, &terms))
            .collect();
        let total = matching.len();
        let end = (offset + q.limit).min(total);
        let mut page = LogPage {
            total: total as u64,
            records: matching
                .get(offset..end)
                .unwrap_or(&[])
                .iter()
                .map(|r| (*r).clone())
                .collect(),
            next_cursor: (end < total).then(|| end.to_string()),
            query: jq_command(q),
            source: "bundle:logs".to_owned(),
            ..LogPage::default()
        };
        if total > q.limit && q.summary_sample > 0 && q.cursor.is_none() {
            page.sample = matching
                .iter()
                .take(q.summary_sample)
                .map(|r| (*r).clone())
                .collect();
            page.sample_is_complete = total <= q.summary_sample;
        }
        if loaded.files == 0 {
            page.warnings
                .push("the bundle has no logs/ directory: no log data".to_owned());
        } else if total == 0 {
            page.warnings.push(format!(
                "no log records match between {} and {}",
                q.start, q.end
            ));
        }
        if !loaded.lossy.is_empty() {
            page.partial.push(format!(
                "bytes that are not UTF-8 were replaced with U+FFFD in {}",
                loaded.lossy.join("; ")
            ));
        }
        if loaded.skipped > 0 {
            page.partial.push(format!(
                "{} log lines did not parse or lacked @timestamp, service.name or message",
                loaded.skipped
            ));
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {

    use chrono::{TimeZone, Utc};

    use super::*;

    fn query(service: &str, level: &str) -> LogQuery {
        LogQuery {
            service: Some(service.to_owned()),
            levels: vec![level.to_owned()],
            start: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .expect("date"),
            end: Utc
                .with_ymd_and_hms(2026, 1, 1, 1, 0, 0)
                .single()
                .expect("date"),
            text: Some("it's down".to_owned()),
            limit: 10,
            cursor: None,
            summary_sample: 0,
        }
    }

    #[test]
    fn quote_in_service_cannot_break_out_of_the_jq_program() {
        let service = "x' logs/*.jsonl; touch /tmp/pwned; echo '";
        let command = jq_command(&query(service, "err'or"));
        // A POSIX shell splits the command into exactly these words: the
        // program stays one argument holding the values verbatim.
        let words = shlex::split(&command).expect("the command is valid shell");
        assert_eq!(words.len(), 5, "{command}");
        assert_eq!(&words[..3], ["jq", "-c", "-s"]);
        assert_eq!(words[4], "logs/*.jsonl");
        assert!(
            words[3].contains(&serde_json::Value::from(service).to_string()),
            "{}",
            words[3]
        );
        assert!(words[3].contains("err'or"), "{}", words[3]);
    }
}
