//! What the coordinator does offline: plan a round from the data the
//! bundle holds, and weigh every agent's evidence into ranked hypotheses
//! (the analysis crate's ranking after the cross-kind [`link`]) with
//! remediation, citing evidence ids. Evaluation and synthesis run the same
//! ranking, so a re-ranking of the same hypothesis keeps its id.

use std::collections::BTreeMap;

use chrono::Duration;
use rootcause_analysis::hypotheses::{HypothesisConfig, rank_evidence};
use rootcause_diagnosis::state::PlanStep;
use rootcause_diagnosis::{
    AgentKind, AgentTask, Category, Confidence, Evidence, EvidenceKind, Hypothesis, Plan,
};

use super::derive::{assign_evidence_ids, evidence_id, hypothesis_id};
use super::evidence::{Analysis, BundleContext, SUSPECT_LETTER, absences, link, suspect_record};
use super::remediation::{matching_runbooks, similar_incidents, steps, suspect_for};
use super::report::phrase;

/// Hypotheses a weighing reports (the rest are noise for a reader).
pub const HYPOTHESES_KEPT: usize = 10;

/// The investigators, in the order a plan asks them.
pub const INVESTIGATORS: [AgentKind; 5] = [
    AgentKind::Log,
    AgentKind::Metric,
    AgentKind::Code,
    AgentKind::Knowledge,
    AgentKind::Database,
];

/// What the coordinator decided.
#[derive(Debug, Clone, Default)]
pub struct Coordination {
    /// In brief, for the timeline.
    pub summary: String,
    /// The plan (planning tasks).
    pub plan: Option<Plan>,
    /// Records it adds (the linked change suspects).
    pub evidence: Vec<Evidence>,
    /// Ranked hypotheses (evaluation and synthesis tasks).
    pub hypotheses: Vec<Hypothesis>,
}

/// The bundle sources an investigator reads.
fn sources(agent: AgentKind) -> &'static [&'static str] {
    match agent {
        AgentKind::Log => &["logs/"],
        AgentKind::Metric => &["metrics.om"],
        AgentKind::Code => &["changes.jsonl", "repo.bundle"],
        AgentKind::Knowledge => &["runbooks/", "past_incidents.jsonl"],
        AgentKind::Database => &["db/"],
        AgentKind::Coordinator => &[],
    }
}

fn question(task: &AgentTask, agent: AgentKind) -> String {
    let w = task.incident.window();
    let (start, end) = (w.start().to_rfc3339(), w.end().to_rfc3339());
    let svc = if task.incident.services().is_empty() {
        "the affected services".to_owned()
    } else {
        task.incident.services().join(", ")
    };
    match agent {
        AgentKind::Log => format!(
            "Which error templates of {svc} and their neighbours are new or rose between {start} and {end}, against the hours before?"
        ),
        AgentKind::Metric => {
            format!(
                "Which series of {svc} and their neighbours moved first, and when, between {start} and {end}?"
            )
        }
        AgentKind::Code => format!(
            "Which commits, deploys, config or flag changes before {end} could have caused \"{}\"?",
            task.incident.title()
        ),
        AgentKind::Knowledge => format!(
            "Which runbooks and past incidents match \"{}\"?",
            task.incident.title()
        ),
        AgentKind::Database => format!(
            "Do the database snapshots show lock waits or long transactions between {start} and {end}?"
        ),
        AgentKind::Coordinator => String::new(),
    }
}

