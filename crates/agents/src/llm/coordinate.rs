//! The coordinator with a model: a plan for the round (which agents, which
//! questions, which time ranges) when planning, ranked hypotheses citing the
//! evidence when evaluating or synthesizing.
//!
//! The answer is checked twice: against its JSON Schema by the LLM layer
//! (one repair), then here against the diagnosis (agents named once, time
//! ranges that parse, evidence handles that exist, one hypothesis per
//! service and category). A failed check is shown to the model once; a
//! second failure fails the task with the problems listed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rootcause_diagnosis::state::PlanStep;
use rootcause_diagnosis::{
    AgentKind, AgentReport, AgentTask, Category, Confidence, Evidence, EvidenceId, Hypothesis,
    Phase, Plan, SessionId,
};
use rootcause_llm::{AgentLlm, ChatRequest, Message, OutputSchema};
use rootcause_workflow::graph::Node;
use rootcause_workflow::plan::task_id;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::{cut, user_message};
use super::error::LlmAgentError;
use super::investigate::estimate;
use super::prompt::{COORDINATOR_PLAN, COORDINATOR_SYNTHESIS, Prompt};
use super::{LlmLimits, Spend, hypothesis_id};
use crate::runner::{AgentOutput, ProgressSink};

/// Answer tokens of a plan or a ranking.
const ANSWER_MAX_TOKENS: u32 = 2_048;
/// The longest time range a plan step may ask about.
const MAX_STEP_RANGE: chrono::Duration = chrono::Duration::days(7);
/// Most hypotheses one ranking may hold.
const MAX_HYPOTHESES: usize = 10;
/// The agents a plan may name.
const INVESTIGATORS: [AgentKind; 5] = [
    AgentKind::Log,
    AgentKind::Metric,
    AgentKind::Code,
    AgentKind::Database,
    AgentKind::Knowledge,
];

/// Runs a coordinator task: `planning` yields [`AgentOutput::plan`],
/// `evaluating` and `synthesizing` yield ranked [`AgentOutput::hypotheses`].
/// `session_id` is the diagnosis the task belongs to: plan steps get the
/// task ids the workflow derives from it, hypotheses the ids of
/// [`hypothesis_id`].
///
/// # Errors
/// [`LlmAgentError`]: [`LlmAgentError::is_provider_failure`] when the model
/// is unavailable; [`LlmAgentError::InvalidOutput`] when the answer fails
/// its schema or its checks after one repair;
/// [`LlmAgentError::BudgetSpent`] when the request does not fit the token
/// budget; [`LlmAgentError::Misrouted`] for a task that is not the
/// coordinator's or a phase it has no work in.
pub async fn coordinate(
    task: &AgentTask,
    session_id: SessionId,
    model: &AgentLlm,
    limits: LlmLimits,
    sink: &dyn ProgressSink,
) -> Result<AgentOutput, LlmAgentError> {
    if task.agent != AgentKind::Coordinator {
        return Err(LlmAgentError::Misrouted(format!(
            "a {} task goes to llm::run, not llm::coordinate",
            task.agent
        )));
    }
    let spend = Spend::start(model);
    let mut output = match task.phase {
        Phase::Planning => plan(task, session_id, model, limits, sink, &spend).await?,
        Phase::Evaluating | Phase::Synthesizing => {
            rank(task, session_id, model, limits, sink, &spend).await?
        }
        other => {
            return Err(LlmAgentError::Misrouted(format!(
                "the coordinator has no work in phase {other:?}; it plans, evaluates or synthesizes"
            )));
        }
    };
    let usage = model.task_usage();
    output.usage = spend.usage(model);
    output.provider = usage.provider;
    output.model = usage.model;
    Ok(output)
}

