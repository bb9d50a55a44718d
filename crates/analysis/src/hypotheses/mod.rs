//! Deterministic hypothesis ranking for the coordinator when no LLM is
//! configured (and as a prior when one is).
//!
//! Findings of every kind (log, metric, change, database, ...) each name a
//! service, carry text, an onset and a strength. Hypotheses are
//! `(service, category)` pairs suggested by the findings' text (cue words
//! per category) or by their kind (a deploy suggests `bad_deploy`). Each is
//! scored on:
//!
//! - **support**: the strength of the findings on that service that point
//!   at that category (a finding without any cue supports all categories of
//!   its service a little);
//! - **agreement**: how many independent kinds of evidence support it;
//! - **temporal precedence**: the service moved before the others (causes
//!   precede their victims);
//! - **dependencies** (inferred from logs and metrics, see [`graph`]): its
//!   callers failed after it moved (consistent propagation); a penalty when
//!   it calls a service that moved earlier (it is more likely a victim);
//! - **baseline**: findings already present before the incident count less.
//!
//! ```
//! use rootcause_analysis::hypotheses::{rank_hypotheses, Category, EvidenceKind, Finding, HypothesisConfig};
//! use rootcause_analysis::hypotheses::graph::DependencyGraph;
//!
//! let min = 60_000;
//! let findings = vec![
//!     Finding::new("e1", EvidenceKind::Log, "inventory", "Container inventory terminated: OOMKilled", Some(10 * min), 0.9),
//!     Finding::new("e2", EvidenceKind::Metric, "inventory", "container_memory_working_set_bytes rose", Some(9 * min), 0.8),
//!     Finding::new("e3", EvidenceKind::Metric, "checkout", "rate of http 503 rose", Some(11 * min), 0.9),
//! ];
//! let mut graph = DependencyGraph::new();
//! graph.add("checkout", "inventory");
//! let ranked = rank_hypotheses(&findings, &graph, &HypothesisConfig::default());
//! assert_eq!((ranked[0].service.as_str(), ranked[0].category), ("inventory", Category::ResourceExhaustion));
//! assert!(ranked[0].evidence.contains(&"e1".to_string()));
//! ```

pub mod graph;
pub mod kinds;
pub mod weak;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use graph::DependencyGraph;

/// Root-cause categories of the bundle format: the one definition shared
/// with the diagnosis state, so a ranked hypothesis converts without a
/// mapping table that could drift.
pub use rootcause_diagnosis::Category;

/// Kinds of evidence: the diagnosis model's own, so evidence converts
/// without a copy that could drift; findings of different kinds are
/// independent.
pub use rootcause_diagnosis::{Evidence, EvidenceKind};

/// One piece of evidence as the ranking sees it: derived from an
/// [`Evidence`] by [`Finding::from_evidence`] (or built directly in tests
/// and examples), with the onset in Unix ms and the service it counts for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Evidence handle (label or id), cited by the hypotheses it supports.
    pub id: String,
    /// Kind.
    pub kind: EvidenceKind,
    /// The service it counts for.
    pub service: String,
    /// The text cues are read from (template, series description, change
    /// description).
    pub summary: String,
    /// When the signal started.
    pub onset_ms: Option<i64>,
    /// How strong it is, 0 to 1.
    pub strength: f64,
    /// Whether the same signal was already there before the incident.
    pub in_baseline: bool,
    /// Categories it points at; empty means "infer from the text".
    pub categories: Vec<Category>,
}

impl Finding {
    /// A finding with inferred categories, not in the baseline.
    #[must_use]
    pub fn new(
        id: &str,
        kind: EvidenceKind,
        service: &str,
        summary: &str,
        onset_ms: Option<i64>,
        strength: f64,
    ) -> Self {
        Self {
            id: id.to_owned(),
            kind,
            service: service.to_owned(),
            summary: summary.to_owned(),
            onset_ms,
            strength: strength.clamp(0.0, 1.0),
            in_baseline: false,
            categories: Vec::new(),
        }
    }

