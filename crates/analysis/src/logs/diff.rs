//! Incident vs baseline template diff: which kinds of log line are new in
//! the incident, which became more (or less) frequent, and by how much.
//!
//! Both inputs go through one [`TemplateMiner`], so a template has the same
//! id on both sides. For each final template the diff counts lines on each
//! side and tests the change of its rate:
//!
//! - **exposure** is each side's duration in seconds when given (or when
//!   every record has a timestamp: first to last), else its number of lines;
//! - **test**: the exact conditional test for two Poisson rates. Given
//!   `k = baseline + incident` occurrences, under "no change" the incident
//!   count is `Binomial(k, p0)` with `p0 = E_incident / (E_baseline +
//!   E_incident)`; the p-value is the upper tail for a rise, the lower tail
//!   for a fall;
//! - a template is **new** when it has no baseline line, **rose** when its
//!   incident count is at least `min_count`, its rate ratio at least
//!   `min_ratio` and the p-value below `significance`, **fell** / **gone**
//!   symmetrically; anything else is steady and only counted.
//!
//! Changes are ordered new, rose, fell, gone; then by log level (errors
//! first), p-value and count. Each keeps its first time seen in the
//! incident, example lines, and the exception its examples carry.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::exceptions::{ExceptionInfo, extract_exception};
use super::{ClusterId, LogsError, MinerConfig, TemplateId, TemplateMiner};

/// One log record as the diff needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRecord<'a> {
    /// When it was logged, if known.
    pub timestamp: Option<DateTime<Utc>>,
    /// Its level as written (`ERROR`, `warn`, …), if known.
    pub level: Option<&'a str>,
    /// The message (may span lines, e.g. a stack trace).
    pub message: &'a str,
}

/// Parameters of [`diff_templates`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffConfig {
    /// The miner's parameters.
    pub miner: MinerConfig,
    /// Fewest incident lines (for a rise) or baseline lines (for a fall)
    /// before a rate change is reported: a rate from two lines says little.
    pub min_count: u64,
    /// Largest p-value reported as a significant change.
    pub significance: f64,
    /// Smallest rate ratio (or its inverse, for a fall) worth reporting.
    pub min_ratio: f64,
    /// Example lines kept per template and side.
    pub examples: usize,
    /// Baseline duration in seconds, when known better than from the
    /// records (e.g. the query window).
    pub baseline_seconds: Option<f64>,
    /// Incident duration in seconds (see `baseline_seconds`).
    pub incident_seconds: Option<f64>,
}

impl Default for DiffConfig {
    fn default() -> Self {
        Self {
            miner: MinerConfig::default(),
            min_count: 5,
            significance: 0.001,
            min_ratio: 2.0,
            examples: 3,
            baseline_seconds: None,
            incident_seconds: None,
        }
    }
}

/// How a template changed between the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Not in the baseline at all.
    New,
    /// Significantly more frequent in the incident.
    Rose,
    /// Significantly less frequent in the incident.
    Fell,
    /// In the baseline, absent from the incident (and significantly so).
    Gone,
    /// No significant change.
    Steady,
}

/// One template's change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateChange {
    /// Stable template id.
    pub template_id: TemplateId,
    /// Template text.
    pub template: String,
    /// Kind of change.
    pub kind: ChangeKind,
    /// Lines in the baseline.
    pub baseline_count: u64,
    /// Lines in the incident.
    pub incident_count: u64,
    /// Incident rate over baseline rate (per unit of exposure); `None` when
    /// the baseline count is 0.
    pub rate_ratio: Option<f64>,
    /// p-value of the rate test in the direction of the change.
    pub p_value: f64,
    /// First incident line's timestamp.
    pub first_seen: Option<DateTime<Utc>>,
    /// 1-based number of the first incident line with this template.
    pub first_seen_line: Option<u64>,
    /// Most severe level among its lines, as written.
    pub level: Option<String>,
    /// Example lines (incident side first).
    pub examples: Vec<String>,
    /// The exception carried by the first example that has one.
    pub exception: Option<ExceptionInfo>,
}

/// Result of [`diff_templates`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateDiff {
    /// Lines read from the baseline.
    pub baseline_lines: u64,
    /// Lines read from the incident.
    pub incident_lines: u64,
    /// Baseline exposure (seconds or lines, see `exposure_unit`).
    pub baseline_exposure: f64,
    /// Incident exposure.
    pub incident_exposure: f64,
    /// `"seconds"` or `"lines"`.
    pub exposure_unit: &'static str,
    /// Templates that changed, most notable first.
    pub changes: Vec<TemplateChange>,
    /// Number of templates without a significant change.
    pub steady: usize,
}