async fn plan(
    task: &AgentTask,
    session_id: SessionId,
    model: &AgentLlm,
    limits: LlmLimits,
    sink: &dyn ProgressSink,
    spend: &Spend,
) -> Result<AgentOutput, LlmAgentError> {
    let user = format!(
        "{}\nPlan round {}. Agents you may ask: {}.",
        user_message(task, true),
        task.round,
        INVESTIGATORS.map(AgentKind::as_str).join(", ")
    );
    let check = |value: &Value| check_plan(value, task, session_id);
    let (plan, rationale) = structured(
        task,
        model,
        limits,
        spend,
        COORDINATOR_PLAN,
        user,
        plan_schema(),
        check,
    )
    .await?;
    let agents: Vec<&str> = plan.steps.iter().map(|s| s.agent.as_str()).collect();
    sink.report(AgentReport::Progress {
        task_id: task.task_id,
        message: format!(
            "plan for round {}: {}",
            plan.round,
            if agents.is_empty() {
                "no agent".to_owned()
            } else {
                agents.join(", ")
            }
        ),
    });
    Ok(AgentOutput {
        summary: format!(
            "coordinator (LLM, prompt {}): round {} plan with {} step(s): {}",
            COORDINATOR_PLAN.id,
            plan.round,
            plan.steps.len(),
            cut(&rationale, 400)
        ),
        plan: Some(plan),
        ..AgentOutput::default()
    })
}

async fn rank(
    task: &AgentTask,
    session_id: SessionId,
    model: &AgentLlm,
    limits: LlmLimits,
    sink: &dyn ProgressSink,
    spend: &Spend,
) -> Result<AgentOutput, LlmAgentError> {
    let stage = if task.phase == Phase::Synthesizing {
        "Write the final ranking with remediation."
    } else {
        "Weigh the evidence of this round and rank the hypotheses."
    };
    let user = format!("{}\n{stage}", user_message(task, true));
    let check = |value: &Value| check_ranking(value, &task.evidence, session_id);
    let (hypotheses, summary) = structured(
        task,
        model,
        limits,
        spend,
        COORDINATOR_SYNTHESIS,
        user,
        ranking_schema(),
        check,
    )
    .await?;
    if let Some(top) = hypotheses.first() {
        sink.report(AgentReport::Progress {
            task_id: task.task_id,
            message: format!(
                "top hypothesis: {} ({}, {}) at {}",
                cut(&top.statement, 200),
                top.service,
                top.category,
                top.confidence
            ),
        });
    }
    let key_evidence: Vec<EvidenceId> = hypotheses
        .first()
        .map(|h| h.supporting.clone())
        .unwrap_or_default();
    Ok(AgentOutput {
        summary: format!(
            "coordinator (LLM, prompt {}): {} hypothesis(es): {}",
            COORDINATOR_SYNTHESIS.id,
            hypotheses.len(),
            cut(&summary, 400)
        ),
        key_evidence,
        hypotheses,
        ..AgentOutput::default()
    })
}

/// One structured request and its checks against the diagnosis, with one
/// repair when the checks fail (the schema's own repair is the LLM layer's).
#[expect(clippy::too_many_arguments, reason = "two private call sites")]
async fn structured<T>(
    task: &AgentTask,
    model: &AgentLlm,
    limits: LlmLimits,
    spend: &Spend,
    prompt: Prompt,
    user: String,
    schema: OutputSchema,
    check: impl Fn(&Value) -> Result<T, Vec<String>>,
) -> Result<T, LlmAgentError> {
    let agent = task.agent;
    let mut messages = vec![Message::system(prompt.text), Message::user(user)];
    let mut last_errors = Vec::new();
    for attempt in 0..2 {
        let probe = ChatRequest::new(messages.clone())
            .with_output(schema.clone())
            .with_max_tokens(0);
        let left = limits
            .max_tokens
            .saturating_sub(spend.spent(model))
            .saturating_sub(estimate(&probe));
        let answer_tokens = u32::try_from(left)
            .unwrap_or(u32::MAX)
            .min(ANSWER_MAX_TOKENS);
        if answer_tokens < 256 {
            return Err(LlmAgentError::BudgetSpent {
                agent,
                tool_calls: 0,
                detail: format!(
                    "{} of agents.max_tokens = {} tokens are spent and the {} request alone needs about {}",
                    spend.spent(model),
                    limits.max_tokens,
                    schema.name,
                    estimate(&probe) + 256
                ),
            });
        }
        let request = ChatRequest::new(messages.clone())
            .with_output(schema.clone())
            .with_max_tokens(answer_tokens);
        let response = model
            .chat(request)
            .await
            .map_err(|e| LlmAgentError::from_llm(agent, e))?;
        let Some(value) = response.structured.clone() else {
            last_errors = vec!["the answer carried no JSON object".to_owned()];
            break;
        };
        match check(&value) {
            Ok(done) => return Ok(done),
            Err(errors) => {
                tracing::warn!(agent = agent.as_str(), schema = %schema.name, attempt,
                    errors = %errors.join("; "), "coordinator answer failed its checks");
                last_errors = errors;
                messages.push(Message::Assistant {
                    content: Some(value.to_string()),
                    tool_calls: Vec::new(),
                });
                messages.push(Message::user(format!(
                    "Your answer cannot be used: {}. Reply again with only the corrected JSON object.",
                    last_errors.join("; ")
                )));
            }
        }
    }
    Err(LlmAgentError::InvalidOutput {
        agent,
        schema: schema.name,
        errors: last_errors.join("; "),
    })
}

