//! The fallback chain of one agent: providers in configured order, each
//! behind its circuit breaker, transient failures retried with backoff
//! before moving on, everything else moving on at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;

use crate::breaker::{Admission, BreakerState, CircuitBreaker};
use crate::chat::{ChatModel, ChatRequest, ChatResponse};
use crate::error::{LlmError, ProviderFailure};
use crate::price::ModelPrice;
use crate::retry::RetrySettings;

/// A provider as the chain uses it: the model, its breaker and its price.
/// Shared by every agent whose chain names it, so they share one breaker.
#[derive(Debug)]
pub struct ProviderHandle {
    model: Arc<dyn ChatModel>,
    breaker: CircuitBreaker,
    price: ModelPrice,
}

impl ProviderHandle {
    /// Wraps a model with a fresh breaker.
    #[must_use]
    pub fn new(model: Arc<dyn ChatModel>, breaker: CircuitBreaker, price: ModelPrice) -> Self {
        Self {
            model,
            breaker,
            price,
        }
    }

    /// The provider name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.model.provider()
    }

    /// The model name.
    #[must_use]
    pub fn model_name(&self) -> &str {
        self.model.model()
    }

    /// The model's price.
    #[must_use]
    pub fn price(&self) -> ModelPrice {
        self.price
    }

    /// The breaker's state.
    #[must_use]
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// One attempt: ask the breaker, send, tell the breaker how it went.
    async fn attempt(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if let Admission::Rejected { retry_in } = self.breaker.admit() {
            metrics::counter!("rootcause_llm_requests_total",
                "provider" => self.name().to_owned(), "outcome" => "circuit_open")
            .increment(1);
            return Err(LlmError::CircuitOpen {
                provider: self.name().to_owned(),
                retry_in,
            });
        }
        let started = Instant::now();
        let result = self.model.chat(request).await;
        metrics::histogram!("rootcause_llm_request_duration_seconds",
            "provider" => self.name().to_owned(), "model" => self.model_name().to_owned())
        .record(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => {
                self.breaker.on_success();
                "ok"
            }
            Err(e) if e.counts_against_provider() => {
                if self.breaker.on_failure() {
                    tracing::error!(provider = self.name(), error = %e,
                        "LLM provider circuit breaker opened; calls fail fast until the cool-down ends");
                }
                e.class().as_str()
            }
            Err(e) => {
                self.breaker.on_neutral();
                e.class().as_str()
            }
        };
        metrics::counter!("rootcause_llm_requests_total",
            "provider" => self.name().to_owned(), "outcome" => outcome)
        .increment(1);
        result
    }
}

/// An agent's providers in order of preference.
#[derive(Debug, Clone)]
pub struct FallbackChain {
    agent: String,
    members: Vec<Arc<ProviderHandle>>,
    retry: RetrySettings,
}

impl FallbackChain {
    /// A chain for `agent` over `members`, tried in order.
    #[must_use]
    pub fn new(agent: &str, members: Vec<Arc<ProviderHandle>>, retry: RetrySettings) -> Self {
        Self {
            agent: agent.to_owned(),
            members,
            retry,
        }
    }

    /// The agent the chain serves.
    #[must_use]
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The providers, in order.
    #[must_use]
    pub fn members(&self) -> &[Arc<ProviderHandle>] {
        &self.members
    }

    /// The most expensive price in the chain: what a budget estimate must
    /// assume, since any member may end up answering.
    #[must_use]
    pub fn worst_price(&self) -> ModelPrice {
        self.members
            .iter()
            .map(|m| m.price())
            .fold(ModelPrice::FREE, |a, b| ModelPrice {
                input: a.input.max(b.input),
                output: a.output.max(b.output),
                cached: Some(a.cached.unwrap_or(a.input).max(b.cached.unwrap_or(b.input))),
            })
    }

    /// Sends the request to the first provider that answers.
    ///
    /// # Errors
    /// [`LlmError::AllProvidersFailed`] listing each provider's last error.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut failures = Vec::new();
        for member in &self.members {
            match self.try_member(member, request).await {
                Ok(response) => {
                    if !failures.is_empty() {
                        tracing::warn!(agent = %self.agent, provider = member.name(),
                            failed = failures.len(), "answered by a fallback LLM provider");
                    }
                    return Ok(response);
                }
                Err(error) => {
                    if error.is_transient() || matches!(error, LlmError::CircuitOpen { .. }) {
                        tracing::warn!(agent = %self.agent, provider = member.name(), error = %error,
                            "LLM provider unavailable; trying the next one");
                    } else {
                        // Not fixed by waiting: a key, quota or request
                        // problem someone has to look at.
                        tracing::error!(agent = %self.agent, provider = member.name(),
                            error = %error, class = error.class().as_str(),
                            "LLM provider rejected the call; skipping to the next provider");
                    }
                    failures.push(ProviderFailure {
                        provider: member.name().to_owned(),
                        error: Box::new(error),
                    });
                }
            }
        }
        Err(LlmError::AllProvidersFailed {
            agent: self.agent.clone(),
            failures,
        })
    }

    async fn try_member(
        &self,
        member: &ProviderHandle,
        request: &ChatRequest,
    ) -> Result<ChatResponse, LlmError> {
        let retry = self.retry;
        (|| member.attempt(request))
            .retry(retry.backoff())
            .sleep(tokio::time::sleep)
            .when(LlmError::is_transient)
            .adjust(|error, step| {
                // Our own failures just opened the breaker: stop here and
                // keep the real error rather than retrying into a refusal.
                if member.breaker_state() == BreakerState::Open {
                    return None;
                }
                retry.delay_for(error, step)
            })
            .notify(|error: &LlmError, wait: Duration| {
                tracing::info!(provider = member.name(), error = %error,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "retrying LLM call after a transient failure");
            })
            .await
    }
}
