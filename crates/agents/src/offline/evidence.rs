//! From bundle data to evidence: the offline analyzers of the log, metric,
//! code and database agents, each runnable alone (an agent runs its own
//! share), and the coordinator's cross-kind step ([`link`]) that needs all
//! of them. Each result is one [`Evidence`] record: summary, source and the
//! query that reproduces it for people, strength and ranking hints for the
//! hypothesis ranking, a label (`L3`) to cite.
//!
//! - logs ([`log_evidence`]): per service, the Drain template diff of the
//!   incident (from `lead` before the window start to its end) against the
//!   earlier logs; error templates that are new, or rose, with at least
//!   [`MIN_LOG_LINES`] lines. Their exceptions' stack frames, error lines and
//!   the services they name travel in the evidence's `data`, for [`link`].
//! - metrics ([`metric_evidence`]): the anomaly ranking with the baseline
//!   ending `lead` before the window; the major anomalies, three per service
//!   at most, each carrying its service's onset for [`link`].
//! - changes ([`candidate_changes`]): deploys (expanded into the commits
//!   they shipped), config and flag changes ranked on what is known so far
//!   (timing, affected services, earlier evidence): the code agent's list.
//! - database ([`database_evidence`]): lock waits and long transactions in
//!   `db/` snapshots (through the tools crate's `sql_diagnostics` bundle
//!   backend).
//! - absence ([`absences`]): every optional source that is missing, as "no
//!   data".
//! - [`link`] (the coordinator): ranks the changes against the symptoms
//!   (stack frames, error words, metric onsets, dependencies) into the
//!   suspects `C1..`, and counts a caller's error that names a failing
//!   callee as evidence about the callee.
//!
//! [`analyze_bundle`] runs them all in sequence, as one process does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use rootcause_analysis::changes::{
    ChangeRecord, RankConfig, ServiceOnset, StackFrame, Suspect, SuspectEvidence, rank_suspects,
};
use rootcause_analysis::hypotheses::graph::{DependencyGraph, service_mentions};
use rootcause_analysis::hypotheses::{Category, category_cues};
use rootcause_analysis::logs::diff::level_rank;
use rootcause_analysis::logs::{ChangeKind, DiffConfig, TemplateChange, WILDCARD, diff_templates};
use rootcause_analysis::metrics::anomaly::{AnomalyConfig, AnomalyReport, analyze};
use rootcause_diagnosis::{EventId, Evidence, EvidenceKind, Incident, RankingHints, TimeWindow};
use rootcause_tools::ToolContext;
use rootcause_tools::sql::{BundleDb, Diagnostic, SqlBackend};
use serde_json::{Value, json};

use super::inputs::Inputs;

/// Fewest incident lines for a log template to count as evidence: one or
/// two stray errors are noise at any scale.
pub const MIN_LOG_LINES: u64 = 3;
/// Major metric anomalies kept per service (the rest repeat the story).
const METRICS_PER_SERVICE: usize = 3;
/// Change suspects kept as evidence.
const SUSPECTS_KEPT: usize = 5;
/// A transaction open this long during the incident is worth a look.
const LONG_TRANSACTION_SECONDS: f64 = 60.0;
/// The label letter of the coordinator's linked change suspects.
pub const SUSPECT_LETTER: char = 'C';
/// The label letter of the code agent's change candidates.
pub const CANDIDATE_LETTER: char = 'G';

/// What every agent of a diagnosis reads from one bundle, computed once:
/// the bundle itself, the metric anomaly report, the services seen in any
/// source and the dependencies the logs and metrics show. Agents share it
/// (the engine caches it per bundle), so five agents do not parse the same
/// files five times.
#[derive(Debug)]
pub struct BundleContext {
    /// The bundle's data.
    pub inputs: Arc<Inputs>,
    /// The end of the baseline: `lead` before the window start.
    pub baseline_end: DateTime<Utc>,
    /// The end of the incident side: the window end.
    pub end: DateTime<Utc>,
    /// The anomaly ranking of `metrics.om`, when there is one.
    pub metrics: Option<AnomalyReport>,
    /// The services seen in any source.
    pub known: BTreeSet<String>,
    /// Dependencies observed in every log line and metric label (log
    /// findings that name callees add theirs in [`link`]).
    pub graph: DependencyGraph,
}

impl BundleContext {
    /// Builds the shared view of `inputs`, comparing the incident from
    /// `lead` before its window start against what came before.
    #[must_use]
    pub fn new(inputs: Arc<Inputs>, lead: Duration) -> Self {
        let window = inputs.incident.window();
        let baseline_end = window.start() - lead;
        let metrics = inputs.metrics.as_ref().map(|set| {
            analyze(
                set,
                &AnomalyConfig {
                    baseline_end_ms: Some(baseline_end.timestamp_millis()),
                    ..AnomalyConfig::default()
                },
            )
        });
        let mut known: BTreeSet<String> = inputs.logs.iter().map(|r| r.service.clone()).collect();
        if let Some(r) = &metrics {
            known.extend(
                r.series
                    .iter()
                    .map(|s| s.service.clone())
                    .filter(|s| !s.is_empty()),
            );
        }
        known.extend(inputs.changes.iter().map(|c| c.service.clone()));
        known.extend(inputs.incident.services().iter().cloned());
        let mut graph = DependencyGraph::new();
        for r in &inputs.logs {
            graph.observe_log(&r.service, &r.message, &known);
        }
        if let Some(set) = &inputs.metrics {
            graph.observe_metrics(set, "service", &known);
        }
        Self {
            inputs,
            baseline_end,
            end: window.end(),
            metrics,
            known,
            graph,
        }
    }
}

