//! Identifier newtypes.
//!
//! Every id is its own type so that a task id can never be passed where a
//! session id is expected; all of them serialize as a bare UUID string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh UUID v7: time-ordered, so ids sort by creation time in
            /// indexes and logs.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID, for storage layers that bind it directly.
            #[must_use]
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// Identifies one diagnosis from start to conclusion, across every
    /// service, event, message and WebSocket frame.
    SessionId
);
uuid_id!(
    /// Identifies one event in the event log; `parent_id` links refer to it.
    EventId
);
uuid_id!(
    /// Identifies one bus message; consumers record it to make redelivery a no-op.
    MessageId
);
uuid_id!(
    /// Identifies one agent task (all attempts of it share the id).
    TaskId
);
uuid_id!(
    /// Identifies one piece of evidence, so hypotheses and conclusions can cite it.
    EvidenceId
);
uuid_id!(
    /// Identifies one hypothesis in the hypothesis tree.
    HypothesisId
);

/// The tenant a diagnosis belongs to; every read is scoped by it so one team
/// never sees another's incidents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub String);

impl TenantId {
    /// Wraps a tenant name as given by authentication.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The tenant name, for storage and log fields.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
