//! The agents' system prompts: versioned files compiled into the binary, so
//! a deployed worker always runs the prompt it was tested with, and every
//! output names the version that produced it (`log.v1`).
//!
//! To change a prompt, copy `prompts/<name>.v1.md` to `<name>.v2.md`, edit
//! it, and point [`Prompt::for_agent`] (or the coordinator's constants) at
//! the new file; outputs then say `v2`, so runs of the two versions can be
//! compared.

use rootcause_diagnosis::AgentKind;

/// One system prompt and the version it is recorded under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prompt {
    /// The prompt's name and version, as recorded in outputs (`log.v1`).
    pub id: &'static str,
    /// The text sent as the system message.
    pub text: &'static str,
}

/// The coordinator's planning prompt.
pub const COORDINATOR_PLAN: Prompt = Prompt {
    id: "coordinator-plan.v1",
    text: include_str!("../../prompts/coordinator-plan.v1.md"),
};

/// The coordinator's evaluation and synthesis prompt.
pub const COORDINATOR_SYNTHESIS: Prompt = Prompt {
    id: "coordinator-synthesis.v1",
    text: include_str!("../../prompts/coordinator-synthesis.v1.md"),
};

const LOG: Prompt = Prompt {
    id: "log.v1",
    text: include_str!("../../prompts/log.v1.md"),
};
const METRIC: Prompt = Prompt {
    id: "metric.v1",
    text: include_str!("../../prompts/metric.v1.md"),
};
const CODE: Prompt = Prompt {
    id: "code.v1",
    text: include_str!("../../prompts/code.v1.md"),
};
const KNOWLEDGE: Prompt = Prompt {
    id: "knowledge.v1",
    text: include_str!("../../prompts/knowledge.v1.md"),
};
const DATABASE: Prompt = Prompt {
    id: "database.v1",
    text: include_str!("../../prompts/database.v1.md"),
};

impl Prompt {
    /// The investigation prompt of `agent`; `None` for the coordinator,
    /// whose prompts depend on the phase ([`COORDINATOR_PLAN`],
    /// [`COORDINATOR_SYNTHESIS`]).
    #[must_use]
    pub fn for_agent(agent: AgentKind) -> Option<Self> {
        match agent {
            AgentKind::Coordinator => None,
            AgentKind::Log => Some(LOG),
            AgentKind::Metric => Some(METRIC),
            AgentKind::Code => Some(CODE),
            AgentKind::Knowledge => Some(KNOWLEDGE),
            AgentKind::Database => Some(DATABASE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_investigator_has_a_versioned_prompt_naming_its_contract() {
        for agent in AgentKind::ALL {
            let Some(prompt) = Prompt::for_agent(agent) else {
                assert_eq!(agent, AgentKind::Coordinator);
                continue;
            };
            assert_eq!(prompt.id, format!("{agent}.v1"));
            assert!(prompt.text.contains("Output contract"), "{}", prompt.id);
            assert!(prompt.text.contains("call ids"), "{}", prompt.id);
        }
        for prompt in [COORDINATOR_PLAN, COORDINATOR_SYNTHESIS] {
            assert!(prompt.text.contains("Output contract"), "{}", prompt.id);
        }
    }
}
