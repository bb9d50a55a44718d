//! Remediation steps for a hypothesis: one general rule per category,
//! filled in with what the evidence names (the suspect release or commit,
//! the config change, the blocking database session), plus the bundle's
//! runbooks and past incidents that share the most words with it.
//!
//! Matching is word overlap weighted by rarity across the bundle's
//! documents (a word every runbook has says nothing); the knowledge base's
//! full-text search replaces it when the knowledge agent runs.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{SecondsFormat, TimeZone, Utc};
use rootcause_analysis::changes::{ChangeRecord, Suspect, short_commit};
use rootcause_analysis::hypotheses::Category;
use rootcause_tools::knowledge::{PastIncident, terms};
use serde::Serialize;

use rootcause_diagnosis::Evidence;

use super::evidence::Analysis;
use super::inputs::Runbook;

/// The change a hypothesis blames, when its category is about a change.
#[derive(Debug, Clone, Serialize)]
pub struct SuspectChange {
    /// `commit`, `deploy`, `config`, `flag`, ...
    pub kind: String,
    /// What it is (`commit 717a18d "..." shipped by deploy cart v3.7.0`).
    pub title: String,
    /// Commit id, when a commit is blamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Released version, for deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When it took effect (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<String>,
    /// The change ranking's score.
    pub score: f64,
}

/// A runbook or past incident that matches a hypothesis.
#[derive(Debug, Clone, Serialize)]
pub struct KnowledgeMatch {
    /// Runbook path or past incident id.
    pub reference: String,
    /// Its title.
    pub title: String,
    /// Overlap score (rarity-weighted shared words).
    pub score: f64,
    /// What resolved it, for past incidents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// Words that every incident text has.
const STOP: &[&str] = &[
    "the", "and", "for", "with", "from", "that", "this", "was", "were", "are", "not", "into",
    "after", "before", "when", "then", "than", "its", "has", "have", "had", "but", "all", "any",
    "one", "two", "per", "via", "out", "off", "on", "in", "at", "of", "to", "is", "it", "be", "by",
    "or", "an", "as", "up", "no", "if", "rose", "fell", "stayed", "briefly", "robust", "lines",
    "line", "new", "since", "baseline", "template", "log", "error", "errors", "rate", "level",
    "score", "suspect",
];

/// Words that say what each category is about, added to the hypothesis
/// text when matching documents.
fn category_words(c: Category) -> &'static str {
    match c {
        Category::BadDeploy => "deploy release rollback regression",
        Category::ConfigChange => "config configuration flag feature rollback",
        Category::ResourceExhaustion => "memory oom oomkilled pool exhausted limit crashloop",
        Category::DependencyFailure => "dependency provider upstream timeout degradation",
        Category::Database => "database postgres lock query slow connection",
        Category::Network => "network tls certificate dns expired rotation",
        Category::Capacity => "capacity traffic surge scale throttle",
    }
}

pub(crate) fn words(text: &str) -> BTreeSet<String> {
    terms(text)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !STOP.contains(&w.as_str()))
        .collect()
}

/// Scores documents (title, body) against a query: the sum over shared
/// words of their rarity among the documents, title words counting twice.
pub(crate) fn rank_documents(
    query: &BTreeSet<String>,
    docs: &[(String, String)],
) -> Vec<(usize, f64)> {
    let doc_words: Vec<(BTreeSet<String>, BTreeSet<String>)> =
        docs.iter().map(|(t, b)| (words(t), words(b))).collect();
    let mut df: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, b) in &doc_words {
        for w in t.union(b) {
            *df.entry(w.as_str()).or_default() += 1;
        }
    }
    let n = docs.len() as f64;
    let mut out: Vec<(usize, f64)> = doc_words
        .iter()
        .enumerate()
        .map(|(i, (t, b))| {
            let score: f64 = query
                .iter()
                .filter(|w| t.contains(*w) || b.contains(*w))
                .map(|w| {
                    let idf = (1.0 + n / df.get(w.as_str()).copied().unwrap_or(1) as f64).ln();
                    if t.contains(w) { 2.0 * idf } else { idf }
                })
                .sum();
            (i, score)
        })
        .filter(|(_, s)| *s > 0.0)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// The text a hypothesis is matched with: its service and category words
/// and its strongest evidence.
fn hypothesis_words(service: &str, category: Category, evidence: &[&Evidence]) -> BTreeSet<String> {
    let mut text = format!(
        "{service} {} {}",
        category.as_str(),
        category_words(category)
    );
    for e in evidence.iter().take(4) {
        text.push(' ');
        text.push_str(&e.summary);
    }
    words(&text)
}

