//! The investigating agents' tool-calling loop.
//!
//! Each step sends the conversation with the agent's tools; every tool call
//! the model makes is reported (`tool_called`), run through the registry
//! under the agent's `agent_tools` permissions, reported again
//! (`tool_result`, a compact summary) and appended as a tool message for
//! the next step. The loop ends when the model stops calling tools, at the
//! step limit, or when the next step would not leave room in the token
//! budget for the findings; then one last request asks for the findings as
//! JSON (validated, one repair), which become evidence citing their calls.

use rootcause_diagnosis::{AgentKind, AgentReport, AgentTask, EventId, SessionId};
use rootcause_llm::{AgentLlm, ChatRequest, ChatResponse, LlmError, Message, ToolDefinition};
use rootcause_tools::{AgentToolAccess, ToolContext, ToolRegistry};
use serde_json::{Value, json};

use super::context::{cut, user_message};
use super::error::LlmAgentError;
use super::findings::{self, CallRecord};
use super::prompt::Prompt;
use super::{LlmLimits, Spend};
use crate::runner::{AgentOutput, ProgressSink};

/// Answer tokens allowed per tool-loop step (tool calls and a sentence).
const STEP_MAX_TOKENS: u32 = 1_024;
/// Answer tokens allowed for the findings.
const FINDINGS_MAX_TOKENS: u32 = 2_048;
/// Below this many answer tokens the findings cannot be written.
const MIN_FINDINGS_TOKENS: u32 = 256;
/// Tool calls run per step; more are answered with an error asking the
/// model to spread them over steps.
const MAX_CALLS_PER_STEP: usize = 8;
/// Characters of a tool result shown on the timeline.
const RESULT_SUMMARY_CHARS: usize = 400;
/// Characters of model text reported as progress.
const PROGRESS_CHARS: usize = 500;

/// What the agent may reach: the registry, the `agent_tools` policy that
/// filters it, and the session (for tool tracing).
#[derive(Debug, Clone, Copy)]
pub struct AgentTools<'a> {
    /// Registered tools.
    pub registry: &'a ToolRegistry,
    /// Which of them each agent may use.
    pub access: &'a AgentToolAccess,
    /// The diagnosis, recorded on tool spans; `None` outside one.
    pub session_id: Option<SessionId>,
}

/// Why the tool loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The model stopped calling tools.
    Done,
    /// `max_steps` steps ran.
    Steps,
    /// The next step would not leave room for the findings.
    Tokens,
    /// The diagnosis budget refused a step.
    DiagnosisBudget,
}

impl Stop {
    fn says(self) -> &'static str {
        match self {
            Self::Done => "the model finished its investigation",
            Self::Steps => "the step limit was reached",
            Self::Tokens => "the token budget left room only for the findings",
            Self::DiagnosisBudget => "the diagnosis budget refused another step",
        }
    }
}

