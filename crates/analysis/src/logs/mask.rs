//! Tokenising and masking of log messages: the step that decides which parts
//! of a line are variables before the parse tree ever sees it.
//!
//! Drain-family miners are only as good as their pre-processing: a tree keyed
//! on the first tokens splits `request 1234 failed` and `request 5678 failed`
//! into different branches unless `1234` is recognised as a variable first.
//! The rules here are general token classes, not patterns fitted to any log
//! source:
//!
//! - a token is split into *words* at punctuation that separates a key from a
//!   value (`= : , ; ( ) [ ] { } < > " ' |`), so `size=1234` keeps its constant
//!   key and masks only the value;
//! - a word that contains a digit is a variable: numbers, hex ids with digits,
//!   IPv4/IPv6 addresses, UUIDs, timestamps, durations (`250ms`), sizes,
//!   block ids (`blk_-1608`), versions;
//! - a word that is a path (`/var/log/x`, `C:\x`), a URL (`scheme://…`) or a
//!   long hexadecimal string is a variable even without digits;
//! - user masks (regular expressions from the configuration) run first, on
//!   the whole line, and replace each match with their own placeholder.
//!
//! Every variable word becomes the placeholder `<*>`; runs of variables inside
//! one token collapse into one placeholder, so `10.0.0.1:8080` is `<*>:<*>`
//! and `0x1f` is `<*>`.

use regex::Regex;

/// The placeholder that stands for a variable part of a message.
///
/// Loghub's ground truth and the Drain papers use `<*>`, so templates can be
/// compared token for token with published labels.
pub const WILDCARD: &str = "<*>";

/// A user mask: a compiled regular expression and the placeholder that
/// replaces each of its matches.
#[derive(Debug, Clone)]
pub struct CompiledMask {
    /// The compiled pattern, matched against the raw line.
    pub regex: Regex,
    /// Replacement for each match (for example `<*>` or `<ORDER>`).
    pub placeholder: String,
}

/// Characters that separate a key from its value inside one
/// whitespace-delimited token.
#[inline]
fn is_word_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'=' | b':'
            | b','
            | b';'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'<'
            | b'>'
            | b'"'
            | b'\''
            | b'|'
    )
}

/// Whether one word (a token piece between delimiters) is a variable.
#[inline]
fn word_is_variable(word: &[u8]) -> bool {
    if word.is_empty() {
        return false;
    }
    if word.iter().any(u8::is_ascii_digit) {
        return true;
    }
    // Paths: `/usr/lib/x`, `./run`, `~/x`; a lone `/` or `-` is punctuation.
    if word.len() > 1 && (word[0] == b'/' || word.starts_with(b"./") || word.starts_with(b"~/")) {
        return true;
    }
    // Windows paths `C:\x` arrive as `C` `:` `\x` after splitting at `:`.
    if word.len() > 1 && word[0] == b'\\' {
        return true;
    }
    // Long hexadecimal strings without a digit (rare but real: `deadbeefcafe`).
    if word.len() >= 12 && word.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    false
}

/// Masks one whitespace-delimited token into `out`.
///
/// Returns `true` when the whole token is a single variable (`<*>`), which the
/// parse tree treats specially.
pub(crate) fn mask_token(token: &str, out: &mut String) -> bool {
    let bytes = token.as_bytes();
    // One pass decides whether any rule can apply; most tokens are plain
    // words and are copied as they are.
    let (mut digit, mut slash, mut hex_run, mut max_hex_run) = (false, false, 0usize, 0usize);
    for &b in bytes {
        digit |= b.is_ascii_digit();
        slash |= b == b'/' || b == b'\\';
        if b.is_ascii_hexdigit() {
            hex_run += 1;
            max_hex_run = max_hex_run.max(hex_run);
        } else {
            hex_run = 0;
        }
    }
    if !digit && !slash && max_hex_run < 12 {
        out.push_str(token);
        return false;
    }
    // A URL is one variable, whatever its pieces look like.
    if slash
        && let Some(pos) = token.find("://")
        && pos > 0
        && bytes[..pos].iter().all(u8::is_ascii_alphabetic)
    {
        out.push_str(WILDCARD);
        return true;
    }
    // MAC addresses, IPv6 addresses, hex dumps: hex groups joined by `:` or
    // `-`, at least one digit. Split at `:` they would leave letter-only
    // groups such as `bc` behind as constants.
    let core = token.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if core.len() >= 5
        && core.bytes().any(|b| b == b':' || b == b'-')
        && core.bytes().any(|b| b.is_ascii_digit())
        && core
            .split([':', '-'])
            .all(|g| g.len() <= 4 && g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        let lead = token.len()
            - token
                .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
                .len();
        let trail = token
            .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
            .len();
        out.push_str(&token[..lead]);
        out.push_str(WILDCARD);
        out.push_str(&token[trail..]);
        return lead == 0 && trail == token.len();
    }
    let start_len = out.len();
    let mut last_was_var = false;
    let mut all_var = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_word_delimiter(b) {
            out.push(b as char);
            last_was_var = false;
            all_var = false;
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && !is_word_delimiter(bytes[j]) {
            j += 1;
        }
        let word = &bytes[i..j];
        if word_is_variable(word) {
            if !last_was_var {
                out.push_str(WILDCARD);
            }
            last_was_var = true;
        } else {
            // Delimiters are ASCII, so word boundaries are char boundaries.
            out.push_str(&token[i..j]);
            last_was_var = false;
            all_var = false;
        }
        i = j;
    }
    all_var && out.len() > start_len
}