/// Everything the analyzers found.
#[derive(Debug)]
pub struct Analysis {
    /// Evidence, in the order it was found (logs, metrics, changes,
    /// database, absence), labelled `L`, `M`, `C`, `D`, `A` and a number.
    pub evidence: Vec<Evidence>,
    /// Inferred service dependencies.
    pub graph: DependencyGraph,
    /// Change suspects, best first.
    pub suspects: Vec<Suspect>,
    /// The change log as the ranker saw it (suspects index into it).
    pub changes: Vec<ChangeRecord>,
    /// The end of the baseline: `lead` before the window start.
    pub baseline_end: DateTime<Utc>,
    /// The services seen in any source.
    pub known_services: BTreeSet<String>,
}

/// The next label of a kind's letter (`L3` after `L1`, `L2`).
fn next_label(evidence: &[Evidence], letter: char) -> String {
    let n = evidence
        .iter()
        .filter(|e| e.label.as_deref().is_some_and(|l| l.starts_with(letter)))
        .count();
    format!("{letter}{}", n + 1)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ms_to_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-:@=".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A jq string literal (JSON string syntax).
fn jq_string(s: &str) -> String {
    Value::from(s).to_string()
}

/// Runs every analyzer over the bundle, as the agents and the
/// coordinator's linking do one after the other.
pub fn analyze_bundle(inputs: Arc<Inputs>, lead: Duration) -> Analysis {
    let ctx = BundleContext::new(inputs, lead);
    let mut found = log_evidence(&ctx);
    found.extend(metric_evidence(&ctx));
    found.extend(database_evidence(&ctx, &mut |_| None));
    let linked = link(Some(&ctx), &ctx.inputs.incident, &found);
    let mut evidence = linked.evidence;
    evidence.extend(
        found
            .into_iter()
            .filter(|e| e.kind == EvidenceKind::Absence),
    );
    evidence.extend(absences(&ctx.inputs, ALL_SOURCES));
    Analysis {
        evidence,
        graph: linked.graph,
        suspects: linked.suspects,
        changes: linked.changes,
        baseline_end: ctx.baseline_end,
        known_services: ctx.known,
    }
}

/// Every optional source of a bundle, as named in its notes.
pub const ALL_SOURCES: &[&str] = &[
    "logs/",
    "metrics.om",
    "changes.jsonl",
    "repo.bundle",
    "runbooks/",
    "past_incidents.jsonl",
    "db/",
];

/// "No data" evidence for each of `sources` the bundle lacks. The label
/// is `A` and the source's place in the bundle's notes, so agents that
/// report their own sources' absences never pick the same label.
#[must_use]
pub fn absences(inputs: &Inputs, sources: &[&str]) -> Vec<Evidence> {
    inputs
        .notes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.status == "no_data" && sources.contains(&n.source.as_str()))
        .map(|(i, n)| Evidence {
            label: Some(format!("A{}", i + 1)),
            query: Some(format!(
                "ls -d {}",
                shell_quote(n.source.trim_end_matches('/'))
            )),
            data: json!({"source": n.source}),
            ..Evidence::new(
                EvidenceKind::Absence,
                n.detail.clone(),
                format!("bundle:{}", n.source),
            )
        })
        .collect()
}

/// The metric findings: the major anomalies, at most three per service,
/// each carrying its service's onset and score (`service_onset_ms`,
/// `service_score`, `service_order`) for the change ranking in [`link`].
#[must_use]
pub fn metric_evidence(ctx: &BundleContext) -> Vec<Evidence> {
    let Some(report) = &ctx.metrics else {
        return Vec::new();
    };
    let mut out: Vec<Evidence> = Vec::new();
    let mut per_service: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &report.series {
        let n = per_service.entry(s.service.as_str()).or_default();
        if !s.major || *n >= METRICS_PER_SERVICE {
            continue;
        }
        *n += 1;
        let label = next_label(&out, 'M');
        let strength = (s.score / 100.0).min(1.0);
        let summary = s.describe();
        let text = format!(
            "{} ({} from {})",
            summary,
            if s.sustained {
                "sustained"
            } else {
                "transient"
            },
            ms_to_time(s.change.onset_ms)
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default()
        );
        let onset = report
            .services
            .iter()
            .enumerate()
            .find(|(_, a)| a.service == s.service);
        out.push(Evidence {
            label: Some(label),
            service: (!s.service.is_empty()).then(|| s.service.clone()),
            query: Some(s.query.clone()),
            observed_at: ms_to_time(s.change.onset_ms),
            strength,
            ranking: RankingHints {
                cue_text: Some(summary),
                ..RankingHints::default()
            },
            data: json!({
                "metric": s.metric,
                "labels": s.labels.to_string(),
                "baseline_level": s.baseline_level,
                "level": s.change.level,
                "robust_z": s.change.effect,
                "score": s.score,
                "sustained": s.sustained,
                "service_key": s.service,
                "service_onset_ms": onset.and_then(|(_, a)| a.onset_ms),
                "service_score": onset.map(|(_, a)| a.score),
                "service_order": onset.map(|(i, _)| i),
            }),
            ..Evidence::new(EvidenceKind::Metric, text, "bundle:metrics.om")
        });
    }
    out
}

