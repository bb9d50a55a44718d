//! Reading an incident bundle into plain values for the analyzers.
//!
//! The tools crate's bundle readers do the reading (`Bundle`, `read_jsonl`,
//! ECS log records, `changes.jsonl` records, the `repo.bundle` unpacker);
//! this module only walks the unpacked repository into the change ranker's
//! `CommitInfo` and records, per source, whether there was data.
//!
//! Rules: `incident.json` is required and validated; a file that is absent
//! is "no data" (reported, never an error); a file that is present but
//! cannot be read as a whole (`metrics.om` with a syntax error, a
//! `repo.bundle` that is not a git bundle) is bad input; single lines of
//! JSON-lines files that do not parse are skipped and counted, so one bad
//! line does not hide the rest.

use std::path::{Path, PathBuf};

use rootcause_analysis::changes::CommitInfo;
use rootcause_analysis::metrics::{MetricSet, openmetrics};
use rootcause_diagnosis::{Incident, TenantId};
use rootcause_tools::bundle::{Bundle, read_jsonl, read_jsonl_lossy};
use rootcause_tools::code::{ChangeRecord, GitRepository, change_records};
use rootcause_tools::knowledge::PastIncident;
use rootcause_tools::knowledge::ingest::parse_runbook;
use rootcause_tools::logs::LogRecord;
use serde::Serialize;

use super::InputError;

/// Commits walked at most: enough for months of a service repository,
/// bounded so a monorepo bundle cannot stall the command.
const MAX_COMMITS: usize = 5_000;

/// The tenant a local bundle is read as (bundle backends check tenants).
pub const LOCAL_TENANT: &str = rootcause_tools::settings::DEFAULT_TENANT;

/// One runbook of `runbooks/*.md`.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// Path relative to the bundle (`runbooks/deploy-rollback.md`).
    pub file: String,
    /// The `# <title>` line.
    pub title: String,
    /// Everything after the title.
    pub body: String,
}

/// Whether a source had data, for the report's data section and the
/// "no data" evidence.
#[derive(Debug, Clone, Serialize)]
pub struct SourceNote {
    /// The bundle path read (`logs/`, `metrics.om`, ...).
    pub source: String,
    /// `ok`, `partial` or `no_data`.
    pub status: &'static str,
    /// What was read, or what was missing.
    pub detail: String,
}

/// Everything the analyzers need from one bundle.
#[derive(Debug)]
pub struct Inputs {
    /// The bundle, as the tools crate opens it (for the db backend).
    pub bundle: Bundle,
    /// The validated incident.
    pub incident: Incident,
    /// Log records of every service, oldest first.
    pub logs: Vec<LogRecord>,
    /// `metrics.om`, parsed; `None` when absent.
    pub metrics: Option<MetricSet>,
    /// `changes.jsonl` records.
    pub changes: Vec<ChangeRecord>,
    /// Commits of `repo.bundle`; `None` when absent.
    pub commits: Option<Vec<CommitInfo>>,
    /// Runbooks.
    pub runbooks: Vec<Runbook>,
    /// Past incidents.
    pub past_incidents: Vec<PastIncident>,
    /// Per-source data notes.
    pub notes: Vec<SourceNote>,
}

impl Inputs {
    /// Reads the bundle at `dir`; `git_cache` receives the unpacked
    /// `repo.bundle` (reused across runs: the directory name includes a
    /// hash of the bundle header).
    ///
    /// # Errors
    /// [`InputError`] for a missing or invalid `incident.json`, and for
    /// present files that cannot be read as a whole.
    pub fn load(dir: &Path, git_cache: &Path) -> Result<Self, InputError> {
        if !dir.is_dir() {
            return Err(InputError::BundleNotFound {
                path: dir.to_owned(),
            });
        }
        let bundle = Bundle::open(dir, TenantId(LOCAL_TENANT.to_owned())).map_err(|_| {
            InputError::NoIncident {
                path: dir.join("incident.json"),
            }
        })?;
        let incident_path = bundle.path("incident.json");
        let text = std::fs::read_to_string(&incident_path).map_err(|e| InputError::Unreadable {
            path: incident_path.clone(),
            message: e.to_string(),
        })?;
        let incident = Incident::from_json(&text).map_err(|e| InputError::Incident {
            path: incident_path,
            field: e.field().to_owned(),
            message: e.to_string(),
        })?;
        let mut notes = Vec::new();
        let logs = load_logs(&bundle, &mut notes)?;
        let metrics = load_metrics(&bundle, &mut notes)?;
        let changes = load_changes(&bundle, &mut notes)?;
        let commits = load_commits(&bundle, git_cache, &mut notes)?;
        let runbooks = load_runbooks(&bundle, &mut notes)?;
        let past_incidents = load_past_incidents(&bundle, &mut notes)?;
        note_db(&bundle, &mut notes)?;
        Ok(Self {
            bundle,
            incident,
            logs,
            metrics,
            changes,
            commits,
            runbooks,
            past_incidents,
            notes,
        })
    }