impl TemplateDiff {
    /// Changes of one kind.
    pub fn of_kind(&self, kind: ChangeKind) -> impl Iterator<Item = &TemplateChange> {
        self.changes.iter().filter(move |c| c.kind == kind)
    }
}

/// Severity rank of a level name; unknown levels rank as info.
pub fn level_rank(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "trace" => 0,
        "debug" => 1,
        "warn" | "warning" => 3,
        "error" | "err" | "severe" => 4,
        "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" => 5,
        _ => 2,
    }
}

#[derive(Debug, Default)]
struct Stats {
    baseline: u64,
    incident: u64,
    first_seen: Option<DateTime<Utc>>,
    first_seen_line: Option<u64>,
    level: Option<(u8, String)>,
    incident_examples: Vec<String>,
    baseline_examples: Vec<String>,
}

#[derive(Debug, Default)]
struct Side {
    lines: u64,
    all_timed: bool,
    min: Option<DateTime<Utc>>,
    max: Option<DateTime<Utc>>,
}

/// Diffs the templates of an incident window against a baseline.
///
/// # Errors
/// When the miner configuration is invalid.
pub fn diff_templates<'a>(
    baseline: impl IntoIterator<Item = LogRecord<'a>>,
    incident: impl IntoIterator<Item = LogRecord<'a>>,
    config: &DiffConfig,
) -> Result<TemplateDiff, LogsError> {
    let mut miner = TemplateMiner::new(config.miner.clone())?;
    let mut stats: Vec<Stats> = Vec::new();
    let mut sides = [
        Side {
            all_timed: true,
            ..Side::default()
        },
        Side {
            all_timed: true,
            ..Side::default()
        },
    ];
    let tagged = baseline
        .into_iter()
        .map(|r| (0usize, r))
        .chain(incident.into_iter().map(|r| (1usize, r)));
    {
        for (side_no, rec) in tagged {
            let in_incident = side_no == 1;
            let side = &mut sides[side_no];
            side.lines += 1;
            match rec.timestamp {
                Some(t) => {
                    side.min = Some(side.min.map_or(t, |m| m.min(t)));
                    side.max = Some(side.max.map_or(t, |m| m.max(t)));
                }
                None => side.all_timed = false,
            }
            let line_no = side.lines;
            let ClusterId(c) = miner.add(rec.message);
            if stats.len() <= c as usize {
                stats.resize_with(c as usize + 1, Stats::default);
            }
            let s = &mut stats[c as usize];
            if let Some(level) = rec.level {
                let rank = level_rank(level);
                if s.level.as_ref().is_none_or(|(r, _)| rank > *r) {
                    s.level = Some((rank, level.to_owned()));
                }
            }
            if in_incident {
                s.incident += 1;
                if s.first_seen_line.is_none() {
                    s.first_seen_line = Some(line_no);
                }
                if let Some(t) = rec.timestamp
                    && s.first_seen.is_none_or(|f| t < f)
                {
                    s.first_seen = Some(t);
                }
                if s.incident_examples.len() < config.examples {
                    s.incident_examples.push(rec.message.to_owned());
                }
            } else {
                s.baseline += 1;
                if s.baseline_examples.len() < config.examples {
                    s.baseline_examples.push(rec.message.to_owned());
                }
            }
        }
    }
    miner.finish();

    let (exposure_b, exposure_i, unit) = exposures(&sides, config);
    // Fold groups into their final templates (late merges, equal texts).
    let mut merged: rustc_hash::FxHashMap<TemplateId, (String, Stats)> =
        rustc_hash::FxHashMap::default();
    for (c, s) in stats.into_iter().enumerate() {
        if s.baseline == 0 && s.incident == 0 {
            continue;
        }
        let tpl = miner.template(ClusterId(c as u32));
        let entry = merged
            .entry(tpl.id)
            .or_insert_with(|| (tpl.text, Stats::default()));
        fold(&mut entry.1, s, config.examples);
    }

    let p0 = exposure_i / (exposure_b + exposure_i);
    let mut changes = Vec::new();
    let mut steady = 0;
    for (id, (text, s)) in merged {
        let k = s.baseline + s.incident;
        let rate_ratio = (s.baseline > 0)
            .then(|| (s.incident as f64 / exposure_i) / (s.baseline as f64 / exposure_b));
        let p_rise = binomial_upper_tail(k, s.incident, p0);
        let p_fall = binomial_lower_tail(k, s.incident, p0);
        let (kind, p_value) = if s.baseline == 0 {
            (ChangeKind::New, p_rise)
        } else if s.incident >= config.min_count
            && rate_ratio.is_some_and(|r| r >= config.min_ratio)
            && p_rise < config.significance
        {
            (ChangeKind::Rose, p_rise)
        } else if s.baseline >= config.min_count
            && rate_ratio.is_some_and(|r| r <= 1.0 / config.min_ratio)
            && p_fall < config.significance
        {
            if s.incident == 0 {
                (ChangeKind::Gone, p_fall)
            } else {
                (ChangeKind::Fell, p_fall)
            }
        } else {
            steady += 1;
            continue;
        };
        let mut examples = s.incident_examples;
        if examples.is_empty() {
            examples = s.baseline_examples;
        }
        let exception = examples.iter().find_map(|e| extract_exception(e));
        changes.push(TemplateChange {
            template_id: id,
            template: text,
            kind,
            baseline_count: s.baseline,
            incident_count: s.incident,
            rate_ratio,
            p_value,
            first_seen: s.first_seen,
            first_seen_line: s.first_seen_line,
            level: s.level.map(|(_, l)| l),
            examples,
            exception,
        });
    }
    changes.sort_by(|a, b| {
        a.kind
            .cmp(&b.kind)
            .then_with(|| {
                let ra = a.level.as_deref().map_or(2, level_rank);
                let rb = b.level.as_deref().map_or(2, level_rank);
                rb.cmp(&ra)
            })
            .then_with(|| a.p_value.total_cmp(&b.p_value))
            .then_with(|| b.incident_count.cmp(&a.incident_count))
            .then_with(|| a.template_id.cmp(&b.template_id))
    });
    Ok(TemplateDiff {
        baseline_lines: sides[0].lines,
        incident_lines: sides[1].lines,
        baseline_exposure: exposure_b,
        incident_exposure: exposure_i,
        exposure_unit: unit,
        changes,
        steady,
    })
}