    /// The ranking's view of a piece of evidence: its counted service
    /// (`ranking.about`, else `service`), its cue text, onset, strength and
    /// hints. `None` for what the ranking cannot weigh: an absence (it
    /// points at nothing) or evidence about no service.
    #[must_use]
    pub fn from_evidence(e: &Evidence) -> Option<Self> {
        if e.kind == EvidenceKind::Absence {
            return None;
        }
        let service = e.counted_service()?;
        Some(Self {
            in_baseline: e.ranking.in_baseline,
            categories: e.ranking.categories.clone(),
            ..Self::new(
                &e.handle(),
                e.kind,
                service,
                e.cue_text(),
                e.observed_at.map(|t| t.timestamp_millis()),
                e.strength,
            )
        })
    }
}

/// Weights of the ranking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HypothesisConfig {
    /// Points per unit of supporting strength.
    pub support_points: f64,
    /// Points per independent kind beyond the first.
    pub agreement_points: f64,
    /// Points for moving before every other service.
    pub precedence_points: f64,
    /// Points per caller that moved after the service (at most 3 count).
    pub propagation_points: f64,
    /// Penalty when the service calls one that moved earlier.
    pub victim_penalty: f64,
    /// Weight of findings already present in the baseline.
    pub baseline_weight: f64,
    /// Onsets closer than this are simultaneous.
    pub tie_ms: i64,
}

impl Default for HypothesisConfig {
    fn default() -> Self {
        Self {
            support_points: 20.0,
            agreement_points: 10.0,
            precedence_points: 20.0,
            propagation_points: 5.0,
            victim_penalty: 10.0,
            baseline_weight: 0.3,
            tie_ms: 60_000,
        }
    }
}

/// A ranked hypothesis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedHypothesis {
    /// Where the fault lives.
    pub service: String,
    /// Category.
    pub category: Category,
    /// Total score.
    pub score: f64,
    /// Confidence in percent, from the score (saturating, at most 95).
    pub confidence: u8,
    /// One sentence.
    pub explanation: String,
    /// Supporting evidence ids, strongest first.
    pub evidence: Vec<String>,
    /// Why it scored what it did.
    pub reasons: Vec<String>,
}

/// Cue words per category (lower case, matched as substrings) and weights.
const CUES: &[(Category, &[&str], f64)] = &[
    (
        Category::ResourceExhaustion,
        &[
            "oomkilled",
            "out of memory",
            "oom",
            "memory",
            "heap",
            "gc forced",
            "too many open files",
            "pool exhausted",
            "connection is not available",
            "no space left",
            "disk full",
            "cpu throttl",
            "evicted",
        ],
        1.0,
    ),
    (
        Category::Database,
        &[
            "deadlock",
            "lock",
            "statement timeout",
            "idle in transaction",
            "slow query",
            "replication",
            "sqlstate",
            "pg_stat",
            "canceling statement",
        ],
        1.0,
    ),
    (
        Category::Network,
        &[
            "tls",
            "ssl",
            "certificate",
            "x509",
            "handshake",
            "dns",
            "no route to host",
            "name resolution",
            "expired",
            "cert",
        ],
        1.0,
    ),
    (
        Category::DependencyFailure,
        &[
            "upstream",
            "timed out",
            "timeout",
            "circuit",
            "deadline exceeded",
            "provider",
            "bad gateway",
            "unavailable",
            "external",
            "connection refused",
        ],
        0.6,
    ),
    (
        Category::Capacity,
        &[
            "rate limit",
            "429",
            "throttl",
            "queue full",
            "surge",
            "too many requests",
            "saturat",
        ],
        0.8,
    ),
    (
        Category::ConfigChange,
        &[
            "config",
            "flag",
            "configmap",
            "environment variable",
            "setting",
            "missing property",
        ],
        0.8,
    ),
    (
        Category::BadDeploy,
        &[
            // Programming errors; a traceback or "exception" alone says
            // nothing (a TLS failure raises one too).
            "nullpointer",
            "typeerror",
            "attributeerror",
            "keyerror",
            "indexerror",
            "nameerror",
            "classcastexception",
            "illegalargumentexception",
            "illegalstateexception",
            "nil pointer",
            "index out of range",
            "is not a function",
            "cannot read propert",
            "undefined",
            "regression",
        ],
        0.8,
    ),
    (
        // A stack trace of the service's own code is weak evidence of a
        // code problem: it is also how many infrastructure errors surface.
        Category::BadDeploy,
        &["traceback", "exception", "stack trace"],
        0.4,
    ),
];

