//! What agents hold: [`Llm`] (built once per process from settings),
//! [`DiagnosisLlm`] (per diagnosis: budget ledger, redactor, recorder) and
//! [`AgentLlm`] (per agent task: the agent's chain plus usage accounting).
//!
//! Every call goes: redact → reserve budget → fallback chain (retries,
//! breakers) → book usage → record → validate structured output (one repair
//! call when it fails).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rootcause_diagnosis::db::AgentExecutionRow;
use rootcause_diagnosis::{AgentKind, SessionId, TaskId, Usage};
use serde_json::Value;

use crate::breaker::{BreakerSettings, CircuitBreaker};
use crate::budget::{Budget, Estimate, Ledger};
use crate::chain::{FallbackChain, ProviderHandle};
use crate::chat::{ChatModel, ChatRequest, ChatResponse, Message, OutputSchema};
use crate::error::LlmError;
use crate::price::ModelPrice;
use crate::provider::anthropic::{AnthropicChat, AnthropicConfig, DEFAULT_ANTHROPIC_VERSION};
use crate::provider::openai::{OpenAiChat, OpenAiConfig, OpenAiEndpoint, TokenLimitField};
use crate::record::{Recorder, Recording, Replay};
use crate::redact::{RedactionRules, RedactionSettings, Redactor};
use crate::retry::RetrySettings;
use crate::settings::{
    DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_AZURE_API_VERSION, DEFAULT_OPENAI_BASE_URL, LlmSettings,
    ProviderSettings, SettingsError, SettingsErrors, parse_http_url,
};

/// Whether an agent has a model to talk to. Agents branch on this: offline
/// means "run your analyzers", never "pretend with canned text".
#[derive(Debug, Clone)]
pub enum LlmAvailability {
    /// A model (chain) is configured for the agent.
    Online(AgentLlm),
    /// No provider is configured for the agent.
    Offline {
        /// The agent.
        agent: AgentKind,
        /// Why.
        reason: OfflineReason,
    },
}

impl LlmAvailability {
    /// Whether the agent must use its analyzers.
    #[must_use]
    pub fn is_offline(&self) -> bool {
        matches!(self, Self::Offline { .. })
    }

    /// The client when online.
    #[must_use]
    pub fn online(self) -> Option<AgentLlm> {
        match self {
            Self::Online(c) => Some(c),
            Self::Offline { .. } => None,
        }
    }
}

/// Why an agent is offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineReason {
    /// `[llm.providers]` is empty.
    NoProviders,
    /// Providers exist but none is in this agent's chain.
    NotConfiguredForAgent,
}

/// The LLM layer of one process: providers (with their breakers, shared by
/// every diagnosis) and the agents' chains.
#[derive(Debug, Clone)]
pub struct Llm {
    chains: Arc<BTreeMap<AgentKind, FallbackChain>>,
    has_providers: bool,
    budget: Budget,
    rules: RedactionRules,
    recording_dir: Option<std::path::PathBuf>,
}