/// The plan of `task.round`: in round 1 every investigator whose sources
/// hold data (all of them when there is no bundle, so each says what it is
/// missing), recording the sources nobody is asked about as absent; in a
/// follow-up round nobody, since the analyzers already read every source
/// and would find the same evidence again.
#[must_use]
pub fn plan(ctx: Option<&BundleContext>, task: &AgentTask, key: &[u8; 16]) -> Coordination {
    let round = task.round.max(1);
    if round > 1 {
        return Coordination {
            summary: format!(
                "round {round}: nothing more to ask offline; the analyzers already read every source"
            ),
            plan: Some(Plan {
                round,
                rationale: "offline agents read every source in round 1; another round would find the same evidence".to_owned(),
                steps: Vec::new(),
            }),
            ..Coordination::default()
        };
    }
    let has_data =
        |agent: AgentKind| ctx.is_none_or(|c| sources(agent).iter().any(|s| c.inputs.has(s)));
    let (ask, skip): (Vec<AgentKind>, Vec<AgentKind>) =
        INVESTIGATORS.into_iter().partition(|a| has_data(*a));
    let steps: Vec<PlanStep> = ask
        .iter()
        .map(|agent| PlanStep {
            task_id: rootcause_workflow::plan::task_id(
                task.session_id,
                round,
                rootcause_workflow::Node::Investigate,
                *agent,
            ),
            agent: *agent,
            question: question(task, *agent),
        })
        .collect();
    let names = |agents: &[AgentKind]| {
        agents
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rationale = if ctx.is_some() {
        format!("the bundle has data for {}", names(&ask))
    } else {
        "no bundle: every investigator is asked and says what it can reach".to_owned()
    };
    if !skip.is_empty() {
        rationale.push_str(&format!("; no data for {}", names(&skip)));
    }
    // What nobody is asked about is still on record as missing.
    let mut evidence: Vec<Evidence> = match ctx {
        Some(c) => {
            let unasked: Vec<&str> = skip
                .iter()
                .flat_map(|a| sources(*a).iter().copied())
                .collect();
            absences(&c.inputs, &unasked)
        }
        None => Vec::new(),
    };
    for e in &mut evidence {
        e.agent = AgentKind::Coordinator;
    }
    assign_evidence_ids(key, &mut evidence);
    Coordination {
        summary: format!("round {round}: asked {}", names(&ask)),
        evidence,
        plan: Some(Plan {
            round,
            rationale,
            steps,
        }),
        ..Coordination::default()
    }
}

/// Ranks hypotheses from every agent's evidence in `task.evidence`: the
/// cross-kind [`link`] (with the bundle: change suspects against the
/// symptoms, added as `C..` evidence), the analysis crate's ranking, and
/// for each hypothesis the remediation, the matching runbooks and past
/// incidents, and the change it blames. `key` derives stable ids.
#[must_use]
pub fn weigh(ctx: Option<&BundleContext>, task: &AgentTask, key: &[u8; 16]) -> Coordination {
    let incident = &task.incident;
    let mut linked = link(ctx, incident, &task.evidence);
    // Stable ids for the suspects, in the ranking's view as well.
    let mut renamed: BTreeMap<rootcause_diagnosis::EvidenceId, rootcause_diagnosis::EvidenceId> =
        BTreeMap::new();
    for e in &mut linked.suspects_evidence {
        let id = evidence_id(key, e);
        renamed.insert(e.id, id);
        e.id = id;
        e.agent = AgentKind::Coordinator;
    }
    for e in &mut linked.evidence {
        if let Some(id) = renamed.get(&e.id) {
            e.id = *id;
            e.agent = AgentKind::Coordinator;
        }
    }
    let ranked = rank_evidence(
        &linked.evidence,
        &linked.graph,
        &HypothesisConfig::default(),
    );
    let mut added = linked.suspects_evidence.clone();
    let analysis = Analysis {
        evidence: linked.evidence.clone(),
        graph: linked.graph.clone(),
        suspects: linked.suspects.clone(),
        changes: linked.changes.clone(),
        baseline_end: ctx.map_or_else(
            || incident.window().start() - Duration::minutes(30),
            |c| c.baseline_end,
        ),
        known_services: ctx.map(|c| c.known.clone()).unwrap_or_default(),
    };
    let by_handle: BTreeMap<String, &Evidence> =
        linked.evidence.iter().map(|e| (e.handle(), e)).collect();
    let knowledge: Vec<&Evidence> = task
        .evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Knowledge)
        .collect();
    let mut hypotheses = Vec::new();
    for h in ranked.iter().take(HYPOTHESES_KEPT) {
        let cited: Vec<&Evidence> = h
            .evidence
            .iter()
            .filter_map(|id| by_handle.get(id.as_str()).copied())
            .collect();
        let mut supporting: Vec<rootcause_diagnosis::EvidenceId> =
            cited.iter().map(|e| e.id).collect();
        let suspect = suspect_for(&h.service, h.category, &analysis);
        // The blamed change must be on record and cited, even when it is
        // not among the suspects kept as evidence.
        if let Some(s) = &suspect
            && let Some(found) = linked.suspects.iter().find(|x| x.title == s.title)
        {
            let mut record = suspect_record(
                found,
                &linked.changes,
                format!("{SUSPECT_LETTER}{}", added.len() + 1),
            );
            let id = match added
                .iter()
                .find(|e| e.summary == record.summary && e.service == record.service)
            {
                Some(e) => e.id,
                None => {
                    record.id = evidence_id(key, &record);
                    record.agent = AgentKind::Coordinator;
                    let id = record.id;
                    added.push(record);
                    id
                }
            };
            if !supporting.contains(&id) {
                supporting.push(id);
            }
        }
        let mut remediation = steps(&h.service, h.category, suspect.as_ref(), &cited, &analysis);
        if let Some(ctx) = ctx {
            for r in matching_runbooks(&h.service, h.category, &cited, &ctx.inputs.runbooks) {
                remediation.push(format!(
                    "Follow the runbook {} (\"{}\").",
                    r.reference, r.title
                ));
                cite_knowledge(&knowledge, &r.reference, &mut supporting);
            }
            for p in similar_incidents(&h.service, h.category, &cited, &ctx.inputs.past_incidents) {
                remediation.push(format!(
                    "Past incident {} (\"{}\") looked alike; it was resolved by: {}",
                    p.reference,
                    p.title,
                    p.resolution.as_deref().unwrap_or("(not recorded)")
                ));
                cite_knowledge(&knowledge, &p.reference, &mut supporting);
            }
        }
        let about = cited
            .first()
            .map_or_else(|| h.explanation.clone(), |e| e.summary.clone());
        hypotheses.push(Hypothesis {
            id: hypothesis_id(task.session_id, &h.service, h.category),
            parent: None,
            statement: format!("{} in {}: {about}", phrase(h.category), h.service),
            service: h.service.clone(),
            category: h.category,
            confidence: Confidence::saturating(i64::from(h.confidence)),
            supporting,
            refuting: Vec::new(),
            remediation,
        });
    }
    let weighed = linked.evidence.len();
    let summary = match hypotheses.first() {
        Some(top) => format!(
            "{} hypotheses from {weighed} findings; most likely {} / {} at {}",
            hypotheses.len(),
            top.service,
            top.category,
            top.confidence
        ),
        None => format!(
            "no hypothesis: none of the {weighed} findings points at a service ({} evidence records in all)",
            task.evidence.len()
        ),
    };
    Coordination {
        summary,
        plan: None,
        evidence: added,
        hypotheses,
    }
}

