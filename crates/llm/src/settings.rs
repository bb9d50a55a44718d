//! `[llm]` configuration: providers, per-agent fallback chains, prices,
//! retries, breaker, budget, redaction and recording, with a `validate()`
//! that reports every broken rule with the key to fix.
//!
//! The runtime's loader embeds [`LlmSettings`] under `[llm]`; environment
//! variables override keys as `ROOTCAUSE__LLM__PROVIDERS__OPENAI__API_KEY`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use rootcause_diagnosis::AgentKind;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::breaker::BreakerSettings;
use crate::budget::BudgetSettings;
use crate::price::{ModelPrice, PriceTable};
use crate::provider::StructuredMode;
use crate::provider::openai::TokenLimitField;
use crate::redact::{RedactionRules, RedactionSettings};
use crate::retry::RetrySettings;

/// Everything under `[llm]`. Every field has a default, and with no
/// providers the system runs offline (agents use their analyzers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {
    /// Timeout of one HTTP call, in milliseconds, unless the provider or the
    /// call sets its own.
    pub request_timeout_ms: u64,
    /// Providers by name; the name is what chains refer to.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Fallback chain per agent (`coordinator`, `log`, `metric`, `code`,
    /// `knowledge`, `database`) and `default` for agents not listed. When
    /// the table is empty every agent uses all providers in name order.
    #[serde(deserialize_with = "chains")]
    pub agents: BTreeMap<String, Vec<String>>,
    /// Prices per model, USD per million tokens; added to and overriding
    /// the built-in table.
    pub prices: BTreeMap<String, ModelPrice>,
    /// Retries of transient failures, per provider.
    pub retry: RetrySettings,
    /// Circuit breaker, per provider.
    pub breaker: BreakerSettings,
    /// Per-diagnosis budget.
    pub budget: BudgetSettings,
    /// Secret redaction.
    pub redaction: RedactionSettings,
    /// Recording of exchanges.
    pub recording: RecordingSettings,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            request_timeout_ms: 120_000,
            providers: BTreeMap::new(),
            agents: BTreeMap::new(),
            prices: BTreeMap::new(),
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
            budget: BudgetSettings::default(),
            redaction: RedactionSettings::default(),
            recording: RecordingSettings::default(),
        }
    }
}

/// Where recordings go (`[llm.recording]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSettings {
    /// When set, every diagnosis appends its exchanges to
    /// `<directory>/<session_id>.jsonl`.
    pub directory: Option<PathBuf>,
}

/// One provider; `kind` selects the wire format.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind")]
pub enum ProviderSettings {
    /// OpenAI Chat Completions.
    #[serde(rename = "openai")]
    OpenAi(OpenAiSettings),
    /// Anthropic Messages.
    #[serde(rename = "anthropic")]
    Anthropic(AnthropicSettings),
    /// Azure OpenAI.
    #[serde(rename = "azure_openai")]
    AzureOpenAi(AzureOpenAiSettings),
    /// Any OpenAI-compatible server.
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible(CompatibleSettings),
}

/// `kind = "openai"`.
#[derive(Debug, Clone, Deserialize)]
pub struct OpenAiSettings {
    /// Model, e.g. `gpt-4.1`.
    pub model: String,
    /// Key (`sk-…`).
    pub api_key: Option<SecretString>,
    /// Default `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    /// Per-provider timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `native` (default) or `prompt`.
    pub structured_output: Option<StructuredMode>,
    /// Default `max_completion_tokens`.
    pub token_limit_field: Option<TokenLimitField>,
}

/// `kind = "anthropic"`.
#[derive(Debug, Clone, Deserialize)]
pub struct AnthropicSettings {
    /// Model, e.g. `claude-sonnet-4-5`.
    pub model: String,
    /// Key (`sk-ant-…`).
    pub api_key: Option<SecretString>,
    /// Default `https://api.anthropic.com`.
    pub base_url: Option<String>,
    /// Default `2023-06-01`.
    pub anthropic_version: Option<String>,
    /// Per-provider timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `native` (default; recent models), `tool` (any model) or `prompt`.
    pub structured_output: Option<StructuredMode>,
}