fn plan_schema() -> OutputSchema {
    OutputSchema {
        name: "coordinator_plan".to_owned(),
        strict: false,
        schema: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["rationale", "steps"],
            "properties": {
                "rationale": {"type": "string"},
                "steps": {
                    "type": "array",
                    "maxItems": INVESTIGATORS.len(),
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["agent", "question", "start", "end"],
                        "properties": {
                            "agent": {"enum": INVESTIGATORS.map(AgentKind::as_str)},
                            "question": {"type": "string", "minLength": 1},
                            "start": {"type": ["string", "null"], "description": "RFC 3339; null for the incident window"},
                            "end": {"type": ["string", "null"], "description": "RFC 3339; null for the incident window"}
                        }
                    }
                }
            }
        }),
    }
}

#[derive(Deserialize)]
struct RawPlan {
    rationale: String,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
struct RawStep {
    agent: String,
    question: String,
    start: Option<String>,
    end: Option<String>,
}

/// The plan, or every problem with it.
fn check_plan(
    value: &Value,
    task: &AgentTask,
    session_id: SessionId,
) -> Result<(Plan, String), Vec<String>> {
    let raw: RawPlan = serde_json::from_value(value.clone())
        .map_err(|e| vec![format!("the plan does not parse: {e}")])?;
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    let mut steps = Vec::new();
    let window = task.incident.window();
    for (i, step) in raw.steps.iter().enumerate() {
        let agent = match step.agent.parse::<AgentKind>() {
            Ok(a) if INVESTIGATORS.contains(&a) => a,
            _ => {
                errors.push(format!(
                    "steps[{i}].agent {:?} is not an agent you may ask; use one of {}",
                    step.agent,
                    INVESTIGATORS.map(AgentKind::as_str).join(", ")
                ));
                continue;
            }
        };
        if !seen.insert(agent) {
            errors.push(format!(
                "steps[{i}] names the {agent} agent again; ask each agent once, with one question"
            ));
            continue;
        }
        let start = time(step.start.as_deref(), i, "start", &mut errors);
        let end = time(step.end.as_deref(), i, "end", &mut errors);
        let (start, end) = (start.unwrap_or(window.start()), end.unwrap_or(window.end()));
        if end <= start {
            errors.push(format!("steps[{i}]: end {end} must be after start {start}"));
        } else if end - start > MAX_STEP_RANGE {
            errors.push(format!(
                "steps[{i}]: the range {start} to {end} is longer than 7 days; narrow it"
            ));
        }
        let question = step.question.trim();
        let question = if step.start.is_some() || step.end.is_some() {
            format!(
                "{question} (time range: {} to {})",
                start.to_rfc3339(),
                end.to_rfc3339()
            )
        } else {
            question.to_owned()
        };
        steps.push(PlanStep {
            task_id: task_id(session_id, task.round, Node::Investigate, agent),
            agent,
            question,
        });
    }
    if errors.is_empty() {
        Ok((
            Plan {
                round: task.round,
                rationale: raw.rationale.trim().to_owned(),
                steps,
            },
            raw.rationale,
        ))
    } else {
        Err(errors)
    }
}

fn time(
    text: Option<&str>,
    step: usize,
    field: &str,
    errors: &mut Vec<String>,
) -> Option<DateTime<Utc>> {
    let text = text?;
    match DateTime::parse_from_rfc3339(text.trim()) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            errors.push(format!(
                "steps[{step}].{field} {text:?} is not an RFC 3339 time ({e}); use e.g. 2026-03-02T14:00:00Z or null"
            ));
            None
        }
    }
}

