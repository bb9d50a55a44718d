//! What the workflow asks when it has to ask on its own: the coordinator's
//! questions, a default plan when the coordinator gives none, and the
//! task ids, derived rather than random so a decision is a pure value.

use std::collections::BTreeSet;

use rootcause_diagnosis::state::{PlanStep, TaskStatus};
use rootcause_diagnosis::{
    AgentKind, DiagnosisState, EvidenceKind, Hypothesis, Plan, SessionId, TaskId,
};
use uuid::Builder;

use crate::config::WorkflowConfig;
use crate::graph::Node;

/// The id of the task the workflow dispatches for `agent` at `node` of
/// `round`. Derived from those values (a version 8 UUID over an FNV-1a
/// hash), so deciding twice on the same state dispatches the same task, and
/// the fold rejects the second copy as a duplicate instead of running an
/// agent twice.
#[must_use]
pub fn task_id(session_id: SessionId, round: u32, node: Node, agent: AgentKind) -> TaskId {
    // 128-bit FNV-1a: tiny, dependency-free and stable across releases,
    // which a std hasher is not.
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    let parts: [&[u8]; 4] = [
        session_id.0.as_bytes(),
        &round.to_be_bytes(),
        node.as_str().as_bytes(),
        agent.as_str().as_bytes(),
    ];
    for part in parts {
        for b in part.iter().chain(b"/") {
            h ^= u128::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    TaskId(Builder::from_custom_bytes(h.to_be_bytes()).into_uuid())
}

/// The evidence kind an investigating agent produces; the complex graph's
/// follow-up rounds ask the agents whose kind the top hypothesis still lacks.
#[must_use]
pub fn evidence_kind_of(agent: AgentKind) -> Option<EvidenceKind> {
    match agent {
        AgentKind::Coordinator => None,
        AgentKind::Log => Some(EvidenceKind::Log),
        AgentKind::Metric => Some(EvidenceKind::Metric),
        AgentKind::Code => Some(EvidenceKind::Change),
        AgentKind::Knowledge => Some(EvidenceKind::Knowledge),
        AgentKind::Database => Some(EvidenceKind::Database),
    }
}

/// The independent evidence kinds supporting a hypothesis. The absence of
/// data is not a signal that agrees with anything, so it does not count.
#[must_use]
pub fn agreeing_kinds(state: &DiagnosisState, hypothesis: &Hypothesis) -> BTreeSet<EvidenceKind> {
    hypothesis
        .supporting
        .iter()
        .filter_map(|id| state.evidence_by_id(*id))
        .map(|e| e.kind)
        .filter(|k| *k != EvidenceKind::Absence)
        .collect()
}

fn services(state: &DiagnosisState) -> String {
    let s = state.incident().services();
    if s.is_empty() {
        "the affected services".to_owned()
    } else {
        s.join(", ")
    }
}

fn window(state: &DiagnosisState) -> (String, String) {
    let w = state.incident().window();
    (w.start().to_rfc3339(), w.end().to_rfc3339())
}

fn kinds_text(kinds: &BTreeSet<EvidenceKind>) -> String {
    if kinds.is_empty() {
        return "no evidence yet".to_owned();
    }
    let names: Vec<String> = kinds
        .iter()
        .map(|k| format!("{k:?}").to_lowercase())
        .collect();
    format!("{} evidence", names.join(" and "))
}

fn top_line(state: &DiagnosisState) -> String {
    match state.ranked_hypotheses().first() {
        Some(h) => format!(
            "The top hypothesis is \"{}\" ({}, {}) at {}, supported by {}.",
            h.statement,
            h.service,
            h.category,
            h.confidence,
            kinds_text(&agreeing_kinds(state, h))
        ),
        None => "There is no hypothesis yet.".to_owned(),
    }
}

/// The question for a coordinator task at `node` serving `round`.
#[must_use]
pub fn coordinator_question(state: &DiagnosisState, node: Node, round: u32) -> String {
    let (start, end) = window(state);
    match node {
        Node::Plan if round <= 1 => format!(
            "Plan round 1 for \"{}\" (severity {}, services: {}, {start} to {end}): which agents should look at what?",
            state.incident().title(),
            state.incident().severity(),
            services(state)
        ),
        Node::Plan => format!(
            "Plan follow-up round {round}. {} Which targeted questions would confirm or refute it?",
            top_line(state)
        ),
        Node::Evaluate => format!(
            "Evaluate round {round}: rank the hypotheses against the {} evidence records so far and set their confidence.",
            state.evidence().len()
        ),
        _ => "Write the conclusion: ranked hypotheses citing evidence ids, remediation steps, confidence.".to_owned(),
    }
}

/// The first-round question for an investigating agent.
fn first_question(state: &DiagnosisState, agent: AgentKind) -> String {
    let (start, end) = window(state);
    let svc = services(state);
    match agent {
        AgentKind::Log => {
            format!(
                "What changed in the logs of {svc} between {start} and {end}, compared with before?"
            )
        }
        AgentKind::Metric => {
            format!("Which signals of {svc} moved first, and when, between {start} and {end}?")
        }
        AgentKind::Code => {
            format!(
                "Which commits, deploys or configuration changes to {svc} before {end} could cause this?"
            )
        }
        AgentKind::Knowledge => format!(
            "Have we seen \"{}\" before: matching runbooks or past incidents?",
            state.incident().title()
        ),
        AgentKind::Database => format!(
            "Is a database behind this: lock waits, long queries or saturation between {start} and {end}?"
        ),
        AgentKind::Coordinator => format!("What should be investigated for {svc}?"),
    }
}

/// The plan the workflow makes when the coordinator's planning task ended
/// without one (it failed, timed out or answered nothing): round 1 asks
/// every configured investigator its standard question; a follow-up round
/// asks the investigators whose evidence kind does not yet support the top
/// hypothesis, skipping those that failed in the round before. An empty
/// plan means there is nothing left worth asking.
#[must_use]
pub fn default_plan(state: &DiagnosisState, round: u32, config: &WorkflowConfig) -> Plan {
    let session_id = state.session_id();
    let step = |agent: AgentKind, question: String| PlanStep {
        task_id: task_id(session_id, round, Node::Investigate, agent),
        agent,
        question,
    };
    if round <= 1 {
        return Plan {
            round,
            rationale: "default plan: the coordinator gave none, so every investigator looks"
                .to_owned(),
            steps: config
                .investigators
                .iter()
                .filter(|a| state.options().allows(**a))
                .map(|a| step(*a, first_question(state, *a)))
                .collect(),
        };
    }
    let failed_last_round: BTreeSet<AgentKind> = state
        .tasks()
        .values()
        .filter(|t| {
            t.round + 1 == round && matches!(t.status, TaskStatus::Failed | TaskStatus::TimedOut)
        })
        .map(|t| t.agent)
        .collect();
    let candidates = config
        .investigators
        .iter()
        .copied()
        .filter(|a| !failed_last_round.contains(a) && state.options().allows(*a));
    match state.ranked_hypotheses().first() {
        Some(top) => {
            let have = agreeing_kinds(state, top);
            Plan {
                round,
                rationale: format!(
                    "default follow-up: ask for the evidence kinds that do not yet support \"{}\"",
                    top.statement
                ),
                steps: candidates
                    .filter(|a| evidence_kind_of(*a).is_some_and(|k| !have.contains(&k)))
                    .map(|a| {
                        let q = format!(
                            "Does the {a} data confirm or refute: {} (service {}, {})?",
                            top.statement, top.service, top.category
                        );
                        step(a, q)
                    })
                    .collect(),
            }
        }
        None => Plan {
            round,
            rationale: "default follow-up: no hypothesis yet, so look wider".to_owned(),
            steps: candidates
                .map(|a| {
                    let q = format!(
                        "Round {round}: nothing conclusive yet. {} Look wider in time and across dependencies.",
                        first_question(state, a)
                    );
                    step(a, q)
                })
                .collect(),
        },
    }
}
