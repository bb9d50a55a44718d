//! Redaction of secrets before any text leaves for a provider.
//!
//! Rules run in a fixed order (private keys, URL credentials, JWTs, vendor
//! API keys, bare cloud secret keys, authorization and cookie headers, SQL
//! and command-line passwords, `key=value` secrets, e-mail addresses, then
//! configured extra patterns). They follow the rule classes of gitleaks and
//! detect-secrets: vendor prefixes where a format has one, secret-like keys
//! (`*PASS*`, `*SECRET*`, `*TOKEN*`) with any quoting, including the
//! JSON-escaped `\"` that tool results carry, and an entropy check where a
//! key is only weakly secret-like. A check on each captured value keeps
//! prose intact ("token validation failed" is not a token). Rules run on
//! text as it is sent: tool results are JSON text, so a quote in a log line
//! arrives as `\"`. Each secret becomes a placeholder like
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

/// What a captured value must look like to be redacted: the check that
/// keeps prose ("token validation failed", "password: changed") intact
/// while every credential-shaped value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Anything non-empty (the pattern itself is specific enough).
    Any,
    /// Not an obvious non-secret: a boolean, `null`, a bare small number,
    /// a `$VAR` or `{{ template }}` reference, a mask.
    NotTrivial,
    /// [`Check::NotTrivial`], 6+ characters and shaped like a credential:
    /// a digit, a symbol or mixed case (an English word is not).
    SecretLike,
    /// 16+ characters with high Shannon entropy (random-looking): for values
    /// after keys that are only weakly secret-like (`*_key`, `signature`).
    HighEntropy,
    /// A bare cloud secret: exactly 40 base64 characters (AWS secret access
    /// key) or 88 ending in `==` (Azure storage key), mixed case and digits,
    /// high entropy.
    CloudKey,
}

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    // Lengths of a captured value: far below 2^52, so the casts are exact.
    let total = n as f64;
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / total;
            -p * p.log2()
        })
        .sum()
}

fn not_trivial(v: &str) -> bool {
    let lower = v.trim().to_ascii_lowercase();
    !(lower.len() < 3
        || matches!(
            lower.as_str(),
            "true"
                | "false"
                | "null"
                | "none"
                | "nil"
                | "yes"
                | "no"
                | "on"
                | "off"
                | "undefined"
                | "empty"
                | "redacted"
                | "required"
                | "optional"
                | "string"
                | "hidden"
                | "masked"
                | "unset"
                | "default"
                | "changeme_not_set"
        )
        || lower.chars().all(|c| c == '*' || c == 'x' || c == '.')
        || (lower.chars().all(|c| c.is_ascii_digit()) && lower.len() < 6)
        || lower.starts_with('$')
        || lower.starts_with("{{")
        || lower.starts_with("%("))
}

impl Check {
    fn passes(self, v: &str) -> bool {
        match self {
            Self::Any => !v.is_empty(),
            Self::NotTrivial => not_trivial(v),
            Self::SecretLike => {
                let digit = v.chars().any(|c| c.is_ascii_digit());
                let symbol = v
                    .chars()
                    .any(|c| !c.is_alphanumeric() && !c.is_whitespace());
                let upper = v.chars().any(char::is_uppercase);
                let lower = v.chars().any(char::is_lowercase);
                not_trivial(v)
                    && v.chars().count() >= 6
                    && !v.contains(' ')
                    && (digit || symbol || (upper && lower))
            }
            Self::HighEntropy => v.chars().count() >= 16 && shannon_entropy(v) >= 3.5,
            Self::CloudKey => {
                let len_ok =
                    (v.len() == 40 && !v.contains('=')) || (v.len() == 88 && v.ends_with("=="));
                len_ok
                    && v.chars().any(|c| c.is_ascii_digit())
                    && v.chars().any(|c| c.is_ascii_uppercase())
                    && v.chars().any(|c| c.is_ascii_lowercase())
                    && v.matches('/').count() <= v.len() / 10
                    && shannon_entropy(v) >= 4.0
            }
        }
    }
}

