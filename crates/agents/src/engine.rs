//! The agents' dispatch: which agent runs a task and how (LLM or offline).
//! Internal to the crate; callers use [`crate::Agents`].

use std::sync::Arc;

use rootcause_diagnosis::AgentTask;

use crate::runner::{AgentError, AgentOutput, ProgressSink};
use crate::settings::AgentsSettings;

/// Long-lived state shared by every task of a process.
pub(crate) struct Engine {
    #[allow(dead_code)]
    settings: AgentsSettings,
    #[allow(dead_code)]
    tools: rootcause_tools::settings::ToolsSettings,
    #[allow(dead_code)]
    llm: Option<Arc<rootcause_llm::Llm>>,
}

impl Engine {
    pub(crate) fn new(
        settings: AgentsSettings,
        tools: rootcause_tools::settings::ToolsSettings,
        llm: Option<Arc<rootcause_llm::Llm>>,
    ) -> Self {
        Self {
            settings,
            tools,
            llm,
        }
    }

    pub(crate) async fn run(
        &self,
        task: &AgentTask,
        _worker: &str,
        _sink: Arc<dyn ProgressSink>,
    ) -> Result<AgentOutput, AgentError> {
        Err(AgentError::Permanent(format!(
            "the {} agent is not wired yet",
            task.agent
        )))
    }
}
