//! The result size cap: cuts a JSON value down to a byte budget, saying
//! exactly what was dropped.
//!
//! A model's context is the scarcest resource of a diagnosis, so every tool
//! result is capped. Cutting is never silent: each cut is listed in
//! [`Truncation::omitted`]. Arrays lose their tail (tools sort the most
//! useful items first), long strings lose their end, and the biggest part is
//! always cut first so small, dense fields (counts, totals, queries) survive.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::tool::Truncation;

/// Strings are never cut below this many characters.
const MIN_STRING_CHARS: usize = 64;

/// Returns `value` cut to at most `max_bytes` of serialized JSON (or as close
/// as the structure allows), and what was cut; `None` when it already fit.
#[must_use]
pub fn fit_to_budget(mut value: Value, max_bytes: usize) -> (Value, Option<Truncation>) {
    let original_bytes = json_len(&value);
    if original_bytes <= max_bytes {
        return (value, None);
    }
    // path -> (original length, kept length, unit)
    let mut cuts: BTreeMap<String, (usize, usize, &'static str)> = BTreeMap::new();
    let mut size = original_bytes;
    // Every pass removes at least one array item or string character, so
    // this terminates; the bound only guards against a pathological shape.
    for _ in 0..10_000 {
        if size <= max_bytes {
            break;
        }
        let excess = size - max_bytes;
        let Some(target) = biggest_cuttable(&value, String::new()) else {
            break;
        };
        let Some(node) = value.pointer_mut(&target.path) else {
            break;
        };
        match node {
            Value::Array(items) => {
                let len = items.len();
                let per_item = (target.bytes / len.max(1)).max(1);
                let drop = (excess / per_item + 1).clamp(1, len);
                // Halve at most per pass so a big first item does not wipe out the rest.
                let drop = drop.min(len.div_ceil(2)).max(1);
                let keep = len - drop;
                items.truncate(keep);
                let entry = cuts.entry(target.path).or_insert((len, len, "items"));
                entry.1 = keep;
            }
            Value::String(s) => {
                let chars = s.chars().count();
                let keep = chars
                    .saturating_sub(excess + 24)
                    .max(MIN_STRING_CHARS)
                    .min(chars.saturating_sub(1));
                let cut: String = s.chars().take(keep).collect();
                *s = format!("{cut}…[cut]");
                let entry = cuts.entry(target.path).or_insert((chars, chars, "chars"));
                entry.1 = keep;
            }
            _ => break,
        }
        size = json_len(&value);
    }
    let mut omitted: Vec<String> = cuts
        .into_iter()
        .map(|(path, (orig, kept, unit))| {
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            format!("{path}: kept {kept} of {orig} {unit}")
        })
        .collect();
    if size > max_bytes {
        // Nothing left to cut structurally (many small keys): keep a preview.
        // Escaping inflates the text inside a JSON string, so shrink until it fits.
        let text = value.to_string();
        let mut keep = max_bytes.saturating_sub(16);
        let mut preview: String = text.chars().take(keep).collect();
        while json_len(&Value::String(preview.clone())) > max_bytes && keep > 0 {
            keep = keep * 9 / 10;
            preview = text.chars().take(keep).collect();
        }
        omitted.push(format!(
            "/: structure replaced by a {}-character preview",
            preview.chars().count()
        ));
        value = Value::String(preview);
        size = json_len(&value);
    }
    (
        value,
        Some(Truncation {
            original_bytes,
            returned_bytes: size,
            omitted,
        }),
    )
}

/// Serialized size in bytes.
#[must_use]
pub fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

struct Target {
    path: String,
    bytes: usize,
}

/// The largest array (with items) or long string, by serialized size.
fn biggest_cuttable(value: &Value, path: String) -> Option<Target> {
    let own = match value {
        Value::Array(items) if !items.is_empty() => Some(Target {
            path: path.clone(),
            bytes: json_len(value),
        }),
        Value::String(s) if s.chars().count() > MIN_STRING_CHARS + 8 => Some(Target {
            path: path.clone(),
            bytes: s.len(),
        }),
        _ => None,
    };
    let children = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| biggest_cuttable(v, format!("{path}/{i}")))
            .max_by_key(|t| t.bytes),
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| biggest_cuttable(v, format!("{path}/{}", escape(k))))
            .max_by_key(|t| t.bytes),
        _ => None,
    };
    match (own, children) {
        // Prefer cutting a single huge member (a 50 KB diff) over dropping
        // whole items of the array that holds it.
        (Some(o), Some(c)) if c.bytes * 2 >= o.bytes => Some(c),
        (Some(o), _) => Some(o),
        (None, c) => c,
    }
}

/// JSON pointer escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {

    use super::*;
    use serde_json::json;

    #[test]
    fn small_values_are_untouched() {
        let v = json!({"a": [1, 2, 3]});
        let (out, t) = fit_to_budget(v.clone(), 1000);
        assert_eq!(out, v);
        assert!(t.is_none());
    }

    #[test]
    fn long_arrays_lose_their_tail_and_say_so() {
        let records: Vec<Value> = (0..500)
            .map(|i| json!({"i": i, "message": format!("line {i} with some text")}))
            .collect();
        let v = json!({"total": 500, "records": records});
        let (out, t) = fit_to_budget(v, 2_000);
        let t = t.expect("truncated");
        assert!(t.returned_bytes <= 2_000, "{t:?}");
        assert_eq!(out["total"], 500);
        let kept = out["records"].as_array().expect("array").len();
        assert!(kept > 10 && kept < 500, "kept {kept}");
        assert_eq!(out["records"][0]["i"], 0, "the head is kept");
        assert_eq!(
            t.omitted,
            vec![format!("/records: kept {kept} of 500 items")]
        );
    }

    #[test]
    fn a_huge_string_is_cut_before_its_siblings_are_dropped() {
        let v = json!({"files": [{"path": "a", "patch": "x".repeat(20_000)}, {"path": "b", "patch": "small"}]});
        let (out, t) = fit_to_budget(v, 3_000);
        let t = t.expect("truncated");
        assert_eq!(out["files"].as_array().expect("array").len(), 2);
        assert!(
            out["files"][0]["patch"]
                .as_str()
                .expect("str")
                .ends_with("…[cut]")
        );
        assert!(
            t.omitted[0].starts_with("/files/0/patch: kept"),
            "{:?}",
            t.omitted
        );
        assert!(t.returned_bytes <= 3_000);
    }

    #[test]
    fn many_small_keys_become_a_marked_preview() {
        let map: serde_json::Map<String, Value> =
            (0..400).map(|i| (format!("k{i}"), json!(i))).collect();
        let (out, t) = fit_to_budget(Value::Object(map), 500);
        let t = t.expect("truncated");
        assert!(out.is_string());
        assert!(t.omitted.last().expect("note").contains("preview"));
        assert!(t.returned_bytes <= 500);
    }
}