#[derive(Debug)]
struct Rule {
    kind: &'static str,
    regex: Regex,
    check: Check,
}

/// The compiled rules, built once per process and shared.
#[derive(Debug, Clone)]
pub struct RedactionRules {
    rules: Arc<Vec<Rule>>,
}

const PLACEHOLDER_PREFIX: &str = "[REDACTED_";

/// Words that make a key secret (`DB_PASS`, `JWT_SECRET_KEY`,
/// `aws_secret_access_key`, `x-api-key`, `AccountKey`), as a component of
/// the key followed by at most two harmless suffixes (`_KEY`, `_VALUE`, `2`):
/// `max_tokens` and `token_count` are not secrets and do not match.
macro_rules! secret_key {
    () => {
        concat!(
            r"(?i)\b[A-Za-z0-9_.\-]*?",
            r"(?:password|passwd|passphrase|pass|pwd|secret|token|api[_\-]?key|apikey",
            r"|access[_\-]?key|accountkey|sharedaccesskey|private[_\-]?key|credentials?",
            r"|client[_\-]?secret|auth[_\-]?token|session[_\-]?token)",
            r"(?:[_.\-]?(?:key|value|base|b64|base64|hash|enc|id|[0-9]+)){0,2}",
            // the key's closing quote, raw or JSON-escaped (\" or \\\")
            r#"(?:\\*["'])?\s*"#,
        )
    };
}

/// A quoted value: JSON-escaped (`\"...\"`, as tool results reach a model),
/// double-quoted, or single-quoted. One capture group each.
macro_rules! quoted_value {
    () => {
        concat!(
            r#"(?:\\+"((?:[^"\\]|\\+[^"\\])*)\\+""#,
            r#"|"((?:[^"\\]|\\.)*)""#,
            r"|'([^'\n]*)')",
        )
    };
}

/// An unquoted value: up to whitespace, a quote, or a list/query separator.
/// `@` and `;` belong to the value (`DB_PASS=p@ss;word` is hidden whole).
macro_rules! bare_value {
    () => {
        r#"([^\s"'\\,&}\]]+)"#
    };
}

