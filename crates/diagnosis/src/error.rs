//! Typed errors of the diagnosis crate.

use chrono::{DateTime, Utc};

use crate::ids::{EvidenceId, HypothesisId, SessionId, TaskId};
use crate::state::Status;

/// Why an incident report was rejected. Every variant names the field, so an
/// API can point the user at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IncidentError {
    /// The title is empty or only whitespace.
    #[error("title must not be empty: give the incident a one-line summary")]
    EmptyTitle,
    /// The severity is not one of the four known values.
    #[error("severity {value:?} is unknown; expected one of critical, high, medium, low")]
    UnknownSeverity {
        /// The value that was given.
        value: String,
    },
    /// The window ends before (or when) it starts.
    #[error("window.end ({end}) must be after window.start ({start})")]
    WindowInverted {
        /// Given start.
        start: DateTime<Utc>,
        /// Given end.
        end: DateTime<Utc>,
    },
    /// The window is longer than seven days.
    #[error(
        "window spans {hours} h; the longest window is 7 days (168 h): narrow it to the incident"
    )]
    WindowTooLong {
        /// Length of the given window in hours.
        hours: i64,
    },
    /// One of the services is an empty string.
    #[error("services[{index}] must not be empty")]
    EmptyService {
        /// Index of the empty entry.
        index: usize,
    },
    /// A text field holds a NUL character, which PostgreSQL text cannot
    /// store: refused here rather than failing later at insert.
    #[error("{field} contains a NUL character (\\u0000); remove it")]
    ContainsNul {
        /// The field, as spelled in `incident.json` (`labels.team`).
        field: String,
    },
    /// A text field is longer than its limit.
    #[error("{field} is {len} characters long; the limit is {max}")]
    TooLong {
        /// The field.
        field: String,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A list or map has more entries than its limit.
    #[error("{field} has {count} entries; the limit is {max}")]
    TooMany {
        /// The field.
        field: String,
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The JSON could not be read as an incident.
    #[error("incident JSON is malformed at {path}: {message}")]
    Json {
        /// JSON path of the failure (`.` for the root).
        path: String,
        /// What the parser said.
        message: String,
    },
}

impl IncidentError {
    /// The incident field the error is about, as it is spelled in `incident.json`.
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            Self::EmptyTitle => "title",
            Self::UnknownSeverity { .. } => "severity",
            Self::WindowInverted { .. } | Self::WindowTooLong { .. } => "window",
            Self::EmptyService { .. } => "services",
            Self::Json { path, .. } => path,
            Self::ContainsNul { field }
            | Self::TooLong { field, .. }
            | Self::TooMany { field, .. } => field,
        }
    }
}

/// Why an event could not be applied to a state. Applying never half-applies:
/// on error the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The event's seq is not the next one; applying it would corrupt the fold.
    #[error("event seq {got} does not follow seq {last}; expected {}", last + 1)]
    OutOfOrder {
        /// Last applied seq.
        last: u64,
        /// The event's seq.
        got: u64,
    },
    /// The event belongs to another session.
    #[error("event for session {got} applied to session {expected}")]
    WrongSession {
        /// The state's session.
        expected: SessionId,
        /// The event's session.
        got: SessionId,
    },
    /// A session's first event must be `created` with seq 1.
    #[error("a session starts with a `created` event at seq 1, got `{kind}` at seq {seq}")]
    NotGenesis {
        /// Kind of the offending event.
        kind: &'static str,
        /// Its seq.
        seq: u64,
    },
    /// A second `created` event.
    #[error("session {session_id} was already created")]
    AlreadyCreated {
        /// The session.
        session_id: SessionId,
    },
    /// The event is not allowed in the session's current status.
    #[error("`{kind}` is not allowed while the session is {status:?}")]
    InvalidTransition {
        /// Kind of the offending event.
        kind: &'static str,
        /// Current status.
        status: Status,
    },
    /// The event refers to a task that was never dispatched.
    #[error("task {task_id} was never dispatched")]
    UnknownTask {
        /// The task.
        task_id: TaskId,
    },
    /// The event refers to a hypothesis that does not exist.
    #[error("hypothesis {id} does not exist")]
    UnknownHypothesis {
        /// The hypothesis.
        id: HypothesisId,
    },
    /// The event refers to evidence that does not exist.
    #[error("evidence {id} does not exist")]
    UnknownEvidence {
        /// The evidence.
        id: EvidenceId,
    },
    /// An id was added twice.
    #[error("{what} {id} already exists")]
    DuplicateId {
        /// What kind of id.
        what: &'static str,
        /// The id, as text.
        id: String,
    },
    /// A replay was asked for with no events.
    #[error("no events to replay")]
    NoEvents,
}
