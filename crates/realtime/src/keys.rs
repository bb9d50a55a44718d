//! Names of every key and channel the crate uses, in one place.
//!
//! All of them start with the configured prefix, so one Redis can hold several
//! deployments, and a test can find and delete exactly what it wrote.

use rootcause_diagnosis::SessionId;

use crate::session::ClientSessionId;

/// Builds key and channel names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix` (e.g. `rootcause:`; include the separator yourself).
    #[must_use]
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every name starts with.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>session:<id>`: one WebSocket client session's JSON value.
    #[must_use]
    pub fn client_session(&self, id: ClientSessionId) -> String {
        format!("{}session:{id}", self.prefix)
    }

    /// `<prefix>events:<session_id>`: the Pub/Sub channel of one diagnosis session.
    #[must_use]
    pub fn events_channel(&self, session_id: SessionId) -> String {
        format!("{}events:{session_id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_kind_and_id() {
        let keys = Keys::new("t1:");
        let sid = SessionId::new();
        let cid = ClientSessionId::new();
        assert_eq!(keys.events_channel(sid), format!("t1:events:{sid}"));
        assert_eq!(keys.client_session(cid), format!("t1:session:{cid}"));
    }
}
