//! One redaction for connection strings, used wherever a URL, a DSN or an
//! error message that may embed one is printed, logged or returned.
//!
//! Every connector takes a URL that may carry a credential: a password in
//! the user-info (`postgres://app:p@ss@db/x`, where the password itself holds
//! an `@`), a query parameter (`?password=`, `?access_token=`), or a
//! libpq keyword string (`host=db password='a b' dbname=x`). Copies of the
//! same rules drifted apart and each missed a form, so this crate is the one
//! place they live: [`url`] for a configured URL, [`in_text`] for a message
//! from a library (`git2`, `reqwest`, `diesel`) that quotes the URL.
//!
//! Redaction keeps the shape (scheme, user, host, database) so the message
//! still says which server was meant, and replaces each secret with
//! [`MASK`].

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// `scheme://user:password@`: the password runs to the last `@` before the
/// path, query or fragment, so a password holding `@` or `:` is hidden whole.
static USERINFO: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s:/?#@]*):([^\s/?#]*)@").ok());

/// `?password=...`, `&access_token=...`, `;sslpassword=...` in a URL query.
static QUERY_SECRET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)([?&;][a-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey",
        r"|access[_\-]?key|signature|sig|auth|credential)[a-z0-9_.\-]*=)([^&#\s]+)",
    ))
    .ok()
});

/// libpq keyword DSN `password=...` (quoted with `'`, or up to whitespace).
static KEYWORD_SECRET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)(^|[\s;])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)").ok()
});

/// `url` (or a libpq keyword DSN) with every credential replaced by [`MASK`].
///
/// Same as [`in_text`]; the separate name documents intent at call sites
/// that hold exactly one configured URL.
#[must_use]
pub fn url(url: &str) -> String {
    in_text(url)
}

/// `text` with the credentials of every URL or DSN inside it replaced by
/// [`MASK`]. Text without credentials comes back unchanged.
///
/// If a pattern ever failed to compile, the whole text is replaced rather
/// than returned unredacted (fail closed).
#[must_use]
pub fn in_text(text: &str) -> String {
    let (Some(userinfo), Some(query), Some(keyword)) = (
        USERINFO.as_ref(),
        QUERY_SECRET.as_ref(),
        KEYWORD_SECRET.as_ref(),
    ) else {
        return MASK.to_owned();
    };
    let out = userinfo.replace_all(text, |c: &Captures<'_>| {
        format!("{}{}:{MASK}@", &c[1], &c[2])
    });
    let out = query.replace_all(&out, |c: &Captures<'_>| format!("{}{MASK}", &c[1]));
    let out = keyword.replace_all(&out, |c: &Captures<'_>| format!("{}{}{MASK}", &c[1], &c[2]));
    out.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_with_at_sign_is_hidden_whole() {
        let out = url("postgres://app:p@ss:w@rd@db.internal:5432/orders");
        assert_eq!(out, "postgres://app:***@db.internal:5432/orders");
    }

    #[test]
    fn query_and_keyword_passwords_are_hidden() {
        assert_eq!(
            url("postgres://db/orders?sslmode=require&password=hunter2&user=app"),
            "postgres://db/orders?sslmode=require&password=***&user=app"
        );
        assert_eq!(
            url("https://es:9200/_search?access_token=abc.def&q=1"),
            "https://es:9200/_search?access_token=***&q=1"
        );
        assert_eq!(
            url("host=db user=app password=s3cr;et@x dbname=orders"),
            "host=db user=app password=*** dbname=orders"
        );
        assert_eq!(
            url("host=db password='two words' dbname=orders"),
            "host=db password=*** dbname=orders"
        );
    }

    #[test]
    fn urls_inside_messages_are_redacted_and_the_rest_kept() {
        let msg = "error sending request for url (https://elastic:tok3n@es.internal:9200/logs-*/_search): connection refused";
        assert_eq!(
            in_text(msg),
            "error sending request for url (https://elastic:***@es.internal:9200/logs-*/_search): connection refused"
        );
        let plain = "failed to connect to https://es.internal:9200 after 3 attempts";
        assert_eq!(in_text(plain), plain);
        assert_eq!(
            in_text("remote https://x-access-token:ghs_abc@github.com/o/r.git: 403"),
            "remote https://x-access-token:***@github.com/o/r.git: 403"
        );
    }

    #[test]
    fn redaction_is_idempotent() {
        let once = in_text("postgres://a:b@c/d?password=e host=f password=g");
        assert_eq!(in_text(&once), once);
    }
}