/// `kind = "azure_openai"`.
#[derive(Debug, Clone, Deserialize)]
pub struct AzureOpenAiSettings {
    /// The model behind the deployment, for pricing (e.g. `gpt-4o`).
    pub model: String,
    /// `https://<resource>.openai.azure.com`.
    pub endpoint: String,
    /// Deployment name.
    pub deployment: String,
    /// Default `2024-10-21`.
    pub api_version: Option<String>,
    /// Key, sent as `api-key`.
    pub api_key: Option<SecretString>,
    /// Per-provider timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `native` (default) or `prompt`.
    pub structured_output: Option<StructuredMode>,
    /// Default `max_tokens`; `max_completion_tokens` for o-series deployments.
    pub token_limit_field: Option<TokenLimitField>,
}

/// `kind = "openai_compatible"`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompatibleSettings {
    /// Model name as the server knows it (e.g. `llama3.1:8b`).
    pub model: String,
    /// Where `/chat/completions` lives, e.g. `http://localhost:11434/v1`.
    pub base_url: String,
    /// Optional bearer key.
    pub api_key: Option<SecretString>,
    /// Per-provider timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `native` (default, `response_format` json_schema) or `prompt`.
    pub structured_output: Option<StructuredMode>,
    /// Default `max_tokens`.
    pub token_limit_field: Option<TokenLimitField>,
}

/// The default Azure `api-version`.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
/// The default OpenAI base URL.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The default Anthropic base URL.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

impl ProviderSettings {
    /// The model name.
    #[must_use]
    pub fn model(&self) -> &str {
        match self {
            Self::OpenAi(s) => &s.model,
            Self::Anthropic(s) => &s.model,
            Self::AzureOpenAi(s) => &s.model,
            Self::OpenAiCompatible(s) => &s.model,
        }
    }

    fn api_key(&self) -> Option<&SecretString> {
        match self {
            Self::OpenAi(s) => s.api_key.as_ref(),
            Self::Anthropic(s) => s.api_key.as_ref(),
            Self::AzureOpenAi(s) => s.api_key.as_ref(),
            Self::OpenAiCompatible(s) => s.api_key.as_ref(),
        }
    }

    fn key_required(&self) -> bool {
        !matches!(self, Self::OpenAiCompatible(_))
    }

    pub(crate) fn timeout_ms(&self) -> Option<u64> {
        match self {
            Self::OpenAi(s) => s.timeout_ms,
            Self::Anthropic(s) => s.timeout_ms,
            Self::AzureOpenAi(s) => s.timeout_ms,
            Self::OpenAiCompatible(s) => s.timeout_ms,
        }
    }

    pub(crate) fn structured(&self) -> StructuredMode {
        match self {
            Self::OpenAi(s) => s.structured_output,
            Self::Anthropic(s) => s.structured_output,
            Self::AzureOpenAi(s) => s.structured_output,
            Self::OpenAiCompatible(s) => s.structured_output,
        }
        .unwrap_or_default()
    }

    /// The URL settings as (key suffix, value).
    fn urls(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::OpenAi(s) => vec![(
                "base_url",
                s.base_url.as_deref().unwrap_or(DEFAULT_OPENAI_BASE_URL),
            )],
            Self::Anthropic(s) => vec![(
                "base_url",
                s.base_url.as_deref().unwrap_or(DEFAULT_ANTHROPIC_BASE_URL),
            )],
            Self::AzureOpenAi(s) => vec![("endpoint", s.endpoint.as_str())],
            Self::OpenAiCompatible(s) => vec![("base_url", s.base_url.as_str())],
        }
    }
}

/// Parses an http(s) URL with a host.
pub(crate) fn parse_http_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?} must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{raw:?} has no host"));
    }
    Ok(url)
}

/// One broken configuration rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The key to fix, e.g. `llm.providers.openai.api_key`.
    pub key: String,
    /// What is wrong and what to do.
    pub problem: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Every broken rule of the `[llm]` section, so one start reports them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LLM configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct SettingsErrors(pub Vec<SettingsError>);