/// Runbooks for a hypothesis, best first (at most two, and only those
/// that share more than the category's own words).
pub fn matching_runbooks(
    service: &str,
    category: Category,
    evidence: &[&Evidence],
    runbooks: &[Runbook],
) -> Vec<KnowledgeMatch> {
    let query = hypothesis_words(service, category, evidence);
    let docs: Vec<(String, String)> = runbooks
        .iter()
        .map(|r| (r.title.clone(), r.body.clone()))
        .collect();
    let ranked = rank_documents(&query, &docs);
    let best = ranked.first().map_or(0.0, |r| r.1);
    ranked
        .into_iter()
        .filter(|(_, s)| *s >= 0.5 * best && *s >= 3.0)
        .take(2)
        .map(|(i, score)| KnowledgeMatch {
            reference: runbooks[i].file.clone(),
            title: runbooks[i].title.clone(),
            score: (score * 10.0).round() / 10.0,
            resolution: None,
        })
        .collect()
}

/// Past incidents of the same category that share words with the
/// hypothesis, best first (at most two).
pub fn similar_incidents(
    service: &str,
    category: Category,
    evidence: &[&Evidence],
    past: &[PastIncident],
) -> Vec<KnowledgeMatch> {
    let query = hypothesis_words(service, category, evidence);
    let docs: Vec<(String, String)> = past
        .iter()
        .map(|p| {
            (
                p.title.clone(),
                format!("{} {} {}", p.symptoms, p.root_cause, p.resolution),
            )
        })
        .collect();
    rank_documents(&query, &docs)
        .into_iter()
        .filter(|(i, s)| past[*i].category == Some(category) && *s >= 3.0)
        .take(2)
        .map(|(i, score)| KnowledgeMatch {
            reference: past[i].id.clone(),
            title: past[i].title.clone(),
            score: (score * 10.0).round() / 10.0,
            resolution: Some(past[i].resolution.clone()),
        })
        .collect()
}

fn when(ms: i64) -> Option<String> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The best change suspect on `service` that fits `category`: a commit or
/// deploy for `bad_deploy`, a config or flag change for `config_change`, a
/// change that took effect for `resource_exhaustion`; none otherwise.
pub fn suspect_for(
    service: &str,
    category: Category,
    analysis: &Analysis,
) -> Option<SuspectChange> {
    let kind_of = |s: &Suspect| -> String {
        s.change
            .and_then(|i| analysis.changes.get(i))
            .map_or_else(|| "commit".to_owned(), |c| c.kind.clone())
    };
    let fits = |s: &Suspect| {
        let kind = kind_of(s);
        match category {
            Category::BadDeploy => s.commit.is_some() || kind == "deploy",
            Category::ConfigChange => kind == "config" || kind == "flag",
            // A release or setting that took effect can exhaust resources.
            Category::ResourceExhaustion => s.effective_ms.is_some(),
            // Changes are not what these categories are about.
            _ => false,
        }
    };
    analysis
        .suspects
        .iter()
        .filter(|s| s.service == service && s.score > 0.0 && fits(s))
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .map(|s| {
            let change = s.change.and_then(|i| analysis.changes.get(i));
            SuspectChange {
                kind: if s.commit.is_some() {
                    "commit".to_owned()
                } else {
                    kind_of(s)
                },
                title: s.title.clone(),
                commit: s.commit.clone(),
                version: change.and_then(|c| c.version.clone()),
                effective_at: s.effective_ms.and_then(when),
                score: (s.score * 10.0).round() / 10.0,
            }
        })
}

/// The deploy of `service` before the one at `index`, with a version.
fn previous_release<'a>(
    changes: &'a [ChangeRecord],
    service: &str,
    before_ms: i64,
) -> Option<&'a ChangeRecord> {
    changes
        .iter()
        .filter(|c| {
            c.service == service
                && c.kind == "deploy"
                && c.ts_ms() < before_ms
                && c.version.is_some()
        })
        .max_by_key(|c| c.ts)
}

/// The change record behind a suspect, when the suspect is one.
fn suspect_change<'a>(
    suspect: Option<&SuspectChange>,
    analysis: &'a Analysis,
) -> Option<&'a ChangeRecord> {
    let s = suspect?;
    analysis
        .suspects
        .iter()
        .find(|x| x.title == s.title)
        .and_then(|x| x.change)
        .and_then(|i| analysis.changes.get(i))
}

