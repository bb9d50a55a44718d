//! Turning symptom text into search words.
//!
//! An incident description rarely shares every word with the runbook that
//! explains it, so searches score any matching word (BM25, see
//! [`super::SEARCH_SQL`]) rather than requiring all. [`terms`] keeps the
//! distinct words of a text, splits identifiers (`CheckoutProbeFailing`,
//! `express_checkout`) into their parts, drops numbers that only add noise
//! (times, percentages) and expands HTTP status codes to their reason phrase,
//! because runbooks say "timeout" where alerts say "504". [`build_query`]
//! renders the same words as `websearch_to_tsquery` text.

use serde::{Deserialize, Serialize};

use rootcause_diagnosis::Incident;

/// How the words of a query combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Any word may match; ranking orders the hits.
    #[default]
    Any,
    /// Web-search syntax as typed: all words, "phrases", `or`, `-word`.
    All,
}

/// Words kept at most, so a pasted stack trace stays a reasonable query.
const MAX_TERMS: usize = 64;

/// Reason phrases of the HTTP status codes incidents mention.
fn status_words(code: &str) -> Option<&'static str> {
    Some(match code {
        "400" => "bad request",
        "401" => "unauthorized",
        "403" => "forbidden",
        "404" => "not found",
        "408" => "request timeout",
        "429" => "too many requests rate limit",
        "500" => "internal server error",
        "502" => "bad gateway upstream",
        "503" => "service unavailable",
        "504" => "gateway timeout",
        _ => return None,
    })
}

/// Splits `CamelCase` and `snake_case` identifiers into words
/// (`EdgeHigh5xxRatio` -> `Edge High 5xx Ratio`).
fn split_identifier(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = word.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = (c.is_ascii_digit() && i > 0 && chars[i - 1].is_alphabetic())
            || c.is_uppercase()
                && i > 0
                && (chars[i - 1].is_lowercase()
                    || chars[i - 1].is_ascii_digit()
                    || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                        && chars[i - 1].is_uppercase());
        if c == '_' || boundary {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if c == '_' {
                continue;
            }
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The distinct search words of a text, lowercased.
#[must_use]
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let push = |w: String, out: &mut Vec<String>| {
        if !out.contains(&w) && out.len() < MAX_TERMS {
            out.push(w);
        }
    };
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if raw.is_empty() {
            continue;
        }
        // "503s" is the plural of a status code.
        let raw = match raw.strip_suffix('s') {
            Some(code) if code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()) => code,
            _ => raw,
        };
        if raw.chars().all(|c| c.is_ascii_digit()) {
            if let Some(words) = status_words(raw) {
                push(raw.to_owned(), &mut out);
                for w in words.split(' ') {
                    push(w.to_owned(), &mut out);
                }
            }
            // Other numbers (times, percentages, counts) only add noise.
            continue;
        }
        let parts = split_identifier(raw);
        if parts.len() > 1 {
            push(raw.to_lowercase(), &mut out);
        }
        for p in parts {
            let p = p.to_lowercase();
            if p.chars().count() >= 2 && !p.chars().all(|c| c.is_ascii_digit()) {
                push(p, &mut out);
            }
        }
    }
    out
}

/// The `websearch_to_tsquery` text for `text` under `mode`.
#[must_use]
pub fn build_query(text: &str, mode: MatchMode) -> String {
    match mode {
        MatchMode::All => text.trim().to_owned(),
        MatchMode::Any => terms(text).join(" or "),
    }
}

/// The symptom text of an incident: title, description, affected services
/// and alert label values (what a knowledge search starts from).
#[must_use]
pub fn incident_query(incident: &Incident) -> String {
    let mut parts = vec![
        incident.title().to_owned(),
        incident.description().to_owned(),
    ];
    parts.extend(incident.services().iter().cloned());
    parts.extend(incident.labels().values().cloned());
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symptom_text_becomes_an_or_query_of_distinct_words() {
        let q = build_query(
            "checkout: HTTP 504 on /pay at 16:33, 40% drop; checkout failing",
            MatchMode::Any,
        );
        assert_eq!(
            q,
            "checkout or http or 504 or gateway or timeout or on or pay or at or drop or failing"
        );
    }

    #[test]
    fn identifiers_are_split_and_kept() {
        let t = terms("EdgeHigh5xxRatio express_checkout HTTPServerError");
        assert_eq!(
            t,
            vec![
                "edgehigh5xxratio",
                "edge",
                "high",
                "5xx",
                "ratio",
                "express_checkout",
                "express",
                "checkout",
                "httpservererror",
                "http",
                "server",
                "error"
            ]
        );
    }

    #[test]
    fn all_mode_passes_web_search_syntax_through() {
        assert_eq!(
            build_query(" \"lock wait\" -replica ", MatchMode::All),
            "\"lock wait\" -replica"
        );
    }
}
