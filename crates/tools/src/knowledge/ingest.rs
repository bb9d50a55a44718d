//! Filling the knowledge base: runbooks, past incidents, bundles and
//! concluded diagnoses. Every write is an upsert on `(tenant, kind, source)`,
//! so re-ingesting is safe and keeps ids stable.

use std::path::Path;

use diesel::ExpressionMethods;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rootcause_diagnosis::db::StoreError;
use rootcause_diagnosis::schema::knowledge_documents as kd;
use rootcause_diagnosis::{Category, DiagnosisState, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::KnowledgeKind;
use crate::bundle::read_jsonl;
use crate::error::ToolError;

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Documents inserted or updated.
    pub upserted: usize,
    /// Files or lines skipped, with why.
    pub skipped: Vec<String>,
}

impl IngestReport {
    fn add(&mut self, other: IngestReport) {
        self.upserted += other.upserted;
        self.skipped.extend(other.skipped);
    }
}

/// Inserts a document, or updates title, body and metadata of the one with
/// the same `(tenant, kind, source)`.
///
/// # Errors
/// [`ToolError::Store`] on a database error.
pub async fn upsert_document(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    kind: KnowledgeKind,
    source: &str,
    title: &str,
    body: &str,
    metadata: &Value,
) -> Result<(), ToolError> {
    diesel::insert_into(kd::table)
        .values((
            kd::id.eq(uuid::Uuid::now_v7()),
            kd::tenant.eq(tenant.as_str()),
            kd::kind.eq(kind.as_str()),
            kd::source.eq(source),
            kd::title.eq(title),
            kd::body.eq(body),
            kd::metadata.eq(metadata),
        ))
        .on_conflict((kd::tenant, kd::kind, kd::source))
        .do_update()
        .set((
            kd::title.eq(title),
            kd::body.eq(body),
            kd::metadata.eq(metadata),
            kd::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map_err(StoreError::from)?;
    Ok(())
}

/// Splits a runbook into its title (first line, `# <title>`) and body.
/// `None` when the first line is not a level-1 heading.
#[must_use]
pub fn parse_runbook(text: &str) -> Option<(String, String)> {
    let text = text.trim_start_matches('\u{feff}');
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let title = first.trim().strip_prefix("# ")?.trim();
    if title.is_empty() {
        return None;
    }
    Some((title.to_owned(), rest.trim().to_owned()))
}

/// Ingests every `*.md` file of `dir` (not recursive) as a runbook whose
/// source is the file name. Files without a `# <title>` first line are
/// skipped and reported.
///
/// # Errors
/// [`ToolError::Io`] when the directory cannot be read, [`ToolError::Store`].
pub async fn ingest_runbooks(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    dir: &Path,
) -> Result<IngestReport, ToolError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| ToolError::io(dir, &e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md") && p.is_file())
        .collect();
    files.sort();
    let mut report = IngestReport::default();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).map_err(|e| ToolError::io(&path, &e))?;
        let Some((title, body)) = parse_runbook(&text) else {
            report
                .skipped
                .push(format!("{name}: the first line is not \"# <title>\""));
            continue;
        };
        upsert_document(
            conn,
            tenant,
            KnowledgeKind::Runbook,
            &name,
            &title,
            &body,
            &json!({"file": name}),
        )
        .await?;
        report.upserted += 1;
    }
    Ok(report)
}

/// A line of `past_incidents.jsonl`: the one past-incident record, read
/// the same way when ingested into the knowledge base and when the offline
/// CLI matches a bundle's incidents. The id and title are required (an
/// incident nobody can cite is no reference); the rest may be missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastIncident {
    /// Incident id (`INC-1042`).
    pub id: String,
    /// Title.
    pub title: String,
    /// What was seen.
    #[serde(default)]
    pub symptoms: String,
    /// What it was.
    #[serde(default)]
    pub root_cause: String,
    /// Root-cause category, when recorded.
    #[serde(default)]
    pub category: Option<Category>,
    /// What fixed it.
    #[serde(default)]
    pub resolution: String,
}