impl Llm {
    /// Validates `settings` and builds every provider. Nothing is sent.
    ///
    /// # Errors
    /// [`SettingsErrors`] listing every broken rule, with its key.
    pub fn from_settings(settings: &LlmSettings) -> Result<Self, SettingsErrors> {
        settings.validate()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                SettingsErrors(vec![SettingsError {
                    key: "llm".into(),
                    problem: format!("cannot build the HTTP client: {e}"),
                }])
            })?;
        let prices = settings.price_table();
        let mut handles = BTreeMap::new();
        for (name, provider) in &settings.providers {
            let price = prices.get(provider.model()).unwrap_or(ModelPrice::FREE);
            let timeout =
                Duration::from_millis(provider.timeout_ms().unwrap_or(settings.request_timeout_ms));
            let model = build_provider(name, provider, price, timeout, client.clone()).map_err(
                |problem| {
                    SettingsErrors(vec![SettingsError {
                        key: format!("llm.providers.{name}"),
                        problem,
                    }])
                },
            )?;
            handles.insert(
                name.clone(),
                Arc::new(ProviderHandle::new(
                    model,
                    CircuitBreaker::new(settings.breaker),
                    price,
                )),
            );
        }
        let mut chains = BTreeMap::new();
        for agent in AgentKind::ALL {
            let members: Vec<_> = settings
                .chain_for(agent)
                .iter()
                .filter_map(|name| handles.get(name).cloned())
                .collect();
            if !members.is_empty() {
                chains.insert(
                    agent,
                    FallbackChain::new(agent.as_str(), members, settings.retry),
                );
            }
        }
        let rules = RedactionRules::new(&settings.redaction).map_err(|(i, e)| {
            SettingsErrors(vec![SettingsError {
                key: format!("llm.redaction.extra_patterns[{i}]"),
                problem: e.to_string(),
            }])
        })?;
        Ok(Self {
            chains: Arc::new(chains),
            has_providers: !settings.providers.is_empty(),
            budget: settings.budget.into(),
            rules,
            recording_dir: settings.recording.directory.clone(),
        })
    }

    /// An LLM layer from ready-made chains (tests, custom wiring).
    #[must_use]
    pub fn from_chains(
        chains: BTreeMap<AgentKind, FallbackChain>,
        budget: Budget,
        rules: RedactionRules,
    ) -> Self {
        Self {
            has_providers: !chains.is_empty(),
            chains: Arc::new(chains),
            budget,
            rules,
            recording_dir: None,
        }
    }

    /// An LLM layer that answers every agent from `recording`, without a
    /// network and without a budget. Run the diagnosis with the recorded
    /// session id (so placeholders match) and the same redaction settings.
    ///
    /// # Errors
    /// [`LlmError::Recording`] when the redaction settings do not compile.
    pub fn replay(recording: &Recording, redaction: &RedactionSettings) -> Result<Self, LlmError> {
        let replays = Replay::for_agents(recording);
        let no_retry = RetrySettings {
            max_retries: 0,
            ..RetrySettings::default()
        };
        let mut chains = BTreeMap::new();
        for agent in AgentKind::ALL {
            if let Some(replay) = replays.get(agent.as_str()) {
                let handle = ProviderHandle::new(
                    Arc::new(replay.clone()),
                    CircuitBreaker::new(BreakerSettings {
                        failure_threshold: u32::MAX,
                        cool_down_ms: 0,
                    }),
                    ModelPrice::FREE,
                );
                chains.insert(
                    agent,
                    FallbackChain::new(agent.as_str(), vec![Arc::new(handle)], no_retry),
                );
            }
        }
        let rules = RedactionRules::new(redaction).map_err(|(i, e)| LlmError::Recording {
            path: "(replay)".into(),
            message: format!("llm.redaction.extra_patterns[{i}]: {e}"),
        })?;
        Ok(Self::from_chains(chains, Budget::default(), rules))
    }

    /// Whether no provider is configured at all.
    #[must_use]
    pub fn is_offline(&self) -> bool {
        !self.has_providers
    }

    /// The chain of `agent`, if any.
    #[must_use]
    pub fn chain(&self, agent: AgentKind) -> Option<&FallbackChain> {
        self.chains.get(&agent)
    }

    /// Starts the accounting of one diagnosis. `already_spent` is what the
    /// diagnosis spent before (from [`crate::store::session_usage`]), so the
    /// budget holds across tasks and workers.
    #[must_use]
    pub fn diagnosis(&self, session_id: SessionId, already_spent: Usage) -> DiagnosisLlm {
        let recorder = self
            .recording_dir
            .as_ref()
            .map(|dir| Recorder::to_file(session_id, dir.join(format!("{session_id}.jsonl"))));
        DiagnosisLlm {
            session_id,
            chains: Arc::clone(&self.chains),
            has_providers: self.has_providers,
            ledger: Ledger::new(self.budget, already_spent),
            redactor: self.rules.for_diagnosis(session_id.0.as_bytes()),
            recorder,
        }
    }
}

fn build_provider(
    name: &str,
    provider: &ProviderSettings,
    price: ModelPrice,
    timeout: Duration,
    client: reqwest::Client,
) -> Result<Arc<dyn ChatModel>, String> {
    let structured = provider.structured();
    let model: Arc<dyn ChatModel> = match provider {
        ProviderSettings::OpenAi(s) => Arc::new(
            OpenAiChat::new(
                OpenAiConfig {
                    provider: name.to_owned(),
                    model: s.model.clone(),
                    endpoint: OpenAiEndpoint::OpenAi {
                        base_url: parse_http_url(
                            s.base_url.as_deref().unwrap_or(DEFAULT_OPENAI_BASE_URL),
                        )?,
                    },
                    api_key: s.api_key.clone(),
                    price,
                    timeout,
                    structured,
                    token_field: s
                        .token_limit_field
                        .unwrap_or(TokenLimitField::MaxCompletionTokens),
                },
                client,
            )
            .map_err(|e| e.to_string())?,
        ),
        ProviderSettings::AzureOpenAi(s) => Arc::new(
            OpenAiChat::new(
                OpenAiConfig {
                    provider: name.to_owned(),
                    model: s.model.clone(),
                    endpoint: OpenAiEndpoint::Azure {
                        endpoint: parse_http_url(&s.endpoint)?,
                        deployment: s.deployment.clone(),
                        api_version: s
                            .api_version
                            .clone()
                            .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned()),
                    },
                    api_key: s.api_key.clone(),
                    price,
                    timeout,
                    structured,
                    token_field: s.token_limit_field.unwrap_or(TokenLimitField::MaxTokens),
                },
                client,
            )
            .map_err(|e| e.to_string())?,
        ),
        ProviderSettings::OpenAiCompatible(s) => Arc::new(
            OpenAiChat::new(
                OpenAiConfig {
                    provider: name.to_owned(),
                    model: s.model.clone(),
                    endpoint: OpenAiEndpoint::Compatible {
                        base_url: parse_http_url(&s.base_url)?,
                    },
                    api_key: s.api_key.clone(),
                    price,
                    timeout,
                    structured,
                    token_field: s.token_limit_field.unwrap_or(TokenLimitField::MaxTokens),
                },
                client,
            )
            .map_err(|e| e.to_string())?,
        ),
        ProviderSettings::Anthropic(s) => Arc::new(
            AnthropicChat::new(
                AnthropicConfig {
                    provider: name.to_owned(),
                    model: s.model.clone(),
                    base_url: parse_http_url(
                        s.base_url.as_deref().unwrap_or(DEFAULT_ANTHROPIC_BASE_URL),
                    )?,
                    api_key: s
                        .api_key
                        .clone()
                        .ok_or_else(|| "api_key is missing".to_owned())?,
                    version: s
                        .anthropic_version
                        .clone()
                        .unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_owned()),
                    price,
                    timeout,
                    structured,
                },
                client,
            )
            .map_err(|e| e.to_string())?,
        ),
    };
    Ok(model)
}