/// The symptoms the change ranking weighs, read back from evidence: the
/// log findings' stack frames and error lines, the metric findings'
/// service onsets (or, without any, the log findings' first times), the
/// incident's services and the known dependencies.
fn suspect_signals(
    incident: &Incident,
    evidence: &[Evidence],
    graph: &DependencyGraph,
) -> SuspectEvidence {
    let logs: Vec<&Evidence> = evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Log)
        .collect();
    let mut frames = Vec::new();
    let mut tokens = Vec::new();
    for e in &logs {
        for f in e.data["frames"].as_array().into_iter().flatten() {
            if let Some(file) = f["file"].as_str() {
                let line = f["line"].as_u64().and_then(|l| u32::try_from(l).ok());
                frames.push(StackFrame::new(file, line, f["function"].as_str()));
            }
        }
        for l in e.data["error_lines"].as_array().into_iter().flatten() {
            if let Some(l) = l.as_str() {
                tokens.push(l.to_owned());
            }
        }
    }
    let mut onsets: BTreeMap<u64, ServiceOnset> = BTreeMap::new();
    for e in evidence.iter().filter(|e| e.kind == EvidenceKind::Metric) {
        let d = &e.data;
        if let (Some(order), Some(service), Some(onset_ms), Some(score)) = (
            d["service_order"].as_u64(),
            d["service_key"].as_str(),
            d["service_onset_ms"].as_i64(),
            d["service_score"].as_f64(),
        ) {
            onsets.entry(order).or_insert(ServiceOnset {
                service: service.to_owned(),
                onset_ms,
                score,
            });
        }
    }
    let mut anomalies: Vec<ServiceOnset> = onsets.into_values().collect();
    if anomalies.is_empty() {
        let mut first: BTreeMap<&str, (i64, f64)> = BTreeMap::new();
        for ev in &logs {
            if let (Some(t), Some(service)) = (ev.observed_at, ev.service.as_deref()) {
                let t = t.timestamp_millis();
                let e = first.entry(service).or_insert((t, 0.0));
                e.0 = e.0.min(t);
                e.1 += ev.strength * 100.0;
            }
        }
        anomalies = first
            .into_iter()
            .map(|(service, (onset_ms, score))| ServiceOnset {
                service: service.to_owned(),
                onset_ms,
                score,
            })
            .collect();
    }
    SuspectEvidence {
        frames,
        tokens,
        anomalies,
        onset_ms: None,
        affected: incident.services().to_vec(),
        dependencies: graph.edges(),
    }
}

/// The graph with the edges the log findings add: an error that names
/// another service is a call to it.
fn graph_with_calls(base: Option<&DependencyGraph>, evidence: &[Evidence]) -> DependencyGraph {
    let mut graph = base.cloned().unwrap_or_default();
    for e in evidence.iter().filter(|e| e.kind == EvidenceKind::Log) {
        if let Some(service) = e.service.as_deref() {
            for callee in names_of(e) {
                graph.add(service, &callee);
            }
        }
    }
    graph
}

