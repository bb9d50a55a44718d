//! The listing cursor: where a page of sessions ended.
//!
//! Keyset paging on `(created_at, session_id)` instead of `OFFSET`: a page
//! costs the same at the end of a long list as at its start, and sessions
//! created while a client pages do not shift what it sees.
//!
//! The token is `s1.<created_at in µs>.<session id, 32 hex>`: URL-safe,
//! versioned so the format can change, and short. Clients treat it as
//! opaque. It is not base64 because nothing in it needs hiding and a
//! readable token is easier to debug; it carries no tenant, and the listing
//! is scoped by the caller's tenant anyway, so a forged cursor reveals
//! nothing.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::SessionId;

/// The last session of a page; the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionCursor {
    /// Its creation time (PostgreSQL keeps microseconds, and so does the token).
    pub created_at: DateTime<Utc>,
    /// Its id, breaking ties between sessions created in the same microsecond.
    pub session_id: SessionId,
}

/// A cursor token that is not one this store issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "listing cursor {token:?} is not valid ({reason}); pass the `next` value of the previous page unchanged, or omit it to start from the newest"
)]
pub struct CursorError {
    /// The token given.
    pub token: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const VERSION: &str = "s1";

impl fmt::Display for SessionCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}.{}.{}",
            self.created_at.timestamp_micros(),
            self.session_id.0.simple()
        )
    }
}

impl FromStr for SessionCursor {
    type Err = CursorError;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        let err = |reason| CursorError {
            token: token.to_owned(),
            reason,
        };
        let mut parts = token.split('.');
        let (Some(version), Some(micros), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("expected three dot-separated parts"));
        };
        if version != VERSION {
            return Err(err("unknown version"));
        }
        let micros: i64 = micros.parse().map_err(|_| err("time is not a number"))?;
        let created_at =
            DateTime::from_timestamp_micros(micros).ok_or_else(|| err("time is out of range"))?;
        if id.len() != 32 {
            return Err(err("session id is not 32 hex digits"));
        }
        let session_id = Uuid::try_parse(id)
            .map(SessionId)
            .map_err(|_| err("session id is not 32 hex digits"))?;
        Ok(Self {
            created_at,
            session_id,
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn round_trips_to_the_microsecond() {
        let at = DateTime::from_timestamp_micros(1_772_460_000_123_456).unwrap();
        let c = SessionCursor {
            created_at: at,
            session_id: SessionId::new(),
        };
        let token = c.to_string();
        assert!(token.starts_with("s1.1772460000123456."));
        assert_eq!(token.parse::<SessionCursor>().unwrap(), c);
    }

    #[test]
    fn rejects_tokens_it_did_not_issue() {
        let id = Uuid::nil().simple().to_string();
        for bad in [
            String::new(),
            "s1.12".to_owned(),
            format!("s2.12.{id}"),
            format!("s1.x.{id}"),
            "s1.12.nothex".to_owned(),
            format!("s1.12.{id}.extra"),
            format!("s1.{}.{id}", i64::MAX),
        ] {
            let e = bad.parse::<SessionCursor>().unwrap_err();
            assert_eq!(e.token, bad);
        }
    }
}