/// The LLM side of one diagnosis: its budget ledger, its redactor (stable
/// placeholders for this diagnosis) and its recorder.
#[derive(Debug, Clone)]
pub struct DiagnosisLlm {
    session_id: SessionId,
    chains: Arc<BTreeMap<AgentKind, FallbackChain>>,
    has_providers: bool,
    ledger: Arc<Ledger>,
    redactor: Redactor,
    recorder: Option<Arc<Recorder>>,
}

impl DiagnosisLlm {
    /// The diagnosis.
    #[must_use]
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    /// Records every exchange with `recorder` (replacing the configured one).
    #[must_use]
    pub fn with_recorder(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The recorder, when recording.
    #[must_use]
    pub fn recorder(&self) -> Option<&Arc<Recorder>> {
        self.recorder.as_ref()
    }

    /// The budget ledger (totals per diagnosis and per agent).
    #[must_use]
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The redactor of this diagnosis, for text that leaves by other ways.
    #[must_use]
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// What `agent` may use: its chain, or offline.
    #[must_use]
    pub fn agent(&self, agent: AgentKind) -> LlmAvailability {
        match self.chains.get(&agent) {
            Some(chain) => LlmAvailability::Online(AgentLlm {
                agent,
                chain: chain.clone(),
                ledger: Arc::clone(&self.ledger),
                redactor: self.redactor.clone(),
                recorder: self.recorder.clone(),
                task: Arc::new(Mutex::new(TaskUsage::default())),
            }),
            None => LlmAvailability::Offline {
                agent,
                reason: if self.has_providers {
                    OfflineReason::NotConfiguredForAgent
                } else {
                    OfflineReason::NoProviders
                },
            },
        }
    }
}

/// Usage of one agent task, for its `agent_executions` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskUsage {
    /// Tokens and cost of every answered call.
    pub usage: Usage,
    /// Calls answered.
    pub calls: u32,
    /// The provider of the last answer.
    pub provider: Option<String>,
    /// The model of the last answer.
    pub model: Option<String>,
}

/// One agent task's handle on its model chain. Clones share the task's usage.
#[derive(Debug, Clone)]
pub struct AgentLlm {
    agent: AgentKind,
    chain: FallbackChain,
    ledger: Arc<Ledger>,
    redactor: Redactor,
    recorder: Option<Arc<Recorder>>,
    // Held for a few additions, never across an await.
    task: Arc<Mutex<TaskUsage>>,
}

impl AgentLlm {
    /// The agent.
    #[must_use]
    pub fn agent(&self) -> AgentKind {
        self.agent
    }