/// Units that follow a number as a separate token (`16.0 KB`, `3 ms`,
/// `0.1 sec.`). Abbreviations only: spelled-out words such as `bytes` often
/// belong to the message itself.
const UNITS: [&str; 22] = [
    "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "kB", "ms", "us", "µs", "ns", "s",
    "sec", "secs", "min", "mins", "h", "hrs", "%",
];

/// When `tok` is a unit (optionally followed by punctuation), the trailing
/// punctuation to append to the preceding value.
fn unit_tail(tok: &str) -> Option<&str> {
    let core_end = tok
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_alphanumeric() || *c == '%' || *c == 'µ')
        .map(|(i, c)| i + c.len_utf8())?;
    UNITS.contains(&&tok[..core_end]).then(|| &tok[core_end..])
}

/// Splits a line at ASCII whitespace and ASCII extra delimiters, on bytes
/// (no UTF-8 decoding: an ASCII byte never occurs inside a multi-byte
/// character, so every piece is valid text).
struct AsciiSplit<'t> {
    text: &'t str,
    pos: usize,
    delimiters: &'t [u8],
}

impl<'t> Iterator for AsciiSplit<'t> {
    type Item = &'t str;

    #[inline]
    fn next(&mut self) -> Option<&'t str> {
        let bytes = self.text.as_bytes();
        let is_sep = |b: u8| b.is_ascii_whitespace() || self.delimiters.contains(&b);
        while self.pos < bytes.len() && is_sep(bytes[self.pos]) {
            self.pos += 1;
        }
        if self.pos >= bytes.len() {
            return None;
        }
        let start = self.pos;
        while self.pos < bytes.len() && !is_sep(bytes[self.pos]) {
            self.pos += 1;
        }
        self.text.get(start..self.pos)
    }
}

/// Masks each token into `buf`, recording its span.
fn push_tokens<'t>(
    tokens: impl Iterator<Item = &'t str>,
    masks: &[CompiledMask],
    buf: &mut String,
    spans: &mut Vec<(u32, u32)>,
) {
    let mut prev_whole_var = false;
    for tok in tokens {
        // A unit after a number belongs to it: `16.0 KB,` is one value.
        if prev_whole_var && let Some(tail) = unit_tail(tok) {
            buf.push_str(tail);
            if let Some(last) = spans.last_mut() {
                last.1 = buf.len() as u32;
            }
            prev_whole_var = false;
            continue;
        }
        let start = buf.len();
        if masks.iter().any(|m| m.placeholder == tok) {
            // A user placeholder stays as the user wrote it.
            buf.push_str(tok);
            prev_whole_var = false;
        } else {
            prev_whole_var = mask_token(tok, buf);
        }
        spans.push((start as u32, buf.len() as u32));
    }
}

/// Reusable buffers for turning a line into masked tokens without allocating
/// per line.
#[derive(Debug, Default)]
pub struct Tokenizer {
    /// The masked tokens of the current line, back to back.
    buf: String,
    /// `(start, end)` byte ranges of each token in `buf`.
    spans: Vec<(u32, u32)>,
    /// The line after user masks, when any mask matched.
    premasked: String,
}

