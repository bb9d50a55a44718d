//! Weak evidence still gives an answer, with a low confidence that says
//! why it is low.
//!
//! "No hypothesis" helps nobody at 3 a.m.: when something moved, the
//! services that moved most are where to look first, even if no finding
//! says what kind of fault it is. And a low confidence without a reason
//! reads as noise; naming what is missing (a second kind of evidence, a
//! change, a clear onset) tells the responder what to check next.

use std::collections::{BTreeMap, BTreeSet};

use super::{Category, EvidenceKind, Finding, RankedHypothesis};

/// Confidence (percent) below which a hypothesis is explained as weak.
pub const WEAK_CONFIDENCE: u8 = 40;

/// Category of a fallback hypothesis when no finding of a service points
/// at any category: the least committal one (something it depends on, or
/// that it is, failed).
pub const FALLBACK_CATEGORY: Category = Category::DependencyFailure;

/// Hypotheses for services with findings but no candidate category, most
/// anomalous first, so a report is never empty when something moved.
#[must_use]
pub fn fallback(findings: &[Finding], ranked: &[RankedHypothesis]) -> Vec<RankedHypothesis> {
    let covered: BTreeSet<&str> = ranked.iter().map(|h| h.service.as_str()).collect();
    let mut by_service: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings
        .iter()
        .filter(|f| !f.service.is_empty() && f.strength > 0.0)
    {
        if !covered.contains(f.service.as_str()) {
            by_service.entry(f.service.as_str()).or_default().push(f);
        }
    }
    let mut out: Vec<RankedHypothesis> = by_service
        .into_iter()
        .map(|(service, fs)| {
            let strongest = fs.iter().map(|f| f.strength).fold(0.0, f64::max);
            let mut ids: Vec<(&str, f64)> = fs.iter().map(|f| (f.id.as_str(), f.strength)).collect();
            ids.sort_by(|a, b| b.1.total_cmp(&a.1));
            let score = 10.0 * strongest;
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "0..=95"
            )]
            let confidence = (95.0 * (1.0 - (-score / 60.0).exp())).round() as u8;
            RankedHypothesis {
                service: service.to_owned(),
                category: FALLBACK_CATEGORY,
                score,
                confidence,
                explanation: format!(
                    "{service} moved, but no finding says what kind of fault it is"
                ),
                evidence: ids.into_iter().map(|(id, _)| id.to_owned()).collect(),
                reasons: vec![format!(
                    "{} finding(s) on {service} name no category: ranked by how much it moved; the category is a guess",
                    fs.len()
                )],
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    out
}

/// Adds, to every hypothesis under [`WEAK_CONFIDENCE`], the reasons its
/// confidence is low.
pub fn explain(ranked: &mut [RankedHypothesis], findings: &[Finding]) {
    for h in ranked.iter_mut().filter(|h| h.confidence < WEAK_CONFIDENCE) {
        let cited: Vec<&Finding> = findings
            .iter()
            .filter(|f| h.evidence.contains(&f.id))
            .collect();
        let kinds: BTreeSet<EvidenceKind> = cited.iter().map(|f| f.kind).collect();
        let mut why = Vec::new();
        match kinds.len() {
            0 => why.push("no finding supports it directly".to_owned()),
            1 => why.push(format!(
                "one kind of evidence only ({})",
                kinds
                    .iter()
                    .map(|k| format!("{k:?}").to_lowercase())
                    .collect::<String>()
            )),
            _ => {}
        }
        if !findings.iter().any(|f| f.kind == EvidenceKind::Change) {
            why.push("no change data to connect it to".to_owned());
        }
        let strongest = cited.iter().map(|f| f.strength).fold(0.0, f64::max);
        if strongest < 0.5 {
            why.push(format!(
                "its strongest finding is weak ({strongest:.2} of 1)"
            ));
        }
        if cited.iter().all(|f| f.onset_ms.is_none()) {
            why.push("no onset could be dated".to_owned());
        }
        if !why.is_empty() {
            h.reasons.push(format!(
                "low confidence ({}%): {}",
                h.confidence,
                why.join("; ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::hypotheses::graph::DependencyGraph;
    use crate::hypotheses::{HypothesisConfig, rank_hypotheses};

    #[test]
    fn findings_without_any_cue_still_rank_their_services() {
        let f = vec![
            Finding::new(
                "m1",
                EvidenceKind::Metric,
                "a",
                "widgets{service=\"a\"} rose",
                Some(0),
                0.2,
            ),
            Finding::new(
                "m2",
                EvidenceKind::Metric,
                "b",
                "gadgets{service=\"b\"} rose",
                Some(0),
                0.6,
            ),
        ];
        let r = rank_hypotheses(&f, &DependencyGraph::new(), &HypothesisConfig::default());
        let names: Vec<&str> = r.iter().map(|h| h.service.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert!(r[0].confidence < WEAK_CONFIDENCE);
        assert!(
            r[0].reasons
                .iter()
                .any(|x| x.contains("category is a guess"))
        );
        assert!(r[0].reasons.iter().any(|x| x.starts_with("low confidence")));
    }

    #[test]
    fn weak_hypotheses_say_why_their_confidence_is_low() {
        let f = vec![Finding::new(
            "m1",
            EvidenceKind::Metric,
            "cart",
            "container_cpu_usage_rate_percent{service=\"cart\"} rose and stayed from 5 to 9",
            Some(0),
            0.1,
        )];
        let r = rank_hypotheses(&f, &DependencyGraph::new(), &HypothesisConfig::default());
        assert_eq!(r[0].category, Category::ResourceExhaustion);
        let why = r[0].reasons.last().expect("a reason");
        assert!(why.contains("one kind of evidence only (metric)"), "{why}");
        assert!(why.contains("no change data"), "{why}");
        assert!(why.contains("weak"), "{why}");
    }
}
