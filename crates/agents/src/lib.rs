//! The agents of a diagnosis: coordinator, log, metric, code, knowledge and
//! database. Each runs a task either with an LLM (a tool-calling loop over
//! its tools, within a step and token budget) or offline (its analyzers on
//! what its tools return). The agent-worker, `rootcause diagnose --local`
//! and `rootcause eval` all run them through [`Agents::run`].
//!
//! Layout:
//! - [`runner`]: [`Agents`], [`AgentOutput`], [`AgentError`], [`ProgressSink`]
//! - [`settings`]: the `agents` section (rollout mode and canary, limits, bundle roots)
//! - [`offline`]: the analyzers' investigation of an incident bundle
//! - [`llm`]: the tool-calling loop and the coordinator with a model
//! - [`local`]: a whole diagnosis in one process (`diagnose --local`, `eval`)

mod engine;
pub mod llm;
pub mod local;
pub mod offline;
pub mod runner;
pub mod settings;

pub use runner::{AgentError, AgentOutput, Agents, NoProgress, ProgressSink};
pub use settings::{AgentsMode, AgentsSettings};

/// The examples in `docs/AGENTS.md` compile as doc tests.
#[doc = include_str!("../../../docs/AGENTS.md")]
#[cfg(doctest)]
pub struct AgentsDoc;