/// The services a log finding's error names (`data.names`).
fn names_of(e: &Evidence) -> Vec<String> {
    e.data["names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The code agent's share: the bundle's deploys, config and flag changes
/// and commits ranked on what is known when it runs (the incident's
/// services and window, and whatever evidence earlier rounds found), the
/// best [`SUSPECTS_KEPT`] labelled `G1..`. The coordinator's [`link`]
/// ranks them again against every symptom.
#[must_use]
pub fn candidate_changes(ctx: &BundleContext, known_evidence: &[Evidence]) -> Vec<Evidence> {
    let graph = graph_with_calls(Some(&ctx.graph), known_evidence);
    let mut signals = suspect_signals(&ctx.inputs.incident, known_evidence, &graph);
    if signals.anomalies.is_empty() {
        // Nothing has moved yet as far as this agent knows: time the
        // changes against the reported window.
        signals.onset_ms = Some(ctx.inputs.incident.window().start().timestamp_millis());
    }
    let commits = ctx.inputs.commits.as_deref().unwrap_or(&[]);
    let suspects = rank_suspects(
        &ctx.inputs.changes,
        commits,
        &signals,
        &RankConfig::default(),
    );
    change_evidence(&suspects, &ctx.inputs.changes, CANDIDATE_LETTER)
}

/// What the coordinator's cross-kind step makes of every agent's evidence.
#[derive(Debug)]
pub struct Linked {
    /// The evidence as the ranking weighs it, in the order the analyzers
    /// find it (logs, metrics, linked changes `C1..`, database): log
    /// findings that name a failing callee count for the callee
    /// (`ranking.about`), and the code agent's own candidates are replaced
    /// by the linked suspects when the bundle's changes are at hand.
    pub evidence: Vec<Evidence>,
    /// The linked change suspects as evidence (`C1..`), new records the
    /// coordinator reports.
    pub suspects_evidence: Vec<Evidence>,
    /// Dependencies: the bundle's, plus the calls log findings name.
    pub graph: DependencyGraph,
    /// Change suspects, best first.
    pub suspects: Vec<Suspect>,
    /// The change log the suspects index into.
    pub changes: Vec<ChangeRecord>,
}

/// Where a kind's findings come in the analyzers' order.
fn kind_order(kind: EvidenceKind) -> u8 {
    match kind {
        EvidenceKind::Log => 0,
        EvidenceKind::Metric => 1,
        EvidenceKind::Change => 2,
        EvidenceKind::Database => 3,
        EvidenceKind::Trace => 4,
        EvidenceKind::Knowledge => 5,
        EvidenceKind::Absence => 6,
    }
}

/// The number of a label (`12` of `L12`), for ordering.
fn label_number(e: &Evidence) -> u64 {
    e.label
        .as_deref()
        .map(|l| l.trim_start_matches(|c: char| !c.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The coordinator's cross-kind step over every agent's evidence: with
/// the bundle (`ctx`), the changes are ranked against the symptoms into
/// linked suspects (replacing the code agent's candidates); then errors
/// of a caller that name a callee with trouble of its own are counted for
/// the callee. Knowledge and absences are left out: they point at no
/// fault. The result's order does not depend on the order agents
/// reported in.
#[must_use]
pub fn link(ctx: Option<&BundleContext>, incident: &Incident, evidence: &[Evidence]) -> Linked {
    let relinked = ctx.is_some();
    let mut view: Vec<Evidence> = evidence
        .iter()
        .filter(|e| match e.kind {
            EvidenceKind::Log | EvidenceKind::Metric | EvidenceKind::Database => true,
            EvidenceKind::Trace => true,
            EvidenceKind::Change => !relinked,
            EvidenceKind::Knowledge | EvidenceKind::Absence => false,
        })
        .cloned()
        .collect();
    view.sort_by(|a, b| {
        kind_order(a.kind)
            .cmp(&kind_order(b.kind))
            .then(label_number(a).cmp(&label_number(b)))
    });
    let graph = graph_with_calls(ctx.map(|c| &c.graph), &view);
    let (suspects, changes, suspects_evidence) = match ctx {
        Some(ctx) => {
            let signals = suspect_signals(incident, &view, &graph);
            let commits = ctx.inputs.commits.as_deref().unwrap_or(&[]);
            let changes = ctx.inputs.changes.clone();
            let suspects = rank_suspects(&changes, commits, &signals, &RankConfig::default());
            let found = change_evidence(&suspects, &changes, SUSPECT_LETTER);
            (suspects, changes, found)
        }
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let at = view
        .iter()
        .position(|e| kind_order(e.kind) > kind_order(EvidenceKind::Change))
        .unwrap_or(view.len());
    view.splice(at..at, suspects_evidence.iter().cloned());
    attribute_to_callees(&mut view);
    Linked {
        evidence: view,
        suspects_evidence,
        graph,
        suspects,
        changes,
    }
}

/// The line of a message that names the error: the first, except for
/// Python tracebacks, which name it on the last.
fn key_line(text: &str) -> &str {
    if text.trim_start().starts_with("Traceback") {
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    } else {
        text.lines().next().unwrap_or("")
    }
}

/// The part of a template that stands for the key line of its example: the
/// miner joins a multi-line message into one token list, so the key line's
/// token count says how many template tokens to keep (from the start, or
/// from the end for a traceback).
fn key_template(template: &str, example: &str) -> String {
    let tokens: Vec<&str> = template.split_whitespace().collect();
    if example.lines().nth(1).is_none() {
        return tokens.join(" ");
    }
    let n = key_line(example)
        .split_whitespace()
        .count()
        .max(1)
        .min(tokens.len());
    if example.trim_start().starts_with("Traceback") {
        tokens[tokens.len() - n..].join(" ")
    } else {
        tokens[..n].join(" ")
    }
}

/// A regular expression (Oniguruma, as jq's `test`) matching the messages
/// of a template line: literal parts escaped, `<*>` as `.*`, spaces as
/// `\s+`.
fn template_regex(line: &str) -> String {
    line.split(WILDCARD)
        .map(|part| {
            part.split(' ')
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"\s+")
        })
        .collect::<Vec<_>>()
        .join(".*")
}

fn log_query(
    service: &str,
    level: Option<&str>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    line: &str,
) -> String {
    let mut conds = vec![
        format!(".\"@timestamp\" >= {}", jq_string(&rfc3339(start))),
        format!(".\"@timestamp\" <= {}", jq_string(&rfc3339(end))),
    ];
    if let Some(l) = level {
        conds.push(format!(
            "((.\"log.level\" // \"\") | ascii_downcase) == {}",
            jq_string(&l.to_ascii_lowercase())
        ));
    }
    conds.push(format!(
        "(.message | test({}))",
        jq_string(&template_regex(line))
    ));
    let program = format!("select({})", conds.join(" and "));
    format!(
        "jq -c {} {}",
        shell_quote(&program),
        shell_quote(&format!("logs/{service}.jsonl"))
    )
}

/// The log findings: per service, error templates new or risen in the
/// incident against the baseline, earliest first, labelled `L1..`. Each
/// carries in `data` what the change ranking and the victim attribution
/// need later: `frames` (stack frames not seen in an earlier finding),
/// `error_lines` (the example's lines without frames) and `names` (other
/// known services its error names).
#[must_use]
pub fn log_evidence(ctx: &BundleContext) -> Vec<Evidence> {
    let inputs = &ctx.inputs;
    let baseline_end = ctx.baseline_end;
    let end = ctx.end;
    let mut out: Vec<Evidence> = Vec::new();
    let mut by_service: BTreeMap<&str, Vec<&rootcause_tools::logs::LogRecord>> = BTreeMap::new();
    for r in &inputs.logs {
        by_service.entry(r.service.as_str()).or_default().push(r);
    }
    let mut seen_frames = BTreeSet::new();
    let mut found: Vec<(String, TemplateChange)> = Vec::new();
    for (service, records) in &by_service {
        let first = records.first().map_or(baseline_end, |r| r.timestamp);
        fn view(r: &rootcause_tools::logs::LogRecord) -> rootcause_analysis::logs::LogRecord<'_> {
            rootcause_analysis::logs::LogRecord {
                timestamp: Some(r.timestamp),
                level: r.level.as_deref(),
                message: &r.message,
            }
        }
        let config = DiffConfig {
            baseline_seconds: Some(((baseline_end - first).num_seconds() as f64).max(60.0)),
            incident_seconds: Some(((end - baseline_end).num_seconds() as f64).max(60.0)),
            ..DiffConfig::default()
        };
        let Ok(diff) = diff_templates(
            records
                .iter()
                .filter(|r| r.timestamp < baseline_end)
                .map(|r| view(r)),
            records
                .iter()
                .filter(|r| r.timestamp >= baseline_end && r.timestamp <= end)
                .map(|r| view(r)),
            &config,
        ) else {
            continue;
        };
        for change in diff.changes {
            let error = change.level.as_deref().is_some_and(|l| level_rank(l) >= 4);
            if error && matches!(change.kind, ChangeKind::New | ChangeKind::Rose) {
                found.push(((*service).to_owned(), change));
            }
        }
    }
    // Earliest first: the first error to appear is the one to read first.
    found.sort_by_key(|(_, c)| c.first_seen);
    // Templates that differ only past the line naming the error (deeper or
    // shallower stack traces) are one error: merged, counts added.
    let mut merged: Vec<(String, String, TemplateChange)> = Vec::new();
    for (service, change) in found {
        let example = change.examples.first().cloned().unwrap_or_default();
        let line = key_template(&change.template, &example);
        match merged
            .iter_mut()
            .find(|(s, l, _)| *s == service && *l == line)
        {
            Some((_, _, into)) => {
                into.incident_count += change.incident_count;
                into.baseline_count += change.baseline_count;
                if change.kind == ChangeKind::Rose {
                    into.kind = ChangeKind::Rose;
                }
                into.rate_ratio = None;
            }
            None => merged.push((service, line, change)),
        }
    }
    for (service, line, change) in merged {
        if change.incident_count < MIN_LOG_LINES {
            continue;
        }
        let id = next_label(&out, 'L');
        let example = change.examples.first().cloned().unwrap_or_default();
        let strength = ((change.incident_count as f64).ln() / 100f64.ln()).min(1.0);
        // What the ranking reads: the template and the example's first
        // lines (the error's words, not its frames).
        let text = format!(
            "{line} {}",
            example.lines().take(3).collect::<Vec<_>>().join(" ")
        );
        let mut ranking = RankingHints {
            in_baseline: change.kind == ChangeKind::Rose,
            ..RankingHints::default()
        };
        // An error that names another service is about the call to it: it
        // says the callee failed, not that this service's code or config
        // changed.
        let named = named_services(&service, &error_text(&example), &ctx.known);
        if !named.is_empty() {
            let mut cats: Vec<Category> = category_cues(&text)
                .into_iter()
                .map(|(c, _)| c)
                .filter(|c| !matches!(c, Category::BadDeploy | Category::ConfigChange))
                .collect();
            if !cats.contains(&Category::DependencyFailure) {
                cats.push(Category::DependencyFailure);
            }
            ranking.categories = cats;
        }
        ranking.cue_text = Some(text);
        let mut frames = Vec::new();
        if let Some(x) = &change.exception {
            for f in &x.frames {
                if let Some(file) = &f.file
                    && seen_frames.insert((file.clone(), f.line, f.function.clone()))
                {
                    frames.push(json!({"file": file, "line": f.line, "function": f.function}));
                }
            }
        }
        let error_lines: Vec<&str> = example
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                !t.starts_with("at ") && !t.starts_with("File ")
            })
            .collect();
        let kind_text = match change.kind {
            ChangeKind::New => format!("new since the baseline, {} lines", change.incident_count),
            _ => format!(
                "rose {}x to {} lines (baseline {})",
                change
                    .rate_ratio
                    .map_or_else(|| "?".to_owned(), |r| format!("{r:.0}")),
                change.incident_count,
                change.baseline_count
            ),
        };
        let exception = change.exception.as_ref().map(|x| {
            json!({
                "type": x.exception_type,
                "message": x.message,
                "root_cause": x.root_cause,
                "top_frames": x.top_frames(5),
            })
        });
        let mut summary = format!(
            "{service}: {} log template {kind_text}: {}",
            change.level.as_deref().unwrap_or("error"),
            cut(&line, 200)
        );
        if let Some(x) = &change.exception
            && !line.contains(&x.exception_type)
        {
            summary.push_str(&format!(
                " ({}: {})",
                x.exception_type,
                cut(&x.message, 120)
            ));
        }
        out.push(Evidence {
            label: Some(id),
            service: Some(service.clone()),
            query: Some(log_query(
                &service,
                change.level.as_deref(),
                baseline_end,
                end,
                &line,
            )),
            observed_at: change.first_seen,
            strength,
            ranking,
            data: json!({
                "template": change.template,
                "change": change.kind,
                "incident_count": change.incident_count,
                "baseline_count": change.baseline_count,
                "rate_ratio": change.rate_ratio,
                "p_value": change.p_value,
                "example": cut(&example, 1000),
                "exception": exception,
                "names": named,
                "frames": frames,
                "error_lines": error_lines,
            }),
            ..Evidence::new(
                EvidenceKind::Log,
                summary,
                format!("bundle:logs/{service}.jsonl"),
            )
        });
    }
    out
}

/// Errors of a caller that name a callee with trouble of its own are
/// evidence about the callee: "payments returned 503" in checkout's log
/// says payments failed. Such a finding moves to the callee (the one with
/// the most findings, when it names several), keeping only the categories
/// that describe a serving component's trouble (database, network,
/// resources); without one, it supports all of the callee's hypotheses a
/// little. A callee without findings (an external API, a service the
/// bundle has no data for) leaves the finding where it is: then the caller
/// is where the dependency failure is handled.
fn attribute_to_callees(evidence: &mut [Evidence]) {
    let mut own: BTreeMap<String, usize> = BTreeMap::new();
    for e in evidence.iter() {
        if let Some(service) = e.counted_service() {
            *own.entry(service.to_owned()).or_default() += 1;
        }
    }
    let calls: Vec<(Option<String>, Vec<String>)> = evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Log)
        .map(|e| (e.label.clone(), names_of(e)))
        .filter(|(_, named)| !named.is_empty())
        .collect();
    for (id, named) in calls {
        let Some(callee) = named
            .iter()
            .filter(|s| own.get(s.as_str()).is_some_and(|n| *n > 0))
            .max_by_key(|s| own.get(s.as_str()).copied().unwrap_or(0))
            .cloned()
        else {
            continue;
        };
        let Some(e) = evidence
            .iter_mut()
            .find(|e| e.kind == EvidenceKind::Log && e.label == id)
        else {
            continue;
        };
        let caller = e.service.clone().unwrap_or_default();
        e.ranking.categories = category_cues(e.cue_text())
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| {
                matches!(
                    c,
                    Category::Database | Category::Network | Category::ResourceExhaustion
                )
            })
            .collect();
        if e.ranking.categories.is_empty() {
            // No cue words: the ranking spreads it over the callee's
            // hypotheses at a quarter weight.
            e.ranking.cue_text = Some(format!("{callee} failed for its caller {caller}"));
        }
        e.summary.push_str(&format!(
            " [names {callee}, which shows trouble of its own: counted as evidence about {callee}]"
        ));
        e.data["about"] = json!(callee);
        e.ranking.about = Some(callee);
    }
}