impl SettingsErrors {
    /// Whether some error names `key`.
    #[must_use]
    pub fn names(&self, key: &str) -> bool {
        self.0.iter().any(|e| e.key == key)
    }
}

/// The agent names a chain may be configured for.
pub(crate) const DEFAULT_CHAIN: &str = "default";

impl LlmSettings {
    /// The price table: built-in prices plus `[llm.prices]`.
    #[must_use]
    pub fn price_table(&self) -> PriceTable {
        PriceTable::with_overrides(&self.prices)
    }

    /// The provider names of `agent`'s chain: its own entry, else
    /// `default`, else (with no `[llm.agents]` at all) every provider.
    #[must_use]
    pub fn chain_for(&self, agent: AgentKind) -> Vec<String> {
        if let Some(chain) = self
            .agents
            .get(agent.as_str())
            .or_else(|| self.agents.get(DEFAULT_CHAIN))
        {
            return chain.clone();
        }
        if self.agents.is_empty() {
            return self.providers.keys().cloned().collect();
        }
        Vec::new()
    }

    /// Checks every rule and returns all violations.
    ///
    /// # Errors
    /// [`SettingsErrors`] listing each broken rule with its key.
    pub fn validate(&self) -> Result<(), SettingsErrors> {
        let mut errors = Vec::new();
        let mut err = |key: String, problem: String| errors.push(SettingsError { key, problem });

        if self.request_timeout_ms == 0 {
            err("llm.request_timeout_ms".into(), "must be > 0".into());
        }
        let used: BTreeSet<String> = AgentKind::ALL
            .iter()
            .flat_map(|a| self.chain_for(*a))
            .collect();
        let prices = self.price_table();
        for (name, provider) in &self.providers {
            let key = |field: &str| format!("llm.providers.{name}.{field}");
            if provider.model().trim().is_empty() {
                err(key("model"), "is empty; name the model to call".into());
            } else if prices.get(provider.model()).is_none() {
                err(
                    format!("llm.prices.\"{}\"", provider.model()),
                    format!(
                        "model {:?} of {} has no price; add input, output and cached USD per million tokens \
                         (0 for a local model) so cost and budgets work",
                        provider.model(),
                        key("model")
                    ),
                );
            }
            let has_key = provider
                .api_key()
                .is_some_and(|k| !k.expose_secret().trim().is_empty());
            if provider.key_required() && !has_key && used.contains(name) {
                err(
                    key("api_key"),
                    format!(
                        "is missing but agents use provider {name}; set it (env ROOTCAUSE__LLM__PROVIDERS__{}__API_KEY) \
                         or remove the provider from [llm.agents]",
                        name.to_uppercase()
                    ),
                );
            }
            for (field, raw) in provider.urls() {
                if let Err(problem) = parse_http_url(raw) {
                    err(key(field), problem);
                }
            }
            if let ProviderSettings::AzureOpenAi(s) = provider {
                if s.deployment.trim().is_empty() {
                    err(
                        key("deployment"),
                        "is empty; name the Azure deployment".into(),
                    );
                }
                if s.api_version
                    .as_deref()
                    .is_some_and(|v| v.trim().is_empty())
                {
                    err(key("api_version"), "is empty; e.g. 2024-10-21".into());
                }
            }
            if provider.structured() == StructuredMode::Tool
                && !matches!(provider, ProviderSettings::Anthropic(_))
            {
                err(
                    key("structured_output"),
                    "\"tool\" is only for anthropic providers; use \"native\" or \"prompt\"".into(),
                );
            }
            if provider.timeout_ms() == Some(0) {
                err(key("timeout_ms"), "must be > 0".into());
            }
        }
        for (agent, chain) in &self.agents {
            let key = format!("llm.agents.{agent}");
            if agent != DEFAULT_CHAIN && !AgentKind::ALL.iter().any(|a| a.as_str() == agent) {
                err(
                    key.clone(),
                    format!(
                        "unknown agent {agent:?}; expected default, {}",
                        AgentKind::ALL.map(AgentKind::as_str).join(", ")
                    ),
                );
            }
            let mut seen = BTreeSet::new();
            for provider in chain {
                if !self.providers.contains_key(provider) {
                    err(
                        key.clone(),
                        format!("names provider {provider:?}, which is not under [llm.providers]"),
                    );
                }
                if !seen.insert(provider) {
                    err(key.clone(), format!("lists provider {provider:?} twice"));
                }
            }
        }
        for model in prices.invalid_entries() {
            err(
                format!("llm.prices.\"{model}\""),
                "prices must be finite and >= 0".into(),
            );
        }
        if self.retry.base_delay_ms == 0 {
            err("llm.retry.base_delay_ms".into(), "must be > 0".into());
        }
        if self.breaker.failure_threshold == 0 {
            err("llm.breaker.failure_threshold".into(), "must be > 0".into());
        }
        if let Some(usd) = self.budget.max_cost_usd
            && !(usd.is_finite() && usd >= 0.0)
        {
            err(
                "llm.budget.max_cost_usd".into(),
                format!("{usd} must be a finite amount >= 0"),
            );
        }
        if let Err((i, e)) = RedactionRules::new(&self.redaction) {
            err(
                format!("llm.redaction.extra_patterns[{i}]"),
                format!("is not a valid regular expression: {e}"),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SettingsErrors(errors))
        }
    }
}