/// Runs an investigating agent's task with its model and tools.
///
/// # Errors
/// [`LlmAgentError`]: [`LlmAgentError::is_provider_failure`] when the model
/// is unavailable (run the offline analyzers instead),
/// [`LlmAgentError::InvalidOutput`] when the findings fail their schema
/// after one repair, [`LlmAgentError::BudgetSpent`] when the budget left no
/// room for the findings.
pub async fn run(
    task: &AgentTask,
    model: &AgentLlm,
    tools: AgentTools<'_>,
    limits: LlmLimits,
    sink: &dyn ProgressSink,
) -> Result<AgentOutput, LlmAgentError> {
    let agent = task.agent;
    let Some(prompt) = Prompt::for_agent(agent) else {
        return Err(LlmAgentError::Misrouted(
            "a coordinator task goes to llm::coordinate, not llm::run".to_owned(),
        ));
    };
    let spend = Spend::start(model);
    let specs = tools
        .registry
        .tools_for_agent(tools.access, agent)
        .await
        .map_err(|source| LlmAgentError::Tools { agent, source })?;
    if specs.is_empty() {
        return Ok(AgentOutput {
            summary: format!(
                "{agent} agent (LLM, prompt {}): no tools are available to it (none registered and enabled in agent_tools), so it has nothing to investigate with",
                prompt.id
            ),
            ..AgentOutput::default()
        });
    }
    let definitions: Vec<ToolDefinition> = specs
        .into_iter()
        .map(|s| ToolDefinition {
            name: s.name,
            description: s.description,
            parameters: s.parameters,
        })
        .collect();
    let mut ctx = ToolContext::new(task.tenant.clone(), task.incident.window());
    if let Some(session) = tools.session_id {
        ctx = ctx.with_session(session);
    }

    let mut messages = vec![
        Message::system(prompt.text),
        Message::user(user_message(task, false)),
    ];
    let mut calls: Vec<CallRecord> = Vec::new();
    let mut steps = 0_u32;
    let stop = loop {
        if steps >= limits.max_steps {
            break Stop::Steps;
        }
        let request = ChatRequest::new(messages.clone())
            .with_tools(definitions.clone())
            .with_max_tokens(STEP_MAX_TOKENS);
        let closing = final_request(&messages, &definitions, Stop::Steps, FINDINGS_MAX_TOKENS);
        if spend.spent(model) + estimate(&request) + estimate(&closing) > limits.max_tokens {
            break Stop::Tokens;
        }
        steps += 1;
        let response = match model.chat(request).await {
            Ok(r) => r,
            Err(LlmError::BudgetExceeded { .. }) => break Stop::DiagnosisBudget,
            Err(e) => return Err(LlmAgentError::from_llm(agent, e)),
        };
        report_text(task, &response, sink);
        messages.push(Message::assistant_from(&response));
        if response.tool_calls.is_empty() {
            break Stop::Done;
        }
        for (i, call) in response.tool_calls.iter().enumerate() {
            if i >= MAX_CALLS_PER_STEP {
                messages.push(Message::tool_error(
                    call.id.clone(),
                    json!({"error": "too_many_calls", "message": format!("at most {MAX_CALLS_PER_STEP} tool calls run per step; ask again in the next step")}).to_string(),
                ));
                continue;
            }
            let handle = format!("c{}", calls.len() + 1);
            let (record, message) = run_call(task, tools, &ctx, handle, call, sink).await;
            calls.push(record);
            messages.push(message);
        }
    };
    if stop != Stop::Done {
        sink.report(AgentReport::Progress {
            task_id: task.task_id,
            message: format!("{agent} agent: {}; asking for the findings", stop.says()),
        });
    }

    let answer = findings_answer(
        task,
        model,
        &messages,
        &definitions,
        stop,
        limits,
        &spend,
        &calls,
    )
    .await?;
    let answer = findings::parse(answer).map_err(|errors| LlmAgentError::InvalidOutput {
        agent,
        schema: findings::schema().name,
        errors,
    })?;
    let converted =
        findings::to_evidence(agent, prompt.id, answer.findings, &calls, &task.evidence);
    let key_evidence = converted
        .evidence
        .iter()
        .filter(|e| e.strength >= 0.7)
        .map(|e| e.id)
        .collect();
    let usage = spend.usage(model);
    let summary = format!(
        "{agent} agent (LLM, prompt {}): {} {} finding(s) from {} tool call(s) in {steps} step(s); {} finding(s) dropped for citing no tool call of this run; stopped because {}",
        prompt.id,
        cut(answer.summary.trim(), 600),
        converted.evidence.len(),
        calls.len(),
        converted.dropped,
        stop.says()
    );
    let task_usage = model.task_usage();
    Ok(AgentOutput {
        summary,
        evidence: converted.evidence,
        key_evidence,
        plan: None,
        hypotheses: Vec::new(),
        usage,
        provider: task_usage.provider,
        model: task_usage.model,
    })
}

/// The last request: the conversation, a note saying why it ends, the
/// findings schema. The tools stay listed (some providers refuse tool
/// results in a conversation without tools) but the model is told not to
/// call them.
fn final_request(
    messages: &[Message],
    definitions: &[ToolDefinition],
    stop: Stop,
    max_tokens: u32,
) -> ChatRequest {
    let mut messages = messages.to_vec();
    let ending = if stop == Stop::Done {
        "You have finished investigating.".to_owned()
    } else {
        format!("The investigation ends here: {}.", stop.says())
    };
    messages.push(Message::user(format!(
        "{ending} Do not call any more tools. Give your findings now as one JSON object: \
         `summary`, and `findings`, each with kind, service, statement, strength (0 to 1), observed_at (RFC 3339 or null), \
         query (or null) and cites (the call handles c1, c2, ... of the tool results it comes from). \
         Report only what the tool results show; an empty list is a valid answer."
    )));
    ChatRequest::new(messages)
        .with_tools(definitions.to_vec())
        .with_output(findings::schema())
        .with_max_tokens(max_tokens)
}