fn fold(into: &mut Stats, s: Stats, examples: usize) {
    into.baseline += s.baseline;
    into.incident += s.incident;
    into.first_seen = match (into.first_seen, s.first_seen) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    into.first_seen_line = match (into.first_seen_line, s.first_seen_line) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some((rank, l)) = s.level
        && into.level.as_ref().is_none_or(|(r, _)| rank > *r)
    {
        into.level = Some((rank, l));
    }
    for e in s.incident_examples {
        if into.incident_examples.len() < examples {
            into.incident_examples.push(e);
        }
    }
    for e in s.baseline_examples {
        if into.baseline_examples.len() < examples {
            into.baseline_examples.push(e);
        }
    }
}

fn exposures(sides: &[Side; 2], config: &DiffConfig) -> (f64, f64, &'static str) {
    if let (Some(b), Some(i)) = (config.baseline_seconds, config.incident_seconds)
        && b > 0.0
        && i > 0.0
    {
        return (b, i, "seconds");
    }
    let span = |s: &Side| match (s.all_timed, s.min, s.max) {
        (true, Some(a), Some(b)) => Some(((b - a).num_milliseconds() as f64 / 1000.0).max(1.0)),
        _ => None,
    };
    match (span(&sides[0]), span(&sides[1])) {
        (Some(b), Some(i)) if sides[0].lines > 1 && sides[1].lines > 1 => (b, i, "seconds"),
        _ => (
            sides[0].lines.max(1) as f64,
            sides[1].lines.max(1) as f64,
            "lines",
        ),
    }
}

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 7, 9 terms; relative
/// error below 1e-13), enough for binomial tails.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection formula.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

fn ln_binom_pmf(k: u64, x: u64, p: f64) -> f64 {
    let (kf, xf) = (k as f64, x as f64);
    let ln_choose = ln_gamma(kf + 1.0) - ln_gamma(xf + 1.0) - ln_gamma(kf - xf + 1.0);
    let a = if x == 0 { 0.0 } else { xf * p.ln() };
    let b = if x == k {
        0.0
    } else {
        (kf - xf) * (1.0 - p).ln()
    };
    ln_choose + a + b
}

/// Sums pmf terms from `start` in direction `step` while they matter:
/// terms away from the mode shrink geometrically.
fn tail_sum(k: u64, start: u64, p: f64, up: bool) -> f64 {
    let mut sum = 0.0;
    let mut x = start;
    loop {
        let term = ln_binom_pmf(k, x, p).exp();
        sum += term;
        if term < sum * 1e-17 && term > 0.0 || (term == 0.0 && sum > 0.0) {
            break;
        }
        if up {
            if x == k {
                break;
            }
            x += 1;
        } else {
            if x == 0 {
                break;
            }
            x -= 1;
        }
    }
    sum.min(1.0)
}

