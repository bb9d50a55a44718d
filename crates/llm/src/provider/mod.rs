//! HTTP providers: what they share (sending JSON, timeouts, classifying
//! transport failures, reading `Retry-After`) and one module per wire format.
//!
//! - [`openai`]: the Chat Completions format, spoken by OpenAI, Azure OpenAI
//!   and OpenAI-compatible servers (vLLM, Ollama, llama.cpp), which differ only
//!   in URL, authentication header and a few parameter names.
//! - [`anthropic`]: the Messages API.

pub mod anthropic;
pub mod openai;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Serialize;

use crate::error::LlmError;

/// How a provider answers structured-output requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredMode {
    /// The provider's own JSON Schema support (OpenAI `response_format`,
    /// Anthropic `output_config.format`).
    #[default]
    Native,
    /// Anthropic only: a forced tool whose input schema is the output schema;
    /// works on every Claude model, including those without native support.
    Tool,
    /// The schema goes into the system prompt and the answer is parsed from
    /// the text; for local servers without constrained decoding.
    Prompt,
}

/// An answer over HTTP, before the wire format reads it.
pub(crate) struct HttpAnswer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// The HTTP side every provider shares.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) provider: String,
    pub(crate) default_timeout: Duration,
}

impl Http {
    pub(crate) fn new(client: reqwest::Client, provider: &str, default_timeout: Duration) -> Self {
        Self {
            client,
            provider: provider.to_owned(),
            default_timeout,
        }
    }

    /// POSTs `body` as JSON with `headers`, waiting at most `timeout` for the
    /// whole answer (connect, headers and body).
    pub(crate) async fn post_json<B: Serialize + ?Sized>(
        &self,
        url: &url::Url,
        headers: HeaderMap,
        body: &B,
        timeout: Option<Duration>,
    ) -> Result<HttpAnswer, LlmError> {
        let timeout = timeout.unwrap_or(self.default_timeout);
        let started = Instant::now();
        let result = async {
            let response = self
                .client
                .post(url.clone())
                .headers(headers)
                .json(body)
                .timeout(timeout)
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(HttpAnswer {
                status,
                headers,
                body,
            })
        }
        .await;
        result.map_err(|e| self.transport_error(&e, timeout, started.elapsed()))
    }

    fn transport_error(
        &self,
        e: &reqwest::Error,
        timeout: Duration,
        elapsed: Duration,
    ) -> LlmError {
        if e.is_timeout() || elapsed >= timeout {
            LlmError::Timeout {
                provider: self.provider.clone(),
                after: timeout,
            }
        } else {
            LlmError::Connection {
                provider: self.provider.clone(),
                message: error_chain(e),
            }
        }
    }
}

/// The error and its sources on one line ("error sending request: connection
/// closed before message completed").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// How long the provider asked us to wait: `retry-after-ms` (OpenAI, Azure)
/// wins over `retry-after`, which is seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(ms) =
        header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header_str(headers, "retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The start of a body for an error message: enough to recognise an HTML
/// error page, not enough to flood a log.
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Classifies an error status whose body said nothing more specific.
pub(crate) fn classify_status(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    message: String,
) -> LlmError {
    let provider = provider.to_owned();
    match status.as_u16() {
        401 | 403 => LlmError::Authentication {
            provider,
            status: status.as_u16(),
            message,
        },
        402 => LlmError::QuotaExceeded { provider, message },
        408 => LlmError::Overloaded {
            provider,
            status: status.as_u16(),
            message,
        },
        413 => LlmError::ContextTooLong { provider, message },
        429 => LlmError::RateLimited {
            provider,
            retry_after: retry_after(headers, Utc::now()),
            message,
        },
        409 | 500..=599 => LlmError::Overloaded {
            provider,
            status: status.as_u16(),
            message,
        },
        s => LlmError::InvalidRequest {
            provider,
            status: s,
            message,
        },
    }
}

/// Whether a provider message says the prompt is too long; servers without
/// a dedicated error code (vLLM, llama.cpp, Anthropic) say it in words.
pub(crate) fn says_context_too_long(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context length",
        "context_length",
        "context window",
        "prompt is too long",
        "too many tokens",
        "exceeds the context",
        "maximum context",
        "input is too long",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Strips a Markdown code fence around JSON, which prompt-mode models add.
pub(crate) fn strip_json_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

/// The system-prompt text that asks for JSON in prompt mode.
pub(crate) fn prompt_mode_instruction(output: &crate::chat::OutputSchema) -> String {
    format!(
        "Answer with a single JSON document and nothing else (no prose, no code fence). \
         It must satisfy this JSON Schema (named {}):\n{}",
        output.name, output.schema
    )
}

#[cfg(test)]
mod tests {

    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("valid header"));
        }
        h
    }

    #[test]
    fn retry_after_reads_seconds_ms_and_dates() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "7"), ("retry-after-ms", "250")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 01 Jan 2025 00:00:30 GMT")]),
                now
            ),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now".
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Tue, 31 Dec 2024 23:00:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    #[test]
    fn statuses_map_to_classes() {
        let h = headers(&[("retry-after", "3")]);
        let class = |s: u16| {
            classify_status(
                "p",
                StatusCode::from_u16(s).expect("status"),
                &h,
                String::new(),
            )
            .class()
        };
        use crate::error::ErrorClass as C;
        assert_eq!(class(401), C::Authentication);
        assert_eq!(class(403), C::Authentication);
        assert_eq!(class(400), C::InvalidRequest);
        assert_eq!(class(404), C::InvalidRequest);
        assert_eq!(class(413), C::ContextTooLong);
        assert_eq!(class(429), C::RateLimited);
        assert_eq!(class(500), C::Overloaded);
        assert_eq!(class(503), C::Overloaded);
        assert_eq!(class(529), C::Overloaded);
    }

    #[test]
    fn fences_are_stripped() {
        assert_eq!(strip_json_fence("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_json_fence(" {\"a\":1} "), "{\"a\":1}");
    }

    #[test]
    fn snippet_is_bounded() {
        let long = "x".repeat(1000);
        assert!(snippet(long.as_bytes()).chars().count() <= 201);
        assert_eq!(snippet(b""), "(empty body)");
    }
}
