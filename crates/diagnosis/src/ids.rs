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

/// A tenant id that breaks the rule of [`TenantId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant id {tenant:?} is invalid: use 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit"
)]
pub struct InvalidTenant {
    /// The value refused.
    pub tenant: String,
}

/// The tenant a diagnosis belongs to; every read is scoped by it so one team
/// never sees another's incidents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub String);

impl TenantId {
    /// Wraps a tenant name as given by authentication. Reads of the event
    /// store check it ([`TenantId::validate`]); use [`TenantId::parse`] where
    /// the name comes from outside.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// A tenant id from outside (a token, a header, a flag), checked: 1 to
    /// 63 characters, lowercase ASCII letters, digits, `_` and `-`, starting
    /// with a letter or digit. Anything else could widen a pattern built
    /// from it (an Elasticsearch index `logs-{tenant}-*` with a `,` or `*`
    /// in it, a metrics tenant header with a `|`).
    ///
    /// # Errors
    /// [`InvalidTenant`] naming the value and the rule.
    pub fn parse(name: &str) -> Result<Self, InvalidTenant> {
        let tenant = Self(name.to_owned());
        tenant.validate()?;
        Ok(tenant)
    }

    /// Checks the id against the rule of [`TenantId::parse`].
    ///
    /// # Errors
    /// [`InvalidTenant`] naming the value and the rule.
    pub fn validate(&self) -> Result<(), InvalidTenant> {
        let bytes = self.0.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let valid = (1..=63).contains(&bytes.len())
            && bytes.first().is_some_and(allowed)
            && bytes.iter().all(|b| allowed(b) || *b == b'_' || *b == b'-');
        if valid {
            Ok(())
        } else {
            Err(InvalidTenant {
                tenant: self.0.clone(),
            })
        }
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

#[cfg(test)]
mod tenant_tests {
    use super::TenantId;

    #[test]
    fn tenant_ids_that_could_widen_a_pattern_are_refused() {
        for ok in ["acme", "a", "team-1", "t_2", &"x".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "a,b",
            "logs-*",
            "a|b",
            "-acme",
            "_a",
            "a b",
            "ä",
            &"x".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
