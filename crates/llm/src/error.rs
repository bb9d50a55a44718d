//! The one error every LLM call returns, classified at the provider boundary
//! so the fallback chain decides from the class alone: retry, next provider,
//! or stop.

use std::fmt;
use std::time::Duration;

use rootcause_diagnosis::db::StoreError;
use serde::{Deserialize, Serialize};

/// Why an LLM call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The provider throttled us (HTTP 429); `retry_after` is what it asked us to wait.
    #[error("{provider}: rate limited{}: {message}", fmt_after(*retry_after))]
    RateLimited {
        /// Provider name.
        provider: String,
        /// The `Retry-After` (or `retry-after-ms`) value, when sent.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// The provider is overloaded or failing (5xx, Anthropic 529).
    #[error(
        "{provider}: overloaded or failing (HTTP {status}): {message}; retried with backoff, then the next provider is tried"
    )]
    Overloaded {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's message, or the start of the body.
        message: String,
    },
    /// No complete answer within the call's timeout.
    #[error("{provider}: no answer within {} ms; raise llm.request_timeout_ms, the provider's timeout_ms or the call's timeout if the model is slow", after.as_millis())]
    Timeout {
        /// Provider name.
        provider: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection failed or was reset before an answer arrived.
    #[error(
        "{provider}: connection failed: {message}; check the base URL and that the server is reachable"
    )]
    Connection {
        /// Provider name.
        provider: String,
        /// What the HTTP client said.
        message: String,
    },
    /// The key was refused (401/403).
    #[error(
        "{provider}: authentication failed (HTTP {status}): {message}; check llm.providers.{provider}.api_key"
    )]
    Authentication {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The account is out of quota or credit (OpenAI `insufficient_quota`, Anthropic `billing_error`); waiting does not help.
    #[error(
        "{provider}: quota or billing limit reached: {message}; add credit or raise the limit at the provider"
    )]
    QuotaExceeded {
        /// Provider name.
        provider: String,
        /// The provider's message.
        message: String,
    },
    /// The provider rejected the request as malformed (400/404/422).
    #[error("{provider}: request rejected (HTTP {status}): {message}")]
    InvalidRequest {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The prompt does not fit the model's context window.
    #[error("{provider}: prompt exceeds the model's context window: {message}; send less context")]
    ContextTooLong {
        /// Provider name.
        provider: String,
        /// The provider's message.
        message: String,
    },
    /// The provider's safety filter blocked the prompt or the answer.
    #[error("{provider}: content filtered: {message}")]
    ContentFiltered {
        /// Provider name.
        provider: String,
        /// The provider's message.
        message: String,
    },
    /// The answer did not parse as the provider's documented format.
    #[error("{provider}: malformed response: {message}")]
    MalformedResponse {
        /// Provider name.
        provider: String,
        /// What was wrong, with the start of the body.
        message: String,
    },
    /// A structured answer still failed its schema after the one repair attempt.
    #[error(
        "{provider}: answer does not satisfy output schema {schema} after one repair attempt: {errors}"
    )]
    StructuredOutputInvalid {
        /// Provider name.
        provider: String,
        /// The schema's name.
        schema: String,
        /// Validation errors of the last answer.
        errors: String,
    },
    /// The provider's circuit breaker is open; the call was not sent.
    #[error("{provider}: circuit breaker open after repeated failures; next probe in {} ms", retry_in.as_millis())]
    CircuitOpen {
        /// Provider name.
        provider: String,
        /// Time until the breaker lets a probe through.
        retry_in: Duration,
    },
    /// An output schema did not compile (a bug in the calling agent).
    #[error("output schema {name} is not a valid JSON Schema: {message}")]
    InvalidSchema {
        /// The schema's name.
        name: String,
        /// The compiler's message.
        message: String,
    },
    /// The diagnosis budget would be exceeded; the call was not sent.
    #[error("diagnosis budget exceeded: {resource} spent {spent} + estimate {estimate} > limit {limit}; raise llm.budget.{} or conclude with the evidence gathered so far", resource.setting())]
    BudgetExceeded {
        /// Which limit.
        resource: BudgetResource,
        /// Already spent (and reserved by calls in flight).
        spent: u64,
        /// This call's estimate.
        estimate: u64,
        /// The limit.
        limit: u64,
    },
    /// Every provider of the agent's chain failed; each failure is listed.
    #[error(
        "every LLM provider for agent {agent} failed: {}",
        FailureList(failures)
    )]
    AllProvidersFailed {
        /// Agent name.
        agent: String,
        /// One entry per provider, in chain order.
        failures: Vec<ProviderFailure>,
    },
    /// No provider is configured for this agent; it should run its analyzers.
    #[error("no LLM provider is configured for agent {agent}; run the offline analyzers")]
    Offline {
        /// Agent name.
        agent: String,
    },
    /// The replay has no recorded answer for this request.
    #[error(
        "replay: no recorded exchange for agent {agent} matches request {fingerprint}; the run diverged from the recording"
    )]
    ReplayMiss {
        /// Agent name.
        agent: String,
        /// Fingerprint of the request that did not match.
        fingerprint: String,
    },
    /// A recorded exchange replayed as an error.
    #[error("{provider}: replayed {class:?} error: {message}")]
    Replayed {
        /// Provider name.
        provider: String,
        /// The recorded class.
        class: ErrorClass,
        /// The recorded message.
        message: String,
    },
    /// A recording could not be written or read.
    #[error("recording {path}: {message}")]
    Recording {
        /// File path.
        path: String,
        /// What failed.
        message: String,
    },
    /// Usage could not be stored in `agent_executions`.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which budget limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetResource {
    /// Input plus output tokens.
    Tokens,
    /// Cost in micro-USD.
    CostMicros,
}