fn ranking_schema() -> OutputSchema {
    OutputSchema {
        name: "coordinator_hypotheses".to_owned(),
        strict: false,
        schema: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["summary", "hypotheses"],
            "properties": {
                "summary": {"type": "string"},
                "hypotheses": {
                    "type": "array",
                    "maxItems": MAX_HYPOTHESES,
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["service", "category", "statement", "confidence", "supporting", "refuting", "remediation"],
                        "properties": {
                            "service": {"type": "string", "minLength": 1},
                            "category": {"enum": Category::ALL.map(Category::as_str)},
                            "statement": {"type": "string", "minLength": 1},
                            "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
                            "supporting": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                            "refuting": {"type": "array", "items": {"type": "string"}},
                            "remediation": {"type": "array", "items": {"type": "string"}}
                        }
                    }
                }
            }
        }),
    }
}

#[derive(Deserialize)]
struct RawRanking {
    summary: String,
    hypotheses: Vec<RawHypothesis>,
}

#[derive(Deserialize)]
struct RawHypothesis {
    service: String,
    category: Category,
    statement: String,
    confidence: u8,
    supporting: Vec<String>,
    refuting: Vec<String>,
    remediation: Vec<String>,
}

/// The hypotheses ranked by confidence, or every problem with them.
fn check_ranking(
    value: &Value,
    evidence: &[Evidence],
    session_id: SessionId,
) -> Result<(Vec<Hypothesis>, String), Vec<String>> {
    let raw: RawRanking = serde_json::from_value(value.clone())
        .map_err(|e| vec![format!("the hypotheses do not parse: {e}")])?;
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, h) in raw.hypotheses.into_iter().enumerate() {
        let service = h.service.trim().to_owned();
        if !seen.insert((service.to_lowercase(), h.category)) {
            errors.push(format!(
                "hypotheses[{i}] repeats service {service} with category {}; give one hypothesis per service and category",
                h.category
            ));
            continue;
        }
        let supporting = cited(&h.supporting, evidence, i, "supporting", &mut errors);
        let refuting = cited(&h.refuting, evidence, i, "refuting", &mut errors);
        let confidence = Confidence::try_from(h.confidence).unwrap_or(Confidence::ZERO);
        out.push(Hypothesis {
            id: hypothesis_id(session_id, &service, h.category),
            parent: None,
            statement: h.statement.trim().to_owned(),
            service,
            category: h.category,
            confidence,
            supporting,
            refuting,
            remediation: h
                .remediation
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Stable: equal confidences keep the model's order.
    out.sort_by_key(|h| std::cmp::Reverse(h.confidence));
    Ok((out, raw.summary))
}

/// The evidence ids `handles` name (label or id), recording unknown ones.
fn cited(
    handles: &[String],
    evidence: &[Evidence],
    hypothesis: usize,
    field: &str,
    errors: &mut Vec<String>,
) -> Vec<EvidenceId> {
    let mut ids = Vec::new();
    for handle in handles {
        let h = handle.trim().trim_matches(|c| c == '[' || c == ']');
        let found = evidence
            .iter()
            .find(|e| e.label.as_deref() == Some(h) || e.id.to_string().eq_ignore_ascii_case(h));
        match found {
            Some(e) if !ids.contains(&e.id) => ids.push(e.id),
            Some(_) => {}
            None => errors.push(format!(
                "hypotheses[{hypothesis}].{field} cites {handle:?}, which is not the handle of any evidence listed; cite only the [handles] given"
            )),
        }
    }
    ids
}