/// Asks for the findings, within what the budget has left. A model that
/// calls tools instead is told once that the tools are closed.
#[expect(clippy::too_many_arguments, reason = "one private call site")]
async fn findings_answer(
    task: &AgentTask,
    model: &AgentLlm,
    messages: &[Message],
    definitions: &[ToolDefinition],
    stop: Stop,
    limits: LlmLimits,
    spend: &Spend,
    calls: &[CallRecord],
) -> Result<Value, LlmAgentError> {
    let agent = task.agent;
    let mut conversation = messages.to_vec();
    for _ in 0..2 {
        let probe = final_request(&conversation, definitions, stop, 0);
        let left = limits
            .max_tokens
            .saturating_sub(spend.spent(model))
            .saturating_sub(estimate(&probe));
        let answer_tokens = u32::try_from(left)
            .unwrap_or(u32::MAX)
            .min(FINDINGS_MAX_TOKENS);
        if answer_tokens < MIN_FINDINGS_TOKENS {
            return Err(budget_spent(
                agent,
                calls.len(),
                format!(
                    "{} of agents.max_tokens = {} tokens are spent and the findings request alone needs about {}",
                    spend.spent(model),
                    limits.max_tokens,
                    estimate(&probe) + u64::from(MIN_FINDINGS_TOKENS)
                ),
            ));
        }
        let request = final_request(&conversation, definitions, stop, answer_tokens);
        let response = match model.chat(request).await {
            Ok(r) => r,
            Err(e @ LlmError::BudgetExceeded { .. }) => {
                return Err(budget_spent(agent, calls.len(), e.to_string()));
            }
            Err(e) => return Err(LlmAgentError::from_llm(agent, e)),
        };
        if let Some(value) = response.structured {
            return Ok(value);
        }
        if response.tool_calls.is_empty() {
            // A provider that validated nothing: treat as out of contract.
            return Err(LlmAgentError::InvalidOutput {
                agent,
                schema: findings::schema().name,
                errors: "the answer carried no JSON findings".to_owned(),
            });
        }
        conversation.push(Message::assistant_from(&response));
        for call in &response.tool_calls {
            conversation.push(Message::tool_error(
                call.id.clone(),
                json!({"error": "tools_closed", "message": "no more tool calls; give your findings as JSON now"}).to_string(),
            ));
        }
    }
    Err(LlmAgentError::NoFindings { agent })
}

fn budget_spent(agent: AgentKind, calls: usize, detail: String) -> LlmAgentError {
    LlmAgentError::BudgetSpent {
        agent,
        tool_calls: calls,
        detail,
    }
}

/// Runs one tool call, reporting it before and after; returns what
/// findings may cite and the tool message for the next step.
async fn run_call(
    task: &AgentTask,
    tools: AgentTools<'_>,
    ctx: &ToolContext,
    handle: String,
    call: &rootcause_llm::ToolCall,
    sink: &dyn ProgressSink,
) -> (CallRecord, Message) {
    let event = EventId::new();
    sink.report(AgentReport::ToolCalled {
        task_id: task.task_id,
        call_id: event,
        tool: call.name.clone(),
        arguments: call.arguments.clone(),
    });
    let mut record = CallRecord {
        handle: handle.clone(),
        provider_id: call.id.clone(),
        event,
        tool: call.name.clone(),
        source: None,
        query: None,
    };
    let result = tools
        .registry
        .call_for_agent(
            tools.access,
            task.agent,
            ctx,
            &call.name,
            call.arguments.clone(),
        )
        .await;
    match result {
        Ok(output) => {
            let shown = output.to_model_json();
            let content = output.content.to_string();
            let summary = format!(
                "{} rows from {}: {}",
                count_of(&output.content),
                output.source,
                cut(&content, RESULT_SUMMARY_CHARS)
            );
            sink.report(AgentReport::ToolResult {
                task_id: task.task_id,
                call_id: event,
                ok: true,
                summary,
                truncated: output.truncated.is_some()
                    || content.chars().count() > RESULT_SUMMARY_CHARS,
            });
            record.source = Some(output.source);
            record.query = Some(output.query).filter(|q| !q.is_empty());
            let message = Message::tool_result(
                call.id.clone(),
                json!({"call": handle, "result": shown}).to_string(),
            );
            (record, message)
        }
        Err(e) => {
            sink.report(AgentReport::ToolResult {
                task_id: task.task_id,
                call_id: event,
                ok: false,
                summary: cut(&e.to_string(), RESULT_SUMMARY_CHARS),
                truncated: false,
            });
            let message = Message::tool_error(
                call.id.clone(),
                json!({"call": handle, "error": e.to_model_json()}).to_string(),
            );
            (record, message)
        }
    }
}

/// How many items a result holds, for the timeline ("12 rows from ...").
fn count_of(content: &Value) -> usize {
    match content {
        Value::Array(items) => items.len(),
        Value::Object(map) => map
            .values()
            .find_map(|v| v.as_array().map(Vec::len))
            .unwrap_or(1),
        Value::Null => 0,
        _ => 1,
    }
}

/// Model text of a step, reported as progress.
fn report_text(task: &AgentTask, response: &ChatResponse, sink: &dyn ProgressSink) {
    if let Some(text) = response.content.as_deref().map(str::trim)
        && !text.is_empty()
    {
        sink.report(AgentReport::Progress {
            task_id: task.task_id,
            message: cut(text, PROGRESS_CHARS),
        });
    }
}

/// Tokens a request may use: its input estimate plus its answer limit.
pub(crate) fn estimate(request: &ChatRequest) -> u64 {
    request.estimated_input_tokens() + u64::from(request.max_tokens)
}
