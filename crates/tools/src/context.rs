//! What every tool call knows about the diagnosis it serves.
//!
//! Tools default their queries to the incident window, and every data source
//! checks the tenant so one team never reads another team's data.

use chrono::{DateTime, Duration, Utc};
use rootcause_diagnosis::{SessionId, TenantId, TimeWindow};

use crate::error::ToolError;

/// The diagnosis a tool call is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolContext {
    /// Whose data may be read.
    pub tenant: TenantId,
    /// The incident window: the default time range of every query.
    pub window: TimeWindow,
    /// The session, for tracing; `None` outside a diagnosis (CLI, tests).
    pub session_id: Option<SessionId>,
}

impl ToolContext {
    /// A context for `tenant` over `window`.
    #[must_use]
    pub fn new(tenant: TenantId, window: TimeWindow) -> Self {
        Self {
            tenant,
            window,
            session_id: None,
        }
    }

    /// The same context tagged with a session, for tracing.
    #[must_use]
    pub fn with_session(mut self, session_id: SessionId) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// The range a query covers: the given bounds, or the incident window
    /// where a bound is missing.
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] naming `start`/`end` when the range is
    /// empty or inverted.
    pub fn range(
        &self,
        tool: &str,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), ToolError> {
        let start = start.unwrap_or(self.window.start());
        let end = end.unwrap_or(self.window.end());
        if end <= start {
            return Err(ToolError::bad_argument(
                tool,
                "/end",
                format!("end {end} must be after start {start}"),
            ));
        }
        Ok((start, end))
    }

    /// Like [`Self::range`], but a missing start defaults to `lookback`
    /// before the window: causes (commits, deploys) precede their incident.
    ///
    /// # Errors
    /// As [`Self::range`].
    pub fn range_with_lookback(
        &self,
        tool: &str,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        lookback: Duration,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), ToolError> {
        self.range(
            tool,
            Some(start.unwrap_or(self.window.start() - lookback)),
            end,
        )
    }

    /// Checks that a source owned by `owner` may serve this context.
    ///
    /// # Errors
    /// [`ToolError::TenantMismatch`] when the tenants differ.
    pub fn check_tenant(&self, tool: &str, owner: &TenantId) -> Result<(), ToolError> {
        if &self.tenant == owner {
            Ok(())
        } else {
            Err(ToolError::TenantMismatch {
                tool: tool.to_owned(),
                owner: owner.to_string(),
                tenant: self.tenant.to_string(),
            })
        }
    }
}