/// The categories a text points at, with weights.
#[must_use]
pub fn category_cues(text: &str) -> Vec<(Category, f64)> {
    let lower = text.to_ascii_lowercase();
    let mut out: Vec<(Category, f64)> = Vec::new();
    for (c, words, w) in CUES {
        if !words.iter().any(|word| lower.contains(word)) {
            continue;
        }
        match out.iter_mut().find(|(x, _)| x == c) {
            Some(e) => e.1 = e.1.max(*w),
            None => out.push((*c, *w)),
        }
    }
    out
}

fn cues_of(f: &Finding) -> Vec<(Category, f64)> {
    if !f.categories.is_empty() {
        return f.categories.iter().map(|c| (*c, 1.0)).collect();
    }
    if f.kind == EvidenceKind::Change {
        // A change is evidence of a change; its description ("route timeout
        // 3s -> 2s") is not a symptom.
        let lower = f.summary.to_ascii_lowercase();
        let c = if lower.contains("config") || lower.contains("flag") {
            Category::ConfigChange
        } else {
            Category::BadDeploy
        };
        return vec![(c, 1.0)];
    }
    if f.kind == EvidenceKind::Metric {
        // What the series measures says more than its words.
        // Words of the service's own name ("config-service") are no cue.
        let text = kinds::without_name(&f.summary, &f.service);
        return kinds::merge(category_cues(&text), kinds::metric_cues(&f.summary));
    }
    category_cues(&f.summary)
}

/// Categories that describe a serving component's own trouble; a caller's
/// errors that mention them point at the callee.
const INFRA: [Category; 4] = [
    Category::Database,
    Category::Network,
    Category::ResourceExhaustion,
    Category::DependencyFailure,
];

/// Ranks hypotheses straight from evidence records (absences and evidence
/// about no service are left out, see [`Finding::from_evidence`]); best
/// first. Hypotheses cite evidence by [`Evidence::handle`].
#[must_use]
pub fn rank_evidence(
    evidence: &[Evidence],
    graph: &DependencyGraph,
    cfg: &HypothesisConfig,
) -> Vec<RankedHypothesis> {
    let findings: Vec<Finding> = evidence.iter().filter_map(Finding::from_evidence).collect();
    rank_hypotheses(&findings, graph, cfg)
}