/// Cites the knowledge agent's record of `reference`, when it found one.
fn cite_knowledge(
    knowledge: &[&Evidence],
    reference: &str,
    supporting: &mut Vec<rootcause_diagnosis::EvidenceId>,
) {
    if let Some(e) = knowledge
        .iter()
        .find(|e| e.data["reference"].as_str() == Some(reference))
        && !supporting.contains(&e.id)
    {
        supporting.push(e.id);
    }
}

/// The change a hypothesis blames: among the change evidence it cites, the
/// best-scored one that fits its category (a commit or deploy for a bad
/// deploy, a config or flag change for a config change, a change that took
/// effect for resource exhaustion). The coordinator always cites the
/// change it blames, so this reads the blame back from the state.
#[must_use]
pub fn blamed_change<'a>(
    hypothesis: &Hypothesis,
    evidence: impl IntoIterator<Item = &'a Evidence>,
) -> Option<&'a Evidence> {
    evidence
        .into_iter()
        .filter(|e| e.kind == EvidenceKind::Change && hypothesis.supporting.contains(&e.id))
        .filter(|e| {
            let kind = e.data["change_kind"].as_str().unwrap_or("commit");
            match hypothesis.category {
                Category::BadDeploy => !e.data["commit"].is_null() || kind == "deploy",
                Category::ConfigChange => kind == "config" || kind == "flag",
                Category::ResourceExhaustion => e.observed_at.is_some(),
                _ => false,
            }
        })
        .max_by(|a, b| {
            let s = |e: &Evidence| e.data["score"].as_f64().unwrap_or(0.0);
            s(a).total_cmp(&s(b))
        })
}
