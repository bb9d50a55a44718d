//! Redaction of secrets before any text leaves for a provider.
//!
//! Rules run in a fixed order (private keys, URL credentials, JWTs, vendor
//! API keys, authorization headers, `key=value` secrets, e-mail addresses,
//! then configured extra patterns). Each secret becomes a placeholder like
//! `[REDACTED_API_KEY_3f9a1c2b]`, where the suffix is an HMAC-SHA256 of the
//! secret keyed by the diagnosis: the same secret always gets the same
//! placeholder within a diagnosis (in every process, so the model can still
//! tell "the same token appears in both logs"), while the placeholder says
//! nothing about the secret and differs between diagnoses.
//!
//! Placeholders never match a rule themselves, so redacting twice changes
//! nothing (which makes replays of redacted recordings byte-identical).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use regex::Regex;
use serde::Deserialize;
use sha2::Sha256;

use crate::chat::ChatRequest;

/// Redaction configuration (`[llm.redaction]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionSettings {
    /// Replace e-mail addresses too.
    pub emails: bool,
    /// More regular expressions to redact. When a pattern has a capture
    /// group, only the first group is replaced (so `(?i)ticket=(\w+)` keeps
    /// `ticket=`).
    pub extra_patterns: Vec<String>,
}

impl Default for RedactionSettings {
    fn default() -> Self {
        Self {
            emails: true,
            extra_patterns: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Rule {
    kind: &'static str,
    regex: Regex,
    /// The capture group holding the secret (0 = the whole match).
    group: usize,
}

/// The compiled rules, built once per process and shared.
#[derive(Debug, Clone)]
pub struct RedactionRules {
    rules: Arc<Vec<Rule>>,
}

const PLACEHOLDER_PREFIX: &str = "[REDACTED_";

/// The built-in rules: (kind, pattern, secret group).
const BUILT_IN: &[(&str, &str, usize)] = &[
    (
        "PRIVATE_KEY",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
        0,
    ),
    (
        "URL_PASSWORD",
        r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@?#\[\]]*:([^\s@/?#]+)@",
        1,
    ),
    (
        "JWT",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        0,
    ),
    (
        "API_KEY",
        concat!(
            r"\b(?:",
            r"sk-ant-[A-Za-z0-9_\-]{20,}",
            r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
            r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
            r"|gh[pousr]_[A-Za-z0-9]{36,255}",
            r"|github_pat_[A-Za-z0-9_]{22,}",
            r"|glpat-[A-Za-z0-9_\-]{20,}",
            r"|xox[abposre]-[A-Za-z0-9\-]{10,}",
            r"|AIza[0-9A-Za-z_\-]{35}",
            r"|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
            r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",
            r"|npm_[A-Za-z0-9]{36}",
            r"|hf_[A-Za-z0-9]{30,}",
            r"|hvs\.[A-Za-z0-9_\-]{24,}",
            r"|dop_v1_[a-f0-9]{64}",
            r"|pypi-[A-Za-z0-9_\-]{50,}",
            r")",
            r"|https://hooks\.slack\.com/services/[A-Za-z0-9/]+",
        ),
        0,
    ),
    (
        "AUTH_HEADER",
        r#"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9\-._~+/]{8,}=*)"#,
        1,
    ),
    (
        "SECRET",
        concat!(
            // Any key ending in a secret-ish word (DB_PASSWORD, aws_secret_access_key,
            // GITHUB_TOKEN, AccountKey), immediately followed by = or :; a
            // plural like max_tokens= does not end in the word and is kept.
            r#"(?i)\b[A-Za-z0-9_\-]*(?:password|passwd|pwd|secret|api[_-]?key|apikey"#,
            r#"|access[_-]?key(?:[_-]?id)?|accountkey|sharedaccesskey|private[_-]?key|token)"#,
            r#"["']?\s*[:=]\s*["']?([^\s"';,&}\]]{3,})"#,
        ),
        1,
    ),
];

const EMAIL: &str = r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b";

impl RedactionRules {
    /// Compiles the built-in rules plus the configured ones.
    ///
    /// # Errors
    /// The first extra pattern that is not a valid regular expression, with
    /// its index.
    pub fn new(settings: &RedactionSettings) -> Result<Self, (usize, regex::Error)> {
        let mut rules = Vec::new();
        for (kind, pattern, group) in BUILT_IN {
            rules.push(Rule {
                kind,
                // The built-in patterns are constants covered by tests.
                regex: Regex::new(pattern).map_err(|e| (usize::MAX, e))?,
                group: *group,
            });
        }
        if settings.emails {
            rules.push(Rule {
                kind: "EMAIL",
                regex: Regex::new(EMAIL).map_err(|e| (usize::MAX, e))?,
                group: 0,
            });
        }
        for (i, pattern) in settings.extra_patterns.iter().enumerate() {
            let regex = Regex::new(pattern).map_err(|e| (i, e))?;
            let group = usize::from(regex.captures_len() > 1);
            rules.push(Rule {
                kind: "CUSTOM",
                regex,
                group,
            });
        }
        Ok(Self {
            rules: Arc::new(rules),
        })
    }

    /// A redactor whose placeholders are keyed by `salt` (the diagnosis id),
    /// so they are stable within the diagnosis and differ across diagnoses.
    #[must_use]
    pub fn for_diagnosis(&self, salt: &[u8]) -> Redactor {
        Redactor {
            rules: self.clone(),
            key: salt.to_vec(),
        }
    }
}

/// Redacts text for one diagnosis.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: RedactionRules,
    key: Vec<u8>,
}

impl Redactor {
    fn placeholder(&self, kind: &str, secret: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail; fall back to
        // a kind-only placeholder rather than leak if it ever did.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return format!("{PLACEHOLDER_PREFIX}{kind}]");
        };
        mac.update(secret.as_bytes());
        let digest = mac.finalize().into_bytes();
        let tag: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("{PLACEHOLDER_PREFIX}{kind}_{tag}]")
    }

    /// `text` with every secret replaced.
    #[must_use]
    pub fn redact(&self, text: &str) -> String {
        let mut current = text.to_owned();
        for rule in self.rules.rules.iter() {
            if !rule.regex.is_match(&current) {
                continue;
            }
            let mut out = String::with_capacity(current.len());
            let mut last = 0;
            for caps in rule.regex.captures_iter(&current) {
                let Some(m) = caps.get(rule.group) else {
                    continue;
                };
                let secret = m.as_str();
                if secret.is_empty() || secret.starts_with(PLACEHOLDER_PREFIX) {
                    continue;
                }
                out.push_str(&current[last..m.start()]);
                out.push_str(&self.placeholder(rule.kind, secret));
                last = m.end();
            }
            out.push_str(&current[last..]);
            current = out;
        }
        current
    }

    /// Redacts every message of `request` in place (tool definitions and
    /// schemas are ours and left alone).
    pub fn redact_request(&self, request: &mut ChatRequest) {
        for message in &mut request.messages {
            message.visit_text_mut(&mut |s| {
                let redacted = self.redact(s);
                if redacted != *s {
                    *s = redacted;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn redactor() -> Redactor {
        RedactionRules::new(&RedactionSettings::default())
            .expect("rules")
            .for_diagnosis(b"session-1")
    }

    #[test]
    fn same_secret_same_placeholder_other_diagnosis_other_placeholder() {
        let r = redactor();
        let a = r.redact("key sk-proj-abcdefghijklmnopqrstuvwxyz012345 and again sk-proj-abcdefghijklmnopqrstuvwxyz012345");
        let parts: Vec<&str> = a
            .split_whitespace()
            .filter(|w| w.starts_with("[REDACTED"))
            .collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], parts[1]);
        let other = RedactionRules::new(&RedactionSettings::default())
            .expect("rules")
            .for_diagnosis(b"session-2")
            .redact("sk-proj-abcdefghijklmnopqrstuvwxyz012345");
        assert_ne!(other, parts[0]);
    }

    #[test]
    fn keeps_structure_around_secrets() {
        let r = redactor();
        let out = r.redact("postgres://app:hunter2@db:5432/orders");
        assert!(
            out.starts_with("postgres://app:[REDACTED_URL_PASSWORD_"),
            "{out}"
        );
        assert!(out.ends_with("@db:5432/orders"), "{out}");
        let out = r.redact("Authorization: Bearer abcdef0123456789xyz");
        assert!(out.starts_with("Authorization: Bearer [REDACTED_"), "{out}");
        let out = r.redact(r#"{"password": "s3cr3t-value"}"#);
        assert!(
            out.starts_with(r#"{"password": "[REDACTED_SECRET_"#),
            "{out}"
        );
    }

    #[test]
    fn emails_are_configurable() {
        let off = RedactionRules::new(&RedactionSettings {
            emails: false,
            extra_patterns: vec![r"ticket-(\d{6})".to_owned()],
        })
        .expect("rules")
        .for_diagnosis(b"s");
        assert_eq!(off.redact("mail jane@example.com"), "mail jane@example.com");
        let t = off.redact("see ticket-123456");
        assert!(t.starts_with("see ticket-[REDACTED_CUSTOM_"), "{t}");
        assert!(!redactor().redact("mail jane@example.com").contains("jane@"));
    }

    #[test]
    fn bad_extra_pattern_is_reported_with_its_index() {
        let err = RedactionRules::new(&RedactionSettings {
            emails: true,
            extra_patterns: vec!["ok".to_owned(), "(".to_owned()],
        })
        .expect_err("invalid");
        assert_eq!(err.0, 1);
    }

    #[test]
    fn prose_is_left_alone() {
        let r = redactor();
        let text = "The checkout service timed out after the deploy; max_tokens=1024, 3 tokens left, pass the test.";
        assert_eq!(r.redact(text), text);
    }

    fn secret() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9]{40}".prop_map(|s| format!("sk-proj-{s}")),
            "[A-Za-z0-9_-]{40}".prop_map(|s| format!("sk-ant-api03-{s}")),
            "[A-Z0-9]{16}".prop_map(|s| format!("AKIA{s}")),
            "[A-Za-z0-9]{36}".prop_map(|s| format!("ghp_{s}")),
            "[A-Za-z0-9]{24}".prop_map(|s| format!("xoxb-1234-{s}")),
            "[A-Za-z0-9_]{35}".prop_map(|s| format!("AIza{s}")),
            "[A-Za-z0-9]{12,30}".prop_map(|s| format!("password={s}")),
            "[A-Za-z0-9]{8,20}".prop_map(|s| format!("mysql://root:{s}@db/app")),
        ]
    }

    fn secret_part(s: &str) -> &str {
        if let Some(rest) = s.strip_prefix("password=") {
            rest
        } else if let Some(rest) = s.strip_prefix("mysql://root:") {
            rest.trim_end_matches("@db/app")
        } else {
            s
        }
    }

    proptest! {
        #[test]
        fn secrets_never_survive_and_redaction_is_idempotent(
            before in "[a-z ]{0,30}",
            secret in secret(),
            after in "[a-z ]{0,30}",
        ) {
            static R: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(redactor);
            let r = &*R;
            let text = format!("{before} {secret} {after}");
            let once = r.redact(&text);
            prop_assert!(!once.contains(secret_part(&secret)), "{} leaked in {}", secret, once);
            prop_assert_eq!(r.redact(&once), once.clone());
        }
    }
}
