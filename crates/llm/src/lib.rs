//! The LLM provider layer: one [`ChatModel`] interface over OpenAI, Anthropic,
//! Azure OpenAI and OpenAI-compatible servers, with per-agent fallback
//! chains, retries, circuit breakers, usage and cost accounting, budgets,
//! secret redaction, and recording/replay.
//!
//! Agents never talk to a provider directly. A process builds one [`Llm`]
//! from [`LlmSettings`] (validated at start), opens a [`DiagnosisLlm`] per
//! diagnosis (its budget ledger, redactor and recorder), and each agent task
//! asks it for its [`LlmAvailability`]: `Online(AgentLlm)` to call its chain,
//! or `Offline` to run its analyzers instead.
//!
//! ```no_run
//! # async fn run(settings: rootcause_llm::LlmSettings) -> Result<(), Box<dyn std::error::Error>> {
//! use rootcause_diagnosis::{AgentKind, SessionId, Usage};
//! use rootcause_llm::{ChatRequest, Llm, LlmAvailability, Message};
//!
//! let llm = Llm::from_settings(&settings)?;
//! let diagnosis = llm.diagnosis(SessionId::new(), Usage::default());
//! match diagnosis.agent(AgentKind::Log) {
//!     LlmAvailability::Online(model) => {
//!         let answer = model
//!             .chat(ChatRequest::new(vec![Message::user("What changed in these log templates?")]))
//!             .await?;
//!         println!("{:?} cost {} micro-USD", answer.content, answer.usage.cost_micros);
//!     }
//!     LlmAvailability::Offline { .. } => { /* run the analyzers */ }
//! }
//! # Ok(()) }
//! ```
//!
//! Layout:
//! - [`chat`]: messages, tools, structured output, [`ChatModel`]
//! - [`provider`]: the wire formats ([`provider::openai`], [`provider::anthropic`])
//! - [`chain`], [`retry`], [`breaker`]: fallback, backoff, circuit breaking
//! - [`price`], [`budget`], [`store`]: cost, per-diagnosis budget, `agent_executions`
//! - [`redact`]: secrets out before anything leaves
//! - [`record`]: recording, [`Replay`], comparison against another model
//! - [`settings`]: `[llm]` configuration and its validation
//! - [`client`]: [`Llm`], [`DiagnosisLlm`], [`AgentLlm`]

pub mod breaker;
pub mod budget;
pub mod chain;
pub mod chat;
pub mod client;
pub mod error;
pub mod price;
pub mod provider;
pub mod record;
pub mod redact;
pub mod retry;
pub mod settings;
pub mod store;

pub use budget::{Budget, Estimate, Ledger};
pub use chain::{FallbackChain, ProviderHandle};
pub use chat::{
    ChatModel, ChatRequest, ChatResponse, FinishReason, Message, OutputSchema, ToolCall,
    ToolDefinition,
};
pub use client::{
    AgentLlm, DiagnosisLlm, Execution, Llm, LlmAvailability, OfflineReason, TaskUsage,
};
pub use error::{BudgetResource, ErrorClass, LlmError, ProviderFailure};
pub use price::{ModelPrice, PriceTable};
pub use record::{Recorder, Recording, Replay};
pub use redact::{RedactionRules, RedactionSettings, Redactor};
pub use settings::{LlmSettings, SettingsError, SettingsErrors};
