//! Summaries of many log records, so a model sees the shape of thousands of
//! lines: message templates mined with the log analyzer's Drain miner
//! (first line of each message, counts, first and last seen, levels,
//! services, one example), the exceptions found in the messages, and counts
//! by service and level.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use rootcause_analysis::logs::exceptions::extract_exception;
use rootcause_analysis::logs::{ClusterId, MinerConfig, TemplateMiner};
use serde_json::{Value, json};

use super::{LogRecord, count_by};

/// Templates shown at most (most frequent first).
pub const MAX_TEMPLATES: usize = 30;
/// Distinct exceptions shown at most.
const MAX_EXCEPTIONS: usize = 10;

struct Group {
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    levels: BTreeMap<String, u64>,
    services: BTreeMap<String, u64>,
    example: String,
}

/// The summary of a sample of matching records.
#[must_use]
pub fn summarize(sample: &[LogRecord]) -> Value {
    json!({
        "by_service": count_by(sample.iter().map(|r| r.service.as_str())),
        "by_level": count_by(sample.iter().map(|r| r.level.as_deref().unwrap_or("none"))),
        "templates": mine(sample),
        "exceptions": exceptions(sample),
    })
}

/// Templates of the first line of each message, most frequent first.
#[must_use]
pub fn mine(sample: &[LogRecord]) -> Vec<Value> {
    let Ok(mut miner) = TemplateMiner::new(MinerConfig::default()) else {
        return Vec::new();
    };
    let ids: Vec<ClusterId> = sample
        .iter()
        .map(|r| miner.add(r.message.lines().next().unwrap_or("")))
        .collect();
    miner.finish();
    let mut groups: BTreeMap<ClusterId, Group> = BTreeMap::new();
    for (r, id) in sample.iter().zip(ids) {
        let g = groups.entry(miner.resolve(id)).or_insert_with(|| Group {
            count: 0,
            first: r.timestamp,
            last: r.timestamp,
            levels: BTreeMap::new(),
            services: BTreeMap::new(),
            example: r
                .message
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(240)
                .collect(),
        });
        g.count += 1;
        g.first = g.first.min(r.timestamp);
        g.last = g.last.max(r.timestamp);
        *g.levels
            .entry(r.level.clone().unwrap_or_else(|| "none".to_owned()))
            .or_insert(0) += 1;
        *g.services.entry(r.service.clone()).or_insert(0) += 1;
    }
    let mut out: Vec<(ClusterId, Group)> = groups.into_iter().collect();
    out.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.1.first.cmp(&b.1.first)));
    out.into_iter()
        .take(MAX_TEMPLATES)
        .map(|(id, g)| {
            json!({
                "template": miner.template(id).text,
                "count": g.count,
                "first_seen": g.first.to_rfc3339_opts(SecondsFormat::Millis, true),
                "last_seen": g.last.to_rfc3339_opts(SecondsFormat::Millis, true),
                "levels": g.levels,
                "services": g.services,
                "example": g.example,
            })
        })
        .collect()
}

/// Distinct exceptions (type, message, top frames) with counts.
fn exceptions(sample: &[LogRecord]) -> Vec<Value> {
    // (type, top frames) -> (count, message, first seen, service)
    type Seen = (u64, String, DateTime<Utc>, String);
    let mut by_key: BTreeMap<(String, Vec<String>), Seen> = BTreeMap::new();
    for r in sample {
        let Some(e) = extract_exception(&r.message) else {
            continue;
        };
        let frames = e.top_frames(3);
        let entry = by_key.entry((e.exception_type.clone(), frames)).or_insert((
            0,
            e.message.chars().take(200).collect(),
            r.timestamp,
            r.service.clone(),
        ));
        entry.0 += 1;
        entry.2 = entry.2.min(r.timestamp);
    }
    let mut out: Vec<_> = by_key.into_iter().collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.1.0));
    out.into_iter()
        .take(MAX_EXCEPTIONS)
        .map(|((ty, frames), (count, message, first, service))| {
            json!({
                "type": ty,
                "message": message,
                "top_frames": frames,
                "count": count,
                "first_seen": first.to_rfc3339_opts(SecondsFormat::Millis, true),
                "service": service,
            })
        })
        .collect()
}