impl Tokenizer {
    /// Tokenises and masks `line`, replacing the previous line's tokens.
    ///
    /// `extra_delimiters` are treated like whitespace; `masks` run first.
    pub fn tokenize(&mut self, line: &str, masks: &[CompiledMask], extra_delimiters: &[char]) {
        self.buf.clear();
        self.spans.clear();
        let mut text = line;
        if !masks.is_empty() {
            let mut changed = false;
            let mut cur = std::borrow::Cow::Borrowed(line);
            for m in masks {
                if let std::borrow::Cow::Owned(s) =
                    m.regex.replace_all(&cur, m.placeholder.as_str())
                {
                    cur = std::borrow::Cow::Owned(s);
                    changed = true;
                }
            }
            if changed {
                self.premasked.clear();
                self.premasked.push_str(&cur);
                text = &self.premasked;
            }
        }
        let mut spans = std::mem::take(&mut self.spans);
        let mut buf = std::mem::take(&mut self.buf);
        if extra_delimiters.len() <= 16 && extra_delimiters.iter().all(char::is_ascii) {
            let mut ascii = [0u8; 16];
            let n = extra_delimiters.len().min(ascii.len());
            for (slot, &c) in ascii.iter_mut().zip(extra_delimiters) {
                *slot = c as u8;
            }
            let tokens = AsciiSplit {
                text,
                pos: 0,
                delimiters: &ascii[..n],
            };
            push_tokens(tokens, masks, &mut buf, &mut spans);
        } else {
            // A non-ASCII delimiter: split on chars (also at Unicode spaces).
            let tokens = text
                .split(|c: char| c.is_whitespace() || extra_delimiters.contains(&c))
                .filter(|t| !t.is_empty());
            push_tokens(tokens, masks, &mut buf, &mut spans);
        }
        self.spans = spans;
        self.buf = buf;
    }

    /// The masked tokens of the last line given to [`Tokenizer::tokenize`].
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans
            .iter()
            .map(|&(s, e)| &self.buf[s as usize..e as usize])
    }

    /// Number of tokens of the last line.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the last line had no tokens at all.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn masked(line: &str) -> Vec<String> {
        let mut t = Tokenizer::default();
        t.tokenize(line, &[], &[]);
        t.tokens().map(str::to_owned).collect()
    }

    #[test]
    fn masks_general_token_classes() {
        assert_eq!(
            masked("Received block blk_-1608999687919862906 of size 91178 from /10.250.10.6"),
            [
                "Received", "block", "<*>", "of", "size", "<*>", "from", "<*>"
            ]
        );
        assert_eq!(masked("onExtend:1514038530000 14"), ["onExtend:<*>", "<*>"]);
        assert_eq!(masked("size=1234 user=root"), ["size=<*>", "user=root"]);
        assert_eq!(masked("took 250ms at 0x7ffe"), ["took", "<*>", "at", "<*>"]);
        assert_eq!(
            masked("id 123e4567-e89b-12d3-a456-426614174000 ip 10.0.0.1:8080"),
            ["id", "<*>", "ip", "<*>:<*>"]
        );
        assert_eq!(masked("GET https://a.b/c?d=e ok"), ["GET", "<*>", "ok"]);
        assert_eq!(masked("opened /etc/hosts"), ["opened", "<*>"]);
        assert_eq!(masked("hash deadbeefcafebabe"), ["hash", "<*>"]);
        assert_eq!(masked("plain words only"), ["plain", "words", "only"]);
        assert_eq!(
            masked("BSSID changed to 5c:50:15:36:bc:03"),
            ["BSSID", "changed", "to", "<*>"]
        );
        assert_eq!(masked("addr (fe80::1e4:bc)"), ["addr", "(<*>)"]);
        assert_eq!(
            masked("(estimated size 16.0 KB, free 413.9 MB)"),
            ["(estimated", "size", "<*>,", "free", "<*>)"]
        );
        assert_eq!(
            masked("took 0.5 sec. to finish"),
            ["took", "<*>.", "to", "finish"]
        );
        assert_eq!(masked("the s key"), ["the", "s", "key"]);
    }

    #[test]
    fn whole_variable_tokens_are_reported() {
        let mut out = String::new();
        assert!(mask_token("12345", &mut out));
        out.clear();
        assert!(!mask_token("size=12", &mut out));
        out.clear();
        assert!(!mask_token("word", &mut out));
    }

    #[test]
    fn user_masks_run_before_token_classes() {
        let masks = [CompiledMask {
            regex: Regex::new(r"ORD-[A-Z]+").expect("valid test regex"),
            placeholder: "<ORDER>".into(),
        }];
        let mut t = Tokenizer::default();
        t.tokenize("order ORD-ABC shipped", &masks, &[]);
        let got: Vec<_> = t.tokens().collect();
        assert_eq!(got, ["order", "<ORDER>", "shipped"]);
    }

    #[test]
    fn extra_delimiters_split_tokens() {
        let mut t = Tokenizer::default();
        t.tokenize("a,b c", &[], &[',']);
        assert_eq!(t.tokens().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
