//! A JSON value that keeps its keys in the order they were written.
//!
//! Bundles are read by people as much as by programs: `@timestamp` first,
//! `title` before `window`. serde_json's map sorts keys unless a
//! workspace-wide feature is turned on, which would change every other
//! crate's output, so the generator writes its documents with this.

/// An ordered JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite float (written with Rust's shortest round-trip form).
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<J>),
    /// An object, keys in insertion order.
    Obj(Vec<(String, J)>),
}

impl From<&str> for J {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<String> for J {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<i64> for J {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<u16> for J {
    fn from(v: u16) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<bool> for J {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<f64> for J {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl<T: Into<J>> From<Vec<T>> for J {
    fn from(v: Vec<T>) -> Self {
        Self::Arr(v.into_iter().map(Into::into).collect())
    }
}

/// Builds an object: `obj([("a", 1.into()), ("b", "x".into())])`.
pub fn obj<const N: usize>(fields: [(&str, J); N]) -> J {
    J::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn string(s: &str, out: &mut String) {
    // serde_json escapes exactly as JSON requires; a str cannot fail.
    out.push_str(&serde_json::Value::String(s.to_owned()).to_string());
}

fn float(v: f64, out: &mut String) {
    if v.is_finite() {
        let s = format!("{v}");
        out.push_str(&s);
        if !s.contains(['.', 'e', 'E']) {
            out.push_str(".0");
        }
    } else {
        out.push_str("null");
    }
}

impl J {
    /// One line, `{"k": v, "k2": v2}`, as the bundles' JSON-lines files use.
    #[must_use]
    pub fn line(&self) -> String {
        let mut out = String::new();
        self.write_line(&mut out);
        out
    }

    fn write_line(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Int(i) => out.push_str(&i.to_string()),
            Self::Float(f) => float(*f, out),
            Self::Str(s) => string(s, out),
            Self::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_line(out);
                }
                out.push(']');
            }
            Self::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    string(k, out);
                    out.push_str(": ");
                    v.write_line(out);
                }
                out.push('}');
            }
        }
    }

    /// Indented by two spaces, ending with a newline, for the small
    /// documents (`incident.json`, `expected.json`).
    #[must_use]
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write_pretty(0, &mut out);
        out.push('\n');
        out
    }

    fn write_pretty(&self, depth: usize, out: &mut String) {
        let pad = |d: usize| "  ".repeat(d);
        match self {
            Self::Arr(items) if !items.is_empty() => {
                out.push_str("[\n");
                for (i, v) in items.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    v.write_pretty(depth + 1, out);
                    if i + 1 < items.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                out.push_str(&pad(depth));
                out.push(']');
            }
            Self::Obj(fields) if !fields.is_empty() => {
                out.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    string(k, out);
                    out.push_str(": ");
                    v.write_pretty(depth + 1, out);
                    if i + 1 < fields.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                out.push_str(&pad(depth));
                out.push('}');
            }
            other => other.write_line(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_key_order_and_parse_back() {
        let v = obj([
            ("@timestamp", "2026-01-01T00:00:00.000Z".into()),
            ("message", "a \"quoted\"\nline".into()),
            ("n", 3i64.into()),
            ("x", 2.0f64.into()),
            ("list", vec![1i64, 2].into()),
        ]);
        let line = v.line();
        assert!(line.starts_with("{\"@timestamp\""), "{line}");
        assert!(line.contains("\"x\": 2.0"), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["message"], "a \"quoted\"\nline");
        assert_eq!(back["list"][1], 2);
        let pretty: serde_json::Value = serde_json::from_str(&v.pretty()).unwrap();
        assert_eq!(pretty, back);
    }
}