/// Steps for a hypothesis, most urgent first.
pub fn steps(
    service: &str,
    category: Category,
    suspect: Option<&SuspectChange>,
    evidence: &[&Evidence],
    analysis: &Analysis,
) -> Vec<String> {
    let mut out = Vec::new();
    match category {
        Category::BadDeploy => {
            let deploy = suspect_change(suspect, analysis);
            match deploy {
                Some(d) => {
                    let prev = previous_release(&analysis.changes, service, d.ts_ms())
                        .and_then(|p| p.version.clone())
                        .map_or_else(|| "the previous release".to_owned(), |v| format!("the previous release {v}"));
                    out.push(format!(
                        "Roll back {service} from {} to {prev} (`kubectl rollout undo deployment/{service}` or your deploy tool); it went out at {}.",
                        d.version.clone().or_else(|| d.commit.clone()).unwrap_or_else(|| "the suspect release".to_owned()),
                        when(d.ts_ms()).unwrap_or_default()
                    ));
                }
                None => out.push(format!(
                    "Roll back the most recent release of {service} (`kubectl rollout undo deployment/{service}`)."
                )),
            }
            if let Some(commit) = suspect.and_then(|s| s.commit.as_deref()) {
                out.push(format!(
                    "Revert commit {} (`git revert {}`) and ship the fix through review; the evidence ties it to the errors ({}).",
                    short_commit(commit),
                    short_commit(commit),
                    suspect.map(|s| s.title.as_str()).unwrap_or("")
                ));
            }
            out.push(format!(
                "Confirm recovery: re-run the evidence queries above for {service}; the new error templates should stop and the error rate return to its baseline."
            ));
        }
        Category::ConfigChange => {
            let change = suspect_change(suspect, analysis);
            match change {
                Some(c) => out.push(format!(
                    "Revert the {} change of {service} made at {}: \"{}\".",
                    c.kind,
                    when(c.ts_ms()).unwrap_or_default(),
                    c.description
                )),
                None => out.push(format!(
                    "Revert the most recent configuration or feature-flag change of {service}."
                )),
            }
            out.push(format!(
                "Confirm recovery on {service}'s error rate, then add validation (or a staged rollout) for this setting before re-applying it."
            ));
        }
        Category::ResourceExhaustion => {
            out.push(format!(
                "Restore service: restart or scale out {service} (`kubectl rollout restart deployment/{service}`, more replicas) and, if needed, raise the exhausted limit (memory limit, pool size, file descriptors) temporarily."
            ));
            match suspect {
                Some(s) => out.push(format!(
                    "Find what grew: compare memory and connection usage before and after the recent change ({}); if it started the growth, roll it back.",
                    s.title
                )),
                None => out.push(format!(
                    "Find what grew: heap or memory profile, connection pool metrics and open files of {service} against the baseline."
                )),
            }
            out.push(format!(
                "Alert on {service}'s saturation (memory working set vs limit, pool usage) before it runs out."
            ));
        }
        Category::DependencyFailure => {
            out.push(format!(
                "Contain: make {service} degrade gracefully on the failing dependency (open its circuit breaker, serve a fallback, fail over to a secondary), and cap retries so they do not amplify the outage."
            ));
            out.push(format!(
                "Check the dependency {service} calls (its status page or its own diagnosis) and escalate to its owner with the error evidence below."
            ));
        }
        Category::Database => {
            let blocker = evidence
                .iter()
                .find_map(|e| e.data.get("blocker").filter(|b| !b.is_null()));
            if let Some(b) = blocker {
                out.push(format!(
                    "Release the locks: the session pid {} ({}, {}) blocks the others; if it is safe, `SELECT pg_terminate_backend({});` and stop the job that opened it.",
                    b["pid"],
                    b["application_name"].as_str().unwrap_or("?"),
                    b["state"].as_str().unwrap_or("?"),
                    b["pid"]
                ));
                out.push(
                    "Prevent a repeat: set `idle_in_transaction_session_timeout` and `lock_timeout` for that client, and keep long reports off `SELECT ... FOR UPDATE`.".to_owned(),
                );
            } else {
                out.push(format!(
                    "Find the expensive or blocking work on {service}: `pg_stat_activity` (long transactions, lock waits), `pg_stat_statements` (top statements); cancel or terminate what blocks production traffic."
                ));
                out.push(
                    "Fix the query (index, smaller batches) or the setting that made it slow, and set `statement_timeout` for the client.".to_owned(),
                );
            }
        }
        Category::Network => {
            out.push(format!(
                "Check {service}'s certificates, DNS and connectivity: `openssl s_client -connect {service}:443 -servername {service} </dev/null | openssl x509 -noout -subject -dates`, `kubectl get certificate -A`, `dig {service}`."
            ));
            out.push(format!(
                "Renew or rotate an expired or invalid certificate (or fix the DNS record / network policy), then restart the clients of {service} that cached the failure."
            ));
            out.push(
                "Alert on certificate expiry and failed renewals well before the deadline."
                    .to_owned(),
            );
        }
        Category::Capacity => {
            out.push(format!(
                "Add capacity: scale out {service} (raise replicas or the HPA maximum) and rate-limit the surge at the edge."
            ));
            out.push(
                "Find the traffic source (top clients, user agents, ASNs) and throttle or block abusive ones.".to_owned(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_shared_words_rank_a_document_first() {
        let docs = vec![
            (
                "Rolling back a deploy".to_owned(),
                "kubectl rollout undo; check errors".to_owned(),
            ),
            (
                "TLS certificates and rotation".to_owned(),
                "certificate has expired; x509 errors; renew with cert-manager".to_owned(),
            ),
        ];
        let q = words("catalog network tls certificate expired errors");
        let ranked = rank_documents(&q, &docs);
        assert_eq!(ranked[0].0, 1);
        // "errors" is a stop word and in both: it alone scores nothing.
        assert!(rank_documents(&words("errors"), &docs).is_empty());
    }
}
