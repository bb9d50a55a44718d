//! What the workflow refuses, as a type the orchestrator can answer with.

use rootcause_diagnosis::Status;

/// Why a control command or a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The diagnosis has ended; nothing can pause, resume or cancel it.
    #[error("the diagnosis has already ended ({}); start a new one instead", status.as_str())]
    Ended {
        /// Its final status.
        status: Status,
    },
    /// Pause was asked of a diagnosis that is not queued or running.
    #[error("cannot pause a diagnosis that is {}; only queued or running ones pause", status.as_str())]
    NotPausable {
        /// Its current status.
        status: Status,
    },
    /// Resume was asked of a diagnosis that is not paused.
    #[error("cannot resume a diagnosis that is {}; only paused ones resume", status.as_str())]
    NotPaused {
        /// Its current status.
        status: Status,
    },
    /// A configuration value breaks a rule; `key` names it as in the settings file.
    #[error("workflow.{key} {message}")]
    InvalidConfig {
        /// The offending key under `workflow`.
        key: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
}