/// `P(X >= x)` for `X ~ Binomial(k, p)`.
pub fn binomial_upper_tail(k: u64, x: u64, p: f64) -> f64 {
    if x == 0 {
        return 1.0;
    }
    if x > k {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let mode = ((k as f64 + 1.0) * p).floor() as u64;
    if x > mode {
        tail_sum(k, x, p, true)
    } else {
        1.0 - tail_sum(k, x - 1, p, false)
    }
}

/// `P(X <= x)` for `X ~ Binomial(k, p)`.
pub fn binomial_lower_tail(k: u64, x: u64, p: f64) -> f64 {
    if x >= k {
        return 1.0;
    }
    1.0 - binomial_upper_tail(k, x + 1, p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn rec<'a>(message: &'a str, level: &'a str) -> LogRecord<'a> {
        LogRecord {
            timestamp: None,
            level: Some(level),
            message,
        }
    }

    #[test]
    fn binomial_tails_match_known_values() {
        // Binomial(10, 0.5): P(X >= 8) = 56/1024.
        assert!((binomial_upper_tail(10, 8, 0.5) - 56.0 / 1024.0).abs() < 1e-12);
        assert!((binomial_lower_tail(10, 2, 0.5) - 56.0 / 1024.0).abs() < 1e-12);
        assert!((binomial_upper_tail(10, 3, 0.5) - (1.0 - 56.0 / 1024.0)).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(10, 0, 0.3), 1.0);
        // Large k stays finite and tiny for an extreme count.
        let p = binomial_upper_tail(1_000_000, 600_000, 0.5);
        assert!((0.0..1e-100).contains(&p), "{p}");
    }

    #[test]
    fn reports_new_risen_and_fallen_templates() {
        let mut baseline = Vec::new();
        let mut incident = Vec::new();
        let lines: Vec<String> = (0..200)
            .map(|i| format!("request handled path=/items/{i} status=200"))
            .collect();
        let slow: Vec<String> = (0..60).map(|i| format!("slow query took {i}ms")).collect();
        let cache: Vec<String> = (0..40)
            .map(|i| format!("cache refreshed with {i} entries"))
            .collect();
        let npe = "Failed to add item\njava.lang.NullPointerException: tier is null\n\tat com.acme.cart.Promo.apply(Promo.java:59)";
        for l in &lines[..100] {
            baseline.push(rec(l, "INFO"));
        }
        for l in &slow[..3] {
            baseline.push(rec(l, "WARN"));
        }
        for l in &cache[..30] {
            baseline.push(rec(l, "INFO"));
        }
        for l in &lines[100..] {
            incident.push(rec(l, "INFO"));
        }
        for l in &slow[3..] {
            incident.push(rec(l, "WARN"));
        }
        for _ in 0..20 {
            incident.push(rec(npe, "ERROR"));
        }
        incident.push(rec(&cache[30], "INFO"));
        let d = diff_templates(baseline, incident, &DiffConfig::default()).unwrap();
        assert_eq!(d.exposure_unit, "lines");
        let new: Vec<_> = d.of_kind(ChangeKind::New).collect();
        assert_eq!(new.len(), 1, "{:#?}", d.changes);
        assert_eq!(new[0].incident_count, 20);
        assert_eq!(new[0].level.as_deref(), Some("ERROR"));
        assert_eq!(new[0].first_seen_line, Some(158));
        let exc = new[0].exception.as_ref().unwrap();
        assert_eq!(exc.exception_type, "java.lang.NullPointerException");
        let rose: Vec<_> = d.of_kind(ChangeKind::Rose).collect();
        assert_eq!(rose.len(), 1);
        assert_eq!(rose[0].template, "slow query took <*>");
        assert_eq!((rose[0].baseline_count, rose[0].incident_count), (3, 57));
        assert!(rose[0].p_value < 1e-6);
        let fell: Vec<_> = d.of_kind(ChangeKind::Fell).collect();
        assert_eq!(fell.len(), 1);
        assert_eq!(fell[0].template, "cache refreshed with <*> entries");
        // The request template is steady.
        assert_eq!(d.steady, 1);
        assert_eq!(d.changes[0].kind, ChangeKind::New);
    }

    #[test]
    fn a_rise_within_noise_is_steady() {
        let base: Vec<String> = (0..50).map(|i| format!("job {i} done")).collect();
        let inc: Vec<String> = (0..60).map(|i| format!("job {i} done")).collect();
        let d = diff_templates(
            base.iter().map(|m| rec(m, "INFO")),
            inc.iter().map(|m| rec(m, "INFO")),
            &DiffConfig {
                baseline_seconds: Some(600.0),
                incident_seconds: Some(600.0),
                ..DiffConfig::default()
            },
        )
        .unwrap();
        assert_eq!(d.exposure_unit, "seconds");
        assert!(d.changes.is_empty(), "{:#?}", d.changes);
        assert_eq!(d.steady, 1);
    }
}