/// Ingests `past_incidents.jsonl`; each incident's source is its id.
///
/// # Errors
/// [`ToolError::Io`] when the file cannot be read, [`ToolError::Store`].
pub async fn ingest_past_incidents(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    file: &Path,
) -> Result<IngestReport, ToolError> {
    let (values, bad) = read_jsonl(file)?;
    let mut report = IngestReport::default();
    if bad > 0 {
        report
            .skipped
            .push(format!("{}: {bad} lines are not JSON", file.display()));
    }
    for (i, v) in values.into_iter().enumerate() {
        let inc: PastIncident = match serde_json::from_value(v.clone()) {
            Ok(inc) => inc,
            Err(e) => {
                report
                    .skipped
                    .push(format!("{} record {}: {e}", file.display(), i + 1));
                continue;
            }
        };
        let body = format!(
            "Symptoms: {}\nRoot cause: {}\nResolution: {}",
            inc.symptoms, inc.root_cause, inc.resolution
        );
        let mut meta = v;
        if let Some(c) = inc.category {
            meta["category"] = json!(c.as_str());
        }
        upsert_document(
            conn,
            tenant,
            KnowledgeKind::PastIncident,
            &inc.id,
            &inc.title,
            &body,
            &meta,
        )
        .await?;
        report.upserted += 1;
    }
    Ok(report)
}

/// Ingests a bundle's `runbooks/` and `past_incidents.jsonl` (each when
/// present).
///
/// # Errors
/// As [`ingest_runbooks`] and [`ingest_past_incidents`].
pub async fn ingest_bundle(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    bundle_dir: &Path,
) -> Result<IngestReport, ToolError> {
    let mut report = IngestReport::default();
    let runbooks = bundle_dir.join("runbooks");
    if runbooks.is_dir() {
        report.add(ingest_runbooks(conn, tenant, &runbooks).await?);
    }
    let past = bundle_dir.join("past_incidents.jsonl");
    if past.is_file() {
        report.add(ingest_past_incidents(conn, tenant, &past).await?);
    }
    Ok(report)
}

/// Records a concluded diagnosis as a `diagnosis` document of its tenant,
/// so the next incident with the same symptoms finds it. Called by the
/// orchestrator when a diagnosis concludes; returns `false` (and writes
/// nothing) when the state has no result yet.
///
/// # Errors
/// [`ToolError::Store`] on a database error.
pub async fn record_concluded_diagnosis(
    conn: &mut AsyncPgConnection,
    state: &DiagnosisState,
) -> Result<bool, ToolError> {
    let Some(result) = state.result() else {
        return Ok(false);
    };
    let top = result
        .ranked
        .as_slice()
        .first()
        .and_then(|id| state.hypotheses().get(id));
    let mut body = format!(
        "Symptoms: {}\nServices: {}\nConclusion: {}",
        state.incident().description(),
        state.incident().services().join(", "),
        result.summary
    );
    if let Some(h) = top {
        body.push_str(&format!(
            "\nRoot cause: {} ({} in {})",
            h.statement,
            h.category.as_str(),
            h.service
        ));
        if !h.remediation.is_empty() {
            body.push_str(&format!("\nRemediation: {}", h.remediation.join("; ")));
        }
        let evidence: Vec<&str> = h
            .supporting
            .iter()
            .filter_map(|id| state.evidence_by_id(*id))
            .map(|e| e.summary.as_str())
            .take(5)
            .collect();
        if !evidence.is_empty() {
            body.push_str(&format!("\nEvidence: {}", evidence.join("; ")));
        }
    }
    let metadata = json!({
        "session_id": state.session_id().0,
        "confidence": result.confidence.get(),
        "reason": result.reason,
        "service": top.map(|h| h.service.clone()),
        "category": top.map(|h| h.category.as_str()),
        "window": state.incident().window(),
    });
    upsert_document(
        conn,
        state.tenant(),
        KnowledgeKind::Diagnosis,
        &state.session_id().0.to_string(),
        state.incident().title(),
        &body,
        &metadata,
    )
    .await?;
    Ok(true)
}
