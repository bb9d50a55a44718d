//! Why handling a message failed, and what the consumer does about it.

use rootcause_bus::{BusError, Outcome, Reason};
use rootcause_diagnosis::db::StoreError;
use rootcause_workflow::{DriveError, WorkflowError};

/// A failure while handling one message or one tick. Any of them rolls the
/// message's transaction back.
#[derive(Debug, thiserror::Error)]
pub enum OrchError {
    /// The event store failed (database down, session missing, a stored row
    /// that does not parse).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workflow decided something that does not fit the state, or a
    /// report's events do not fit it.
    #[error(transparent)]
    Drive(#[from] DriveError),
    /// A user's control does not apply to the diagnosis as it stands.
    #[error("control refused: {0}")]
    Rejected(#[source] WorkflowError),
    /// A task could not be written to the outbox.
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<rootcause_diagnosis::ApplyError> for OrchError {
    fn from(e: rootcause_diagnosis::ApplyError) -> Self {
        Self::Drive(DriveError::Apply(e))
    }
}

impl From<diesel::result::Error> for OrchError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

impl OrchError {
    /// What the consumer does with the message: another attempt for what a
    /// dependency coming back may fix; a dead letter (kept for an operator)
    /// for what no retry can fix; an ack for a refused control, which is
    /// the user's mistake, logged, not an operator's matter.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Rejected(_) => Outcome::Done,
            Self::Store(
                e @ (StoreError::SessionNotFound { .. }
                | StoreError::Corrupt { .. }
                | StoreError::Apply(_)
                | StoreError::InvalidTenant(_)
                | StoreError::Duplicate { .. }),
            ) => Outcome::Dead(Reason::new(e.to_string())),
            Self::Store(e) => Outcome::Retry(Reason::new(e.to_string())),
            Self::Drive(e) => Outcome::Dead(Reason::new(e.to_string())),
            Self::Bus(e) if e.is_transient() => Outcome::Retry(Reason::new(e.to_string())),
            Self::Bus(e) => Outcome::Dead(Reason::new(e.to_string())),
        }
    }
}