/// The built-in rules: (kind, pattern, check). The secret is the first
/// capture group that took part in the match (the whole match when the
/// pattern has none).
const BUILT_IN: &[(&str, &str, Check)] = &[
    (
        "PRIVATE_KEY",
        concat!(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
            // the whole block, or (cut short) everything to the end of the
            // string it sits in
            r#"(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|(?:\\.|[^"\\])*)"#,
        ),
        Check::Any,
    ),
    (
        "URL_PASSWORD",
        // The password runs to the last `@` before the host, so one holding
        // `@` or `;` is hidden whole.
        r#"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@?#\[\]"'\\]*:([^\s/?#"'\\]+)@"#,
        Check::Any,
    ),
    (
        "JWT",
        // Unsigned tokens (`alg: none`) end with an empty signature.
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
        Check::Any,
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
            r"|xapp-[0-9]-[A-Za-z0-9\-]{10,}",
            r"|AIza[0-9A-Za-z_\-]{35}",
            r"|GOCSPX-[A-Za-z0-9_\-]{20,}",
            r"|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
            r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",
            r"|npm_[A-Za-z0-9]{36}",
            r"|hf_[A-Za-z0-9]{30,}",
            r"|hvs\.[A-Za-z0-9_\-]{24,}",
            r"|dop_v1_[a-f0-9]{64}",
            r"|pypi-[A-Za-z0-9_\-]{50,}",
            r"|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
            r"|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}",
            r"|ATATT3[A-Za-z0-9_\-=]{20,}",
            r"|LTAI[A-Za-z0-9]{12,20}",
            r"|[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}",
            r")",
            r"|https://hooks\.slack\.com/services/[A-Za-z0-9/]+",
        ),
        Check::Any,
    ),
    ("CLOUD_SECRET", r"[A-Za-z0-9/+]{40,}={0,2}", Check::CloudKey),
    (
        "AUTH_HEADER",
        // `Authorization: <scheme> <credentials>` (any scheme), then bare
        // `Bearer`/`Basic` credentials; a word after "token" in prose is
        // not a credential (Check::SecretLike).
        r#"(?i)\b(?:proxy-)?authorization\\*["']?\s*[:=]\s*\\*["']?(?:[A-Za-z\-]+\s+)?([^\s"'\\,]+)"#,
        Check::SecretLike,
    ),
    (
        "AUTH_HEADER",
        r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9\-._~+/]{8,}=*)",
        Check::SecretLike,
    ),
    (
        "COOKIE",
        // `name=value` pairs to the end of the header (a cookie always has
        // an `=`; "cookie: not set" is prose).
        r#"(?i)\b(?:set-)?cookie\\*["']?\s*:\s*\\*["']?([^\r\n"\\=]+=[^\r\n"\\]+)"#,
        Check::NotTrivial,
    ),
    (
        "SQL_PASSWORD",
        // CREATE/ALTER ROLE ... PASSWORD '...', MySQL IDENTIFIED BY '...'
        // (pg_stat_activity returns such statements verbatim).
        r"(?i)\b(?:password|identified\s+by)\s+'((?:[^']|'')*)'",
        Check::Any,
    ),
    (
        "CLI_PASSWORD",
        // mysql -p<password> (no space), in the same line as the client.
        r#"(?i)\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b[^\n"]*?\s-p([^\s"'\\]+)"#,
        Check::NotTrivial,
    ),
    (
        "CLI_PASSWORD",
        r#"(?:^|[\s"=])-p([^\s"'\\]{3,})"#,
        Check::SecretLike,
    ),
    (
        "SECRET",
        // key = any value, or key: "quoted value"
        concat!(
            secret_key!(),
            r"(?:=\s*(?:",
            quoted_value!(),
            "|",
            bare_value!(),
            r")|:\s*",
            quoted_value!(),
            ")"
        ),
        Check::NotTrivial,
    ),
    (
        "SECRET",
        // key: bare value (YAML, headers, prose): only credential-shaped values
        concat!(secret_key!(), r":\s*", bare_value!()),
        Check::SecretLike,
    ),
    (
        "SECRET",
        // weakly secret-like keys: only random-looking values
        concat!(
            r"(?i)\b[A-Za-z0-9_.\-]*?(?:key|signature|sig|sessionid|session_id|sid|salt)",
            r#"(?:\\*["'])?\s*[:=]\s*(?:"#,
            quoted_value!(),
            "|",
            bare_value!(),
            ")"
        ),
        Check::HighEntropy,
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
        for (kind, pattern, check) in BUILT_IN {
            rules.push(Rule {
                kind,
                // The built-in patterns are constants covered by tests.
                regex: Regex::new(pattern).map_err(|e| (usize::MAX, e))?,
                check: *check,
            });
        }
        if settings.emails {
            rules.push(Rule {
                kind: "EMAIL",
                regex: Regex::new(EMAIL).map_err(|e| (usize::MAX, e))?,
                check: Check::Any,
            });
        }
        for (i, pattern) in settings.extra_patterns.iter().enumerate() {
            rules.push(Rule {
                kind: "CUSTOM",
                regex: Regex::new(pattern).map_err(|e| (i, e))?,
                check: Check::Any,
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
                // The first group that took part in the match holds the
                // secret (patterns have one group per value form).
                let Some(m) = caps.iter().skip(1).flatten().next().or_else(|| caps.get(0)) else {
                    continue;
                };
                let secret = m.as_str();
                if secret.is_empty()
                    || secret.contains(PLACEHOLDER_PREFIX)
                    || !rule.check.passes(secret)
                {
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