    /// Whether a source (as named in its note) had any data.
    #[must_use]
    pub fn has(&self, source: &str) -> bool {
        self.notes
            .iter()
            .any(|n| n.source == source && n.status != "no_data")
    }
}

fn note(notes: &mut Vec<SourceNote>, source: &str, status: &'static str, detail: String) {
    notes.push(SourceNote {
        source: source.to_owned(),
        status,
        detail,
    });
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> InputError {
    InputError::Unreadable {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn load_logs(bundle: &Bundle, notes: &mut Vec<SourceNote>) -> Result<Vec<LogRecord>, InputError> {
    let files = bundle
        .jsonl_files("logs")
        .map_err(|e| unreadable(&bundle.path("logs"), e))?;
    if files.is_empty() {
        note(
            notes,
            "logs/",
            "no_data",
            "no logs/*.jsonl: nothing to say about log templates or exceptions".to_owned(),
        );
        return Ok(Vec::new());
    }
    let mut records = Vec::new();
    let mut skipped = 0;
    let mut lossy = Vec::new();
    for f in &files {
        let file = read_jsonl_lossy(f).map_err(|e| unreadable(f, e))?;
        skipped += file.unparsed;
        if let (Some(first), Some(name)) = (file.lossy_lines.first(), f.file_name()) {
            lossy.push(format!(
                "logs/{} ({} lines, first line {first})",
                name.to_string_lossy(),
                file.lossy_lines.len()
            ));
        }
        for v in file.values {
            match LogRecord::from_ecs(&v) {
                Some(r) => records.push(r),
                None => skipped += 1,
            }
        }
    }
    // Stable: equal timestamps keep file, then line order.
    records.sort_by_key(|r| r.timestamp);
    let mut detail = format!("{} files, {} records", files.len(), records.len());
    if !lossy.is_empty() {
        detail.push_str(&format!(
            "; bytes that are not UTF-8 replaced with U+FFFD in {}",
            lossy.join(", ")
        ));
    }
    if skipped > 0 {
        note(
            notes,
            "logs/",
            "partial",
            format!(
                "{detail}; {skipped} lines skipped (not JSON, or without @timestamp, service.name or message)"
            ),
        );
    } else if !lossy.is_empty() {
        note(notes, "logs/", "partial", detail);
    } else {
        note(notes, "logs/", "ok", detail);
    }
    Ok(records)
}

fn load_metrics(
    bundle: &Bundle,
    notes: &mut Vec<SourceNote>,
) -> Result<Option<MetricSet>, InputError> {
    let path = bundle.path("metrics.om");
    if !path.is_file() {
        note(
            notes,
            "metrics.om",
            "no_data",
            "no metrics.om: no metric anomalies, onsets or service dependencies from metrics"
                .to_owned(),
        );
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
    let set = openmetrics::parse(&text).map_err(|e| InputError::Metrics {
        path: path.clone(),
        message: e.to_string(),
    })?;
    note(
        notes,
        "metrics.om",
        "ok",
        format!("{} series", set.series.len()),
    );
    Ok(Some(set))
}

fn load_changes(
    bundle: &Bundle,
    notes: &mut Vec<SourceNote>,
) -> Result<Vec<ChangeRecord>, InputError> {
    let path = bundle.path("changes.jsonl");
    if !path.is_file() {
        note(
            notes,
            "changes.jsonl",
            "no_data",
            "no changes.jsonl: deploys and config changes unknown".to_owned(),
        );
        return Ok(Vec::new());
    }
    let (values, bad) = read_jsonl(&path).map_err(|e| unreadable(&path, e))?;
    let (mut changes, skipped) = change_records(values);
    let skipped = skipped + bad;
    changes.sort_by_key(|c| c.ts);
    let detail = format!("{} changes", changes.len());
    if skipped > 0 {
        note(
            notes,
            "changes.jsonl",
            "partial",
            format!("{detail}; {skipped} lines skipped (need ts, service, kind)"),
        );
    } else {
        note(notes, "changes.jsonl", "ok", detail);
    }
    Ok(changes)
}

fn load_commits(
    bundle: &Bundle,
    git_cache: &Path,
    notes: &mut Vec<SourceNote>,
) -> Result<Option<Vec<CommitInfo>>, InputError> {
    let path = bundle.path("repo.bundle");
    if !path.is_file() {
        note(
            notes,
            "repo.bundle",
            "no_data",
            "no repo.bundle: deploys cannot be expanded into the commits they shipped".to_owned(),
        );
        return Ok(None);
    }
    let repo =
        GitRepository::from_bundle(&path, git_cache, bundle.tenant().clone()).map_err(|e| {
            InputError::Repo {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
    let commits = repo
        .commit_history(MAX_COMMITS)
        .map_err(|e| InputError::Repo {
            path: path.clone(),
            message: e.to_string(),
        })?;
    note(
        notes,
        "repo.bundle",
        "ok",
        format!("{} commits", commits.len()),
    );
    Ok(Some(commits))
}

fn load_runbooks(bundle: &Bundle, notes: &mut Vec<SourceNote>) -> Result<Vec<Runbook>, InputError> {
    let dir = bundle.path("runbooks");
    if !dir.is_dir() {
        note(
            notes,
            "runbooks/",
            "no_data",
            "no runbooks/: remediation uses the general rules only".to_owned(),
        );
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| unreadable(&dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    let mut runbooks = Vec::new();
    let mut untitled = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| unreadable(f, e))?;
        match parse_runbook(&text) {
            Some((title, body)) => runbooks.push(Runbook {
                file: format!(
                    "runbooks/{}",
                    f.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ),
                title,
                body,
            }),
            None => untitled += 1,
        }
    }
    let detail = format!("{} runbooks", runbooks.len());
    if untitled > 0 {
        note(
            notes,
            "runbooks/",
            "partial",
            format!("{detail}; {untitled} files skipped (first line is not `# <title>`)"),
        );
    } else {
        note(notes, "runbooks/", "ok", detail);
    }
    Ok(runbooks)
}

fn load_past_incidents(
    bundle: &Bundle,
    notes: &mut Vec<SourceNote>,
) -> Result<Vec<PastIncident>, InputError> {
    let path = bundle.path("past_incidents.jsonl");
    if !path.is_file() {
        note(
            notes,
            "past_incidents.jsonl",
            "no_data",
            "no past_incidents.jsonl: no similar incidents to point at".to_owned(),
        );
        return Ok(Vec::new());
    }
    let (values, mut skipped) = read_jsonl(&path).map_err(|e| unreadable(&path, e))?;
    let mut out = Vec::new();
    for v in values {
        match serde_json::from_value::<PastIncident>(v) {
            Ok(p) => out.push(p),
            Err(_) => skipped += 1,
        }
    }
    let detail = format!("{} past incidents", out.len());
    if skipped > 0 {
        note(
            notes,
            "past_incidents.jsonl",
            "partial",
            format!("{detail}; {skipped} lines skipped"),
        );
    } else {
        note(notes, "past_incidents.jsonl", "ok", detail);
    }
    Ok(out)
}

fn note_db(bundle: &Bundle, notes: &mut Vec<SourceNote>) -> Result<(), InputError> {
    let files = bundle
        .jsonl_files("db")
        .map_err(|e| unreadable(&bundle.path("db"), e))?;
    if files.is_empty() {
        note(
            notes,
            "db/",
            "no_data",
            "no db/*.jsonl: no database snapshots (lock waits, long transactions)".to_owned(),
        );
    } else {
        let names: Vec<String> = files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        note(notes, "db/", "ok", names.join(", "));
    }
    Ok(())
}