/// The lines of a message that carry words (stack frame lines dropped).
fn error_text(message: &str) -> String {
    message
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("at ") && !t.starts_with("File ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Known services other than `service` that `text` names as a whole word
/// (`http://inventory:8080`, `payments returned 503`, `catalog.get(..)`).
fn named_services(service: &str, text: &str, known: &BTreeSet<String>) -> Vec<String> {
    known
        .iter()
        .filter(|k| k.as_str() != service && k.len() >= 3)
        .filter(|k| {
            service_mentions(text, k).any(|i| {
                // `for checkout 5d2f..`: a name followed by an id is an
                // entity (a checkout, an order), not the service.
                let rest = &text[i + k.len()..];
                let id_follows = rest.starts_with(' ')
                    && rest
                        .split_whitespace()
                        .next()
                        .is_some_and(|t| t.chars().any(|c| c.is_ascii_digit()));
                !id_follows
            })
        })
        .cloned()
        .collect()
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// The best [`SUSPECTS_KEPT`] suspects with a positive score as evidence,
/// labelled with `letter` and a number.
fn change_evidence(suspects: &[Suspect], changes: &[ChangeRecord], letter: char) -> Vec<Evidence> {
    let mut added = Vec::new();
    for s in suspects.iter().take(SUSPECTS_KEPT) {
        if s.score <= 0.0 {
            continue;
        }
        let id = format!("{letter}{}", added.len() + 1);
        added.push(suspect_record(s, changes, id));
    }
    added
}

/// One change suspect as evidence labelled `label`: the commit or change
/// record it is, the query that shows it, its score and reasons.
#[must_use]
pub fn suspect_record(s: &Suspect, changes: &[ChangeRecord], label: String) -> Evidence {
    let id = label;
    {
        let change = s.change.and_then(|i| changes.get(i));
        let kind = change.map_or("commit", |c| c.kind.as_str());
        let strength = (s.score / 100.0).min(1.0);
        let query = match (&s.commit, change) {
            (Some(commit), _) => format!(
                "git clone -q repo.bundle /tmp/rc-repo && git -C /tmp/rc-repo show --stat {}",
                shell_quote(commit)
            ),
            (None, Some(c)) => format!(
                "jq -c {} changes.jsonl",
                shell_quote(&format!(
                    "select(.service == {} and .kind == {} and (.ts | startswith({})))",
                    jq_string(&c.service),
                    jq_string(&c.kind),
                    jq_string(&c.ts.format("%Y-%m-%dT%H:%M:%S").to_string())
                ))
            ),
            (None, None) => "cat changes.jsonl".to_owned(),
        };
        let reasons: Vec<String> = s.reasons.iter().map(|r| r.text.clone()).collect();
        let summary = format!(
            "{} (suspect score {:.0}): {}",
            s.title,
            s.score,
            reasons
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        let source = if s.commit.is_some() {
            "bundle:repo.bundle"
        } else {
            "bundle:changes.jsonl"
        };
        Evidence {
            label: Some(id),
            service: Some(s.service.clone()),
            query: Some(query),
            // The ranking reads a change's kind, not its description.
            ranking: RankingHints {
                cue_text: Some(format!("{kind} {}", s.title)),
                ..RankingHints::default()
            },
            observed_at: s.effective_ms.and_then(ms_to_time),
            strength,
            data: json!({
                "commit": s.commit,
                "change_kind": kind,
                "version": change.and_then(|c| c.version.clone()),
                "description": change.map(|c| c.description.clone()),
                "score": s.score,
                "reasons": reasons,
            }),
            ..Evidence::new(EvidenceKind::Change, summary, source)
        }
    }
}

/// The service that stands for the database of `db/` snapshots: a known
/// service named like a database (`postgres`, `orders-db`), else
/// `postgres` (the snapshots are PostgreSQL views).
fn database_service(known: &BTreeSet<String>) -> String {
    known
        .iter()
        .find(|s| {
            let l = s.to_ascii_lowercase();
            l.contains("postgres") || l.ends_with("-db") || l.ends_with("db") && l.len() > 2
        })
        .cloned()
        .unwrap_or_else(|| "postgres".to_owned())
}

/// The known service an `application_name` belongs to (`reporting-cron`
/// -> `reporting`), if any.
fn service_of_application(app: &str, known: &BTreeSet<String>) -> Option<String> {
    known
        .iter()
        .filter(|s| {
            app == s.as_str()
                || app
                    .strip_prefix(s.as_str())
                    .is_some_and(|rest| rest.starts_with(['-', '_', '.']))
        })
        .max_by_key(|s| s.len())
        .cloned()
}

/// When a session's transaction began: its snapshot time less its
/// `xact_seconds`.
fn started_at(snapshot_at: &Value, row: &Value) -> Option<DateTime<Utc>> {
    let secs = row["xact_seconds"].as_f64()?;
    let at = DateTime::parse_from_rfc3339(snapshot_at.as_str()?)
        .ok()?
        .with_timezone(&Utc);
    Some(at - Duration::milliseconds((secs * 1000.0) as i64))
}

/// Records that a database diagnostic failed: an absence naming the
/// diagnostic and its error, so the report says the database evidence is
/// partial instead of silently having less of it.
fn database_failed(out: &mut Vec<Evidence>, diagnostic: &str, error: &str) {
    let n = out
        .iter()
        .filter(|e| e.kind == EvidenceKind::Absence)
        .count();
    out.push(Evidence {
        label: Some(format!("A{}", ALL_SOURCES.len() + 1 + n)),
        query: Some("ls db/".to_owned()),
        data: json!({"source": "db/", "diagnostic": diagnostic, "error": error}),
        ..Evidence::new(
            EvidenceKind::Absence,
            format!(
                "database diagnostic {diagnostic} failed: {error}; the database evidence is partial"
            ),
            "bundle:db",
        )
    });
}

/// One call of the database diagnostics, as the `sql_diagnostics` tool
/// would take it, for the agent to report (`tool_called` / `tool_result`).
#[derive(Debug, Clone, PartialEq)]
pub enum DbCall {
    /// About to run `diagnostic`.
    Calling {
        /// The diagnostic's name (`lock_waits`, `long_running_queries`).
        diagnostic: String,
        /// The `sql_diagnostics` arguments that run the same diagnostic.
        arguments: Value,
    },
    /// It returned.
    Returned {
        /// The diagnostic's name.
        diagnostic: String,
        /// Whether it succeeded.
        ok: bool,
        /// Rows found, or the error.
        summary: String,
    },
}

/// The database findings of the `db/` snapshots: who waits on locks and
/// who holds them, transactions open too long (labelled `D1..`); a
/// diagnostic that fails becomes an absence naming it. `on_call` hears
/// each diagnostic before it runs and when it returns; the id it gives a
/// call (the `tool_called` event's) is recorded on the findings it
/// produced.
pub fn database_evidence(
    ctx: &BundleContext,
    on_call: &mut dyn FnMut(DbCall) -> Option<EventId>,
) -> Vec<Evidence> {
    let inputs = &ctx.inputs;
    let known = &ctx.known;
    let mut out: Vec<Evidence> = Vec::new();
    if !inputs.has("db/") {
        return out;
    }
    let a = &mut out;
    let window: TimeWindow = inputs.incident.window();
    let tool_ctx = ToolContext::new(inputs.bundle.tenant().clone(), window);
    let db = BundleDb::new(std::sync::Arc::new(inputs.bundle.clone()));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            database_failed(a, "lock_waits, long_running_queries", &e.to_string());
            return out;
        }
    };
    // A diagnostic that fails is reported as partial evidence with its
    // error; the others still run.
    let mut run = |a: &mut Vec<Evidence>, d: Diagnostic| {
        let arguments = match &d {
            Diagnostic::LongRunningQueries { min_seconds } => {
                json!({"query": d.name(), "min_duration_seconds": min_seconds, "limit": 200})
            }
            _ => json!({"query": d.name(), "limit": 200}),
        };
        let call = on_call(DbCall::Calling {
            diagnostic: d.name().to_owned(),
            arguments,
        });
        match rt.block_on(db.run(&tool_ctx, &d, 200)) {
            Ok(rows) => {
                on_call(DbCall::Returned {
                    diagnostic: d.name().to_owned(),
                    ok: true,
                    summary: format!("{} rows", rows.rows.len()),
                });
                Some((rows, call))
            }
            Err(e) => {
                on_call(DbCall::Returned {
                    diagnostic: d.name().to_owned(),
                    ok: false,
                    summary: e.to_string(),
                });
                database_failed(a, d.name(), &e.to_string());
                None
            }
        }
    };
    let db_service = database_service(known);
    let mut next = 1;
    let push = |a: &mut Vec<Evidence>, service: &str, mut item: Evidence| {
        item.service = Some(service.to_owned());
        item.ranking.categories = vec![Category::Database];
        a.push(item);
    };

    if let Some((waits, call)) = run(a, Diagnostic::LockWaits)
        && !waits.rows.is_empty()
    {
        // Who blocks the most waiters, and since when.
        let mut blockers: BTreeMap<i64, (usize, Value)> = BTreeMap::new();
        for w in &waits.rows {
            for b in w["blockers"].as_array().into_iter().flatten() {
                if let Some(pid) = b["pid"].as_i64() {
                    let e = blockers.entry(pid).or_insert((0, b.clone()));
                    e.0 += 1;
                }
            }
        }
        let top = blockers
            .iter()
            .max_by_key(|(_, (n, _))| *n)
            .map(|(pid, (n, b))| (*pid, *n, b.clone()));
        let started = top
            .as_ref()
            .and_then(|(_, _, b)| started_at(&waits.rows[0]["snapshot_at"], b));
        let n = waits.rows.len();
        let mut summary = format!("{n} sessions waiting on locks in the database snapshot");
        if let Some((pid, count, b)) = &top {
            summary.push_str(&format!(
                "; pid {pid} ({}, {}, transaction open {}s) blocks {count} of them: {}",
                b["application_name"].as_str().unwrap_or("?"),
                b["state"].as_str().unwrap_or("?"),
                b["xact_seconds"].as_f64().unwrap_or(0.0),
                cut(&b["query"].as_str().unwrap_or("").replace('\n', " "), 160)
            ));
        }
        let strength = (0.5 + n as f64 / 20.0).min(1.0);
        let item = Evidence {
            label: Some(format!("D{next}")),
            query: Some(waits.query.clone()),
            tool_call: call,
            observed_at: started,
            strength,
            data: json!({"waiting_sessions": n, "blocker": top.as_ref().map(|(_, _, b)| b.clone())}),
            ..Evidence::new(EvidenceKind::Database, summary, "bundle:db")
        };
        next += 1;
        push(a, &db_service, item);
        // The client holding the locks, when it is a known service.
        if let Some((pid, count, b)) = &top
            && let Some(app) = b["application_name"].as_str()
            && let Some(service) = service_of_application(app, known)
            && service != db_service
        {
            let summary = format!(
                "{service} ({app}, pid {pid}) holds the locks {count} database sessions wait for ({}, transaction open {}s)",
                b["state"].as_str().unwrap_or("?"),
                b["xact_seconds"].as_f64().unwrap_or(0.0)
            );
            let item = Evidence {
                label: Some(format!("D{next}")),
                query: Some(waits.query.clone()),
                tool_call: call,
                observed_at: started,
                strength: strength * 0.6,
                data: b.clone(),
                ..Evidence::new(EvidenceKind::Database, summary, "bundle:db")
            };
            next += 1;
            push(a, &service, item);
        }
    }
    if let Some((long, call)) = run(
        a,
        Diagnostic::LongRunningQueries {
            min_seconds: LONG_TRANSACTION_SECONDS,
        },
    ) && !long.rows.is_empty()
    {
        let first = &long.rows[0];
        let n = long.rows.len();
        let summary = format!(
            "{n} sessions with a query or transaction open over {LONG_TRANSACTION_SECONDS:.0}s; longest: {} ({}, transaction open {}s): {}",
            first["application_name"].as_str().unwrap_or("?"),
            first["state"].as_str().unwrap_or("?"),
            first["xact_seconds"].as_f64().unwrap_or(0.0),
            cut(
                &first["query"].as_str().unwrap_or("").replace('\n', " "),
                160
            )
        );
        let item = Evidence {
            label: Some(format!("D{next}")),
            query: Some(long.query.clone()),
            tool_call: call,
            observed_at: started_at(&first["snapshot_at"], first),
            strength: (0.3 + n as f64 / 20.0).min(0.8),
            data: json!({"sessions": long.rows}),
            ..Evidence::new(EvidenceKind::Database, summary, "bundle:db")
        };
        push(a, &db_service, item);
    }
    out
}

#[cfg(test)]
mod tests {

    use super::*;

    fn known(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn key_template_keeps_the_line_that_names_the_error() {
        let java =
            "Reservation failed for order 42\njava.io.IOException: refused\n\tat a.B.c(B.java:1)";
        let template =
            "Reservation failed for order <*> java.io.IOException: refused at a.B.c(B.java:<*>)";
        assert_eq!(
            key_template(template, java),
            "Reservation failed for order <*>"
        );
        let py =
            "Traceback (most recent call last):\n  File \"x.py\", line 3, in f\nKeyError: 'sku'";
        let template = "Traceback (most recent call last): File <*> line <*> in f KeyError: <*>";
        assert_eq!(key_template(template, py), "KeyError: <*>");
        assert_eq!(key_template("a <*> b", "a 1 b"), "a <*> b");
    }

    #[test]
    fn template_regex_escapes_literals_and_widens_wildcards() {
        let re = template_regex("GET /x?(y) <*> in <*>ms");
        assert_eq!(re, r"GET\s+/x\?\(y\)\s+.*\s+in\s+.*ms");
        let r = regex::Regex::new(&re).unwrap();
        assert!(r.is_match("GET /x?(y)  500 in 12ms"));
        assert!(!r.is_match("GET /x?y 500 in 12ms"));
    }

    #[test]
    fn named_services_are_whole_words_and_not_entities() {
        let k = known(&["checkout", "payments", "catalog", "inventory"]);
        assert_eq!(
            named_services("checkout", "Payment step failed: payments returned 503", &k),
            vec!["payments"]
        );
        // An id after the name: a checkout, not the service.
        assert!(named_services("payments", "authorize failed for checkout 5d2f-77", &k).is_empty());
        // Part of a longer identifier is not a mention.
        assert!(
            named_services("search", "catalog_client.py failed; inventory-db down", &k).is_empty()
        );
        assert_eq!(
            named_services(
                "search",
                "POST \"https://catalog.shop.svc:8443/v1\" failed",
                &k
            ),
            vec!["catalog"]
        );
        // A service never names itself.
        assert!(named_services("inventory", "inventory: store failed", &k).is_empty());
    }

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("logs/a.jsonl"), "logs/a.jsonl");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn database_service_prefers_a_known_database_name() {
        assert_eq!(database_service(&known(&["api", "orders-db"])), "orders-db");
        assert_eq!(database_service(&known(&["api", "postgres"])), "postgres");
        assert_eq!(database_service(&known(&["api"])), "postgres");
        assert_eq!(
            service_of_application("reporting-cron", &known(&["reporting", "report"])),
            Some("reporting".to_owned())
        );
        assert_eq!(service_of_application("psql", &known(&["reporting"])), None);
    }
}