impl BudgetResource {
    /// The setting that raises this limit.
    #[must_use]
    pub fn setting(self) -> &'static str {
        match self {
            Self::Tokens => "max_tokens",
            Self::CostMicros => "max_cost_usd",
        }
    }
}

impl fmt::Display for BudgetResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tokens => "tokens",
            Self::CostMicros => "cost (micro-USD)",
        })
    }
}

/// One provider's failure inside [`LlmError::AllProvidersFailed`].
#[derive(Debug)]
pub struct ProviderFailure {
    /// Provider name.
    pub provider: String,
    /// Its last error.
    pub error: Box<LlmError>,
}

struct FailureList<'a>(&'a [ProviderFailure]);

impl fmt::Display for FailureList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "[{}] {}", failure.provider, failure.error)?;
        }
        Ok(())
    }
}

fn fmt_after(d: Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {} ms)", d.as_millis()))
        .unwrap_or_default()
}

/// The class of an error, for recordings, metrics labels and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// [`LlmError::RateLimited`].
    RateLimited,
    /// [`LlmError::Overloaded`].
    Overloaded,
    /// [`LlmError::Timeout`].
    Timeout,
    /// [`LlmError::Connection`].
    Connection,
    /// [`LlmError::Authentication`].
    Authentication,
    /// [`LlmError::QuotaExceeded`].
    QuotaExceeded,
    /// [`LlmError::InvalidRequest`].
    InvalidRequest,
    /// [`LlmError::ContextTooLong`].
    ContextTooLong,
    /// [`LlmError::ContentFiltered`].
    ContentFiltered,
    /// [`LlmError::MalformedResponse`].
    MalformedResponse,
    /// [`LlmError::StructuredOutputInvalid`].
    StructuredOutputInvalid,
    /// [`LlmError::CircuitOpen`].
    CircuitOpen,
    /// [`LlmError::BudgetExceeded`].
    BudgetExceeded,
    /// [`LlmError::AllProvidersFailed`].
    AllProvidersFailed,
    /// [`LlmError::Offline`].
    Offline,
    /// Replay, recording and store errors.
    Internal,
}

impl ErrorClass {
    /// A stable label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Authentication => "authentication",
            Self::QuotaExceeded => "quota_exceeded",
            Self::InvalidRequest => "invalid_request",
            Self::ContextTooLong => "context_too_long",
            Self::ContentFiltered => "content_filtered",
            Self::MalformedResponse => "malformed_response",
            Self::StructuredOutputInvalid => "structured_output_invalid",
            Self::CircuitOpen => "circuit_open",
            Self::BudgetExceeded => "budget_exceeded",
            Self::AllProvidersFailed => "all_providers_failed",
            Self::Offline => "offline",
            Self::Internal => "internal",
        }
    }
}

impl LlmError {
    /// The error's class.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::RateLimited { .. } => ErrorClass::RateLimited,
            Self::Overloaded { .. } => ErrorClass::Overloaded,
            Self::Timeout { .. } => ErrorClass::Timeout,
            Self::Connection { .. } => ErrorClass::Connection,
            Self::Authentication { .. } => ErrorClass::Authentication,
            Self::QuotaExceeded { .. } => ErrorClass::QuotaExceeded,
            Self::InvalidRequest { .. } => ErrorClass::InvalidRequest,
            Self::ContextTooLong { .. } => ErrorClass::ContextTooLong,
            Self::ContentFiltered { .. } => ErrorClass::ContentFiltered,
            Self::MalformedResponse { .. } => ErrorClass::MalformedResponse,
            Self::StructuredOutputInvalid { .. } => ErrorClass::StructuredOutputInvalid,
            Self::CircuitOpen { .. } => ErrorClass::CircuitOpen,
            Self::BudgetExceeded { .. } => ErrorClass::BudgetExceeded,
            Self::AllProvidersFailed { .. } => ErrorClass::AllProvidersFailed,
            Self::Offline { .. } => ErrorClass::Offline,
            Self::Replayed { class, .. } => *class,
            Self::ReplayMiss { .. }
            | Self::Recording { .. }
            | Self::Store(_)
            | Self::InvalidSchema { .. } => ErrorClass::Internal,
        }
    }

    /// Whether waiting and sending the same request again may succeed:
    /// throttling, overload, timeouts, resets and garbled answers (a proxy's
    /// HTML error page). Everything else goes straight to the next provider.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::RateLimited
                | ErrorClass::Overloaded
                | ErrorClass::Timeout
                | ErrorClass::Connection
                | ErrorClass::MalformedResponse
        )
    }

    /// Whether the failure says the provider itself is unhealthy or unusable
    /// (so it counts towards opening its circuit breaker). A request the
    /// provider rejects on its merits (too long, filtered, invalid) says
    /// nothing about the next request and does not count.
    #[must_use]
    pub fn counts_against_provider(&self) -> bool {
        self.is_transient()
            || matches!(
                self.class(),
                ErrorClass::Authentication | ErrorClass::QuotaExceeded
            )
    }

    /// The `Retry-After` the provider sent, if any.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Rebuilds a recorded error for replay.
    #[must_use]
    pub fn replayed(provider: &str, class: ErrorClass, message: String) -> Self {
        Self::Replayed {
            provider: provider.to_owned(),
            class,
            message,
        }
    }
}