/// Builds and ranks hypotheses; best first.
#[must_use]
pub fn rank_hypotheses(
    findings: &[Finding],
    graph: &DependencyGraph,
    cfg: &HypothesisConfig,
) -> Vec<RankedHypothesis> {
    // Onset per service from observed signals (not change times): the
    // earliest of its strong findings (at least half its strongest), so a
    // stray early error does not make a service look first.
    let observed = |f: &&Finding| f.kind != EvidenceKind::Change && !f.in_baseline;
    let mut strongest: BTreeMap<&str, f64> = BTreeMap::new();
    for f in findings.iter().filter(observed) {
        let e = strongest.entry(f.service.as_str()).or_insert(0.0);
        *e = e.max(f.strength);
    }
    let mut onset: BTreeMap<&str, i64> = BTreeMap::new();
    for f in findings.iter().filter(observed) {
        if let Some(t) = f.onset_ms
            && f.strength >= 0.5 * strongest.get(f.service.as_str()).copied().unwrap_or(0.0)
        {
            let e = onset.entry(f.service.as_str()).or_insert(t);
            *e = (*e).min(t);
        }
    }
    let cues: Vec<Vec<(Category, f64)>> = findings.iter().map(cues_of).collect();
    let mut candidates: BTreeSet<(String, Category)> = BTreeSet::new();
    for (f, c) in findings.iter().zip(&cues) {
        for (cat, _) in c {
            candidates.insert((f.service.clone(), *cat));
        }
    }

    let mut out = Vec::new();
    for (service, category) in candidates {
        let mut per_kind: BTreeMap<EvidenceKind, Vec<f64>> = BTreeMap::new();
        let mut kinds: BTreeSet<EvidenceKind> = BTreeSet::new();
        let mut evidence: Vec<(f64, &str)> = Vec::new();
        let mut reasons = Vec::new();
        let mut in_baseline = 0;
        // Onset of the signals behind this hypothesis (not of every signal
        // of the service: an unrelated early error must not date it).
        let mut dated: Vec<(f64, Option<i64>)> = Vec::new();
        for (f, c) in findings.iter().zip(&cues) {
            if f.service != service {
                continue;
            }
            let weight = match c.iter().find(|(x, _)| *x == category) {
                Some((_, w)) => *w,
                None if c.is_empty() => 0.25,
                None => continue,
            };
            let mut s = f.strength * weight;
            if f.in_baseline {
                s *= cfg.baseline_weight;
                in_baseline += 1;
            }
            per_kind.entry(f.kind).or_default().push(s);
            kinds.insert(f.kind);
            if f.kind != EvidenceKind::Change && !f.in_baseline {
                dated.push((f.strength, f.onset_ms));
            }
            evidence.push((s, f.id.as_str()));
        }
        // Dated by its strong findings: a weak early one (a stray error) must
        // not make it look first.
        let strongest = dated.iter().map(|d| d.0).fold(0.0, f64::max);
        let own_onset = dated
            .iter()
            .filter(|(s, _)| *s >= 0.5 * strongest)
            .filter_map(|(_, t)| *t)
            .min();
        // Within one kind, the strongest finding counts fully and the rest a
        // quarter (ten variants of one error are one fact); kinds add up.
        let support: f64 = per_kind
            .values_mut()
            .map(|v| {
                v.sort_by(|a, b| b.total_cmp(a));
                v[0] + (0.25 * v[1..].iter().sum::<f64>()).min(0.5)
            })
            .sum();
        if support <= 0.0 {
            continue;
        }
        // Diminishing returns overall as well.
        let support_points = cfg.support_points * (1.0 + support).ln() / 2f64.ln();
        reasons.push(format!(
            "{} finding(s) on {service} point at {category} (support {support_points:.1})",
            evidence.len()
        ));
        let mut score = support_points;
        if kinds.len() > 1 {
            #[expect(clippy::cast_precision_loss, reason = "small counts")]
            let p = cfg.agreement_points * (kinds.len() - 1) as f64;
            score += p;
            reasons.push(format!(
                "{} independent kinds of evidence agree: {}",
                kinds.len(),
                kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(mine) = own_onset {
            let others: Vec<(&str, i64)> = onset
                .iter()
                .filter(|(s, _)| **s != service)
                .map(|(s, t)| (*s, *t))
                .collect();
            if !others.is_empty() {
                let later = others
                    .iter()
                    .filter(|(_, t)| *t + cfg.tie_ms >= mine)
                    .count();
                #[expect(clippy::cast_precision_loss, reason = "small counts")]
                let frac = later as f64 / others.len() as f64;
                let p = cfg.precedence_points * frac;
                score += p;
                reasons.push(format!(
                    "{service} moved no later than {later} of {} other services",
                    others.len()
                ));
            }
            let late_callers: Vec<&str> = graph
                .callers(&service)
                .into_iter()
                .filter(|c| onset.get(c).is_some_and(|t| *t + cfg.tie_ms >= mine))
                .collect();
            if !late_callers.is_empty() {
                #[expect(clippy::cast_precision_loss, reason = "small counts")]
                let p = cfg.propagation_points * late_callers.len().min(3) as f64;
                score += p;
                reasons.push(format!(
                    "its callers {} failed after it",
                    late_callers.join(", ")
                ));
            }
            let early_callees: Vec<&str> = graph
                .callees(&service)
                .into_iter()
                .filter(|c| onset.get(c).is_some_and(|t| *t + cfg.tie_ms < mine))
                .collect();
            if early_callees.is_empty() {
                // A callee with a problem of its own (database, network,
                // resources, its dependencies) at the same time, that this
                // service's findings also talk about: the fault is more
                // likely on the serving side.
                let own_cues: BTreeSet<Category> = findings
                    .iter()
                    .zip(&cues)
                    .filter(|(f, _)| f.service == service)
                    .flat_map(|(_, cs)| cs.iter().map(|(x, _)| *x))
                    .filter(|x| INFRA.contains(x))
                    .collect();
                let same: Vec<&str> = graph
                    .callees(&service)
                    .into_iter()
                    .filter(|c| {
                        onset.get(c).is_some_and(|t| *t <= mine + cfg.tie_ms)
                            && findings.iter().zip(&cues).any(|(f, cs)| {
                                f.service == *c
                                    && cs
                                        .iter()
                                        .any(|(x, _)| own_cues.contains(x) || *x == category)
                            })
                    })
                    .collect();
                if !same.is_empty() {
                    score -= cfg.victim_penalty / 2.0;
                    reasons.push(format!(
                        "it calls {}, which shows the same problem at the same time",
                        same.join(", ")
                    ));
                }
            } else {
                score -= cfg.victim_penalty;
                reasons.push(format!(
                    "it calls {}, which moved earlier: it may be a victim",
                    early_callees.join(", ")
                ));
            }
        }
        if in_baseline > 0 {
            reasons.push(format!(
                "{in_baseline} finding(s) were already present before the incident"
            ));
        }
        evidence.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top: Vec<&str> = evidence.iter().map(|(_, id)| *id).collect();
        let best_summary = findings
            .iter()
            .find(|f| Some(f.id.as_str()) == top.first().copied())
            .map_or(String::new(), |f| f.summary.clone());
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0..=95"
        )]
        let confidence = (95.0 * (1.0 - (-score.max(0.0) / 60.0).exp())).round() as u8;
        out.push(RankedHypothesis {
            explanation: format!("{category} in {service}: {best_summary}"),
            service,
            category,
            score,
            confidence,
            evidence: top.into_iter().map(str::to_owned).collect(),
            reasons,
        });
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    // Services that moved without any cue still get a (low) place.
    let extra = weak::fallback(findings, &out);
    out.extend(extra);
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    weak::explain(&mut out, findings);
    out
}

#[cfg(test)]
mod tests {

    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn cues() {
        let c = category_cues("x509: certificate has expired");
        assert_eq!(c[0].0, Category::Network);
        assert!(category_cues("all good").is_empty());
    }

    #[test]
    fn precedence_beats_volume_on_the_victim() {
        // The database moved first; its caller shows more (but later) errors.
        let mut f = vec![
            Finding::new(
                "a",
                EvidenceKind::Metric,
                "postgres",
                "pg_locks_count rose: lock waits",
                Some(10 * MIN),
                0.9,
            ),
            Finding::new(
                "b",
                EvidenceKind::Log,
                "postgres",
                "canceling statement due to statement timeout",
                Some(10 * MIN),
                0.9,
            ),
        ];
        for i in 0..5 {
            f.push(Finding::new(
                &format!("c{i}"),
                EvidenceKind::Log,
                "inventory",
                "request failed: upstream timed out",
                Some(14 * MIN),
                1.0,
            ));
        }
        let mut g = DependencyGraph::new();
        g.add("inventory", "postgres");
        let r = rank_hypotheses(&f, &g, &HypothesisConfig::default());
        assert_eq!(
            (r[0].service.as_str(), r[0].category),
            ("postgres", Category::Database)
        );
        let victim = r.iter().find(|h| h.service == "inventory").unwrap();
        assert!(victim.reasons.iter().any(|x| x.contains("victim")));
    }

    #[test]
    fn baseline_findings_count_less() {
        let mut old = Finding::new("o", EvidenceKind::Log, "a", "OOMKilled", Some(0), 1.0);
        old.in_baseline = true;
        let new = Finding::new("n", EvidenceKind::Log, "b", "OOMKilled", Some(0), 1.0);
        let r = rank_hypotheses(
            &[old, new],
            &DependencyGraph::new(),
            &HypothesisConfig::default(),
        );
        assert_eq!(r[0].service, "b");
        assert!(r[1].reasons.iter().any(|x| x.contains("already present")));
    }

    #[test]
    fn agreement_across_kinds() {
        let f = vec![
            Finding::new(
                "d",
                EvidenceKind::Change,
                "cart",
                "deploy cart v3.7.0",
                None,
                0.8,
            ),
            Finding::new(
                "l",
                EvidenceKind::Log,
                "cart",
                "java.lang.NullPointerException at PromotionResolver",
                Some(5 * MIN),
                0.8,
            ),
            Finding::new(
                "m",
                EvidenceKind::Metric,
                "cart",
                "rate of 500s rose",
                Some(5 * MIN),
                0.8,
            ),
        ];
        let r = rank_hypotheses(&f, &DependencyGraph::new(), &HypothesisConfig::default());
        assert_eq!(r[0].category, Category::BadDeploy);
        assert_eq!(r[0].evidence.len(), 3);
        assert!(
            r[0].reasons
                .iter()
                .any(|x| x.contains("3 independent kinds"))
        );
        assert!(r[0].confidence > 50);
    }
}