    /// Sends `request` (redacted first) through the agent's chain.
    ///
    /// When the request has an output schema and the answer has no tool
    /// calls, the answer is parsed and validated; on failure the model is
    /// shown the errors once and asked again. The returned usage covers
    /// both calls.
    ///
    /// # Errors
    /// [`LlmError::BudgetExceeded`] before sending, [`LlmError::AllProvidersFailed`]
    /// when the chain fails, [`LlmError::StructuredOutputInvalid`] when the
    /// repaired answer still does not validate, [`LlmError::InvalidSchema`]
    /// for a schema that does not compile.
    pub async fn chat(&self, mut request: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.redactor.redact_request(&mut request);
        let Some(output) = request.output.clone() else {
            return self.send(&request).await;
        };
        let validator =
            jsonschema::validator_for(&output.schema).map_err(|e| LlmError::InvalidSchema {
                name: output.name.clone(),
                message: e.to_string(),
            })?;
        let mut first = self.send(&request).await?;
        if !first.tool_calls.is_empty() {
            return Ok(first);
        }
        let errors = match check(&validator, first.content.as_deref()) {
            Ok(value) => {
                first.structured = Some(value);
                return Ok(first);
            }
            Err(errors) => errors,
        };
        tracing::warn!(agent = self.agent.as_str(), provider = %first.provider, schema = %output.name,
            errors = %errors, "structured answer failed its schema; asking once for a repair");
        let mut repair = request.clone();
        repair.messages.push(Message::Assistant {
            content: first.content.clone(),
            tool_calls: Vec::new(),
        });
        repair
            .messages
            .push(Message::user(repair_prompt(&output, &errors)));
        self.redactor.redact_request(&mut repair);
        let mut second = self.send(&repair).await?;
        second.usage.add(&first.usage);
        match check(&validator, second.content.as_deref()) {
            Ok(value) => {
                second.structured = Some(value);
                Ok(second)
            }
            Err(errors) => Err(LlmError::StructuredOutputInvalid {
                provider: second.provider,
                schema: output.name,
                errors,
            }),
        }
    }

    /// One call: reserve, send through the chain, book, record.
    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let estimate = Estimate::for_request(request, self.chain.worst_price());
        let reservation = self.ledger.reserve(estimate)?;
        let started = Instant::now();
        let result = self.chain.chat(request).await;
        if let Ok(response) = &result {
            reservation.commit(self.agent.as_str(), &response.usage);
            let mut task = self
                .task
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            task.usage.add(&response.usage);
            task.calls += 1;
            task.provider = Some(response.provider.clone());
            task.model = Some(response.model.clone());
            metrics::counter!("rootcause_llm_tokens_total", "agent" => self.agent.as_str(), "direction" => "input")
                .increment(response.usage.input_tokens);
            metrics::counter!("rootcause_llm_tokens_total", "agent" => self.agent.as_str(), "direction" => "output")
                .increment(response.usage.output_tokens);
            metrics::counter!("rootcause_llm_cost_micro_usd_total", "agent" => self.agent.as_str())
                .increment(response.usage.cost_micros);
        } else {
            drop(reservation);
        }
        if let Some(recorder) = &self.recorder {
            recorder
                .record(self.agent.as_str(), request, &result, started.elapsed())
                .await;
        }
        result
    }

    /// What this task has spent so far.
    #[must_use]
    pub fn task_usage(&self) -> TaskUsage {
        self.task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The task's `agent_executions` row, to store with
    /// [`crate::store::record_execution`] when the task ends.
    #[must_use]
    pub fn execution_row(&self, execution: &Execution) -> AgentExecutionRow {
        let task = self.task_usage();
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let finished_at = execution.finished_at;
        AgentExecutionRow {
            id: execution.id,
            session_id: execution.session_id.0,
            task_id: execution.task_id.0,
            agent: self.agent.as_str().to_owned(),
            attempt: execution.attempt,
            provider: task.provider,
            model: task.model,
            tokens_in: to_i64(task.usage.input_tokens),
            tokens_out: to_i64(task.usage.output_tokens),
            tokens_cached: to_i64(task.usage.cached_tokens),
            cost_micros: to_i64(task.usage.cost_micros),
            duration_ms: finished_at
                .map_or(0, |f| (f - execution.started_at).num_milliseconds().max(0)),
            outcome: execution.outcome.clone(),
            error: execution.error.clone(),
            started_at: execution.started_at,
            finished_at,
        }
    }
}

/// The task facts an `agent_executions` row needs besides usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Row id (stable across updates of the same attempt).
    pub id: uuid::Uuid,
    /// Diagnosis.
    pub session_id: SessionId,
    /// Task.
    pub task_id: TaskId,
    /// Attempt, from 1.
    pub attempt: i32,
    /// `running`, `completed`, `failed`, `timed_out`, `budget_exceeded`, ...
    pub outcome: String,
    /// Error text, if it failed.
    pub error: Option<String>,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished, once it has.
    pub finished_at: Option<DateTime<Utc>>,
}

fn check(validator: &jsonschema::Validator, content: Option<&str>) -> Result<Value, String> {
    let text = content.ok_or_else(|| "the answer has no text".to_owned())?;
    let value: Value = serde_json::from_str(crate::provider::strip_json_fence(text))
        .map_err(|e| format!("the answer is not JSON: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(10)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors.join("; "))
    }
}

fn repair_prompt(output: &OutputSchema, errors: &str) -> String {
    format!(
        "Your previous answer does not satisfy the JSON Schema {name}: {errors}. \
         Reply again with only the corrected JSON document, satisfying:\n{schema}",
        name = output.name,
        schema = output.schema
    )
}