/// Chains as TOML lists or as comma-separated strings, the form an
/// environment variable can carry (`ROOTCAUSE__LLM__AGENTS__DEFAULT=anthropic,openai`).
fn chains<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Chain {
        List(Vec<String>),
        Csv(String),
    }
    let raw = BTreeMap::<String, Chain>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(agent, chain)| {
            let list = match chain {
                Chain::List(l) => l,
                Chain::Csv(s) => s
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            (agent, list)
        })
        .collect())
}

#[cfg(test)]
mod tests {

    use super::*;

    fn parse(json: serde_json::Value) -> LlmSettings {
        serde_json::from_value(json).expect("settings parse")
    }

    #[test]
    fn empty_settings_are_valid_and_offline() {
        let s = LlmSettings::default();
        assert!(s.validate().is_ok());
        assert!(s.chain_for(AgentKind::Log).is_empty());
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_key() {
        let s = parse(serde_json::json!({
            "providers": {
                "openai": {"kind": "openai", "model": "gpt-4.1"},
                "local": {"kind": "openai_compatible", "model": "llama3.1:8b", "base_url": "localhost:11434"},
                "azure": {"kind": "azure_openai", "model": "gpt-4o", "endpoint": "https://x.openai.azure.com",
                          "deployment": "", "api_key": "k", "structured_output": "tool"}
            },
            "agents": {"default": ["openai", "local"], "logs": ["azure"], "coordinator": "azure, missing"},
            "redaction": {"extra_patterns": ["("]},
            "retry": {"base_delay_ms": 0}
        }));
        let errors = s.validate().expect_err("invalid");
        for key in [
            "llm.providers.openai.api_key",
            "llm.prices.\"llama3.1:8b\"",
            "llm.providers.local.base_url",
            "llm.providers.azure.deployment",
            "llm.providers.azure.structured_output",
            "llm.agents.logs",
            "llm.agents.coordinator",
            "llm.redaction.extra_patterns[0]",
            "llm.retry.base_delay_ms",
        ] {
            assert!(errors.names(key), "missing {key} in {errors}");
        }
        // The key error says how to set it from the environment.
        assert!(
            errors
                .to_string()
                .contains("ROOTCAUSE__LLM__PROVIDERS__OPENAI__API_KEY")
        );
    }

    #[test]
    fn unused_provider_without_key_is_fine_and_csv_chains_parse() {
        let s = parse(serde_json::json!({
            "providers": {
                "openai": {"kind": "openai", "model": "gpt-4.1"},
                "local": {"kind": "openai_compatible", "model": "llama3.1:8b", "base_url": "http://localhost:11434/v1"}
            },
            "agents": {"default": "local"},
            "prices": {"llama3.1:8b": {"input": 0.0, "output": 0.0}}
        }));
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.chain_for(AgentKind::Metric), vec!["local".to_owned()]);
    }
}
