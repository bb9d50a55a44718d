//! OpenMetrics text with a timestamp on every sample, as `metrics.om`
//! holds it: families in the order a story adds them, each family's series
//! in the order added, each series oldest first.

use std::fmt::Write as _;

/// One series: a sample name (family name plus `_bucket`, `_sum`, ...),
/// its labels and its samples (Unix seconds, value).
#[derive(Debug, Clone)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    samples: Vec<(i64, f64)>,
}

#[derive(Debug, Clone)]
struct Family {
    name: String,
    kind: &'static str,
    help: String,
    series: Vec<Series>,
}

/// The metrics of a bundle being built.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    families: Vec<Family>,
}

/// Label pairs, `[("service", "x"), ("code", "200")]`.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Metrics {
    /// Declares a family once (later calls with the same name are ignored).
    pub fn family(&mut self, name: &str, kind: &'static str, help: &str) {
        if self.families.iter().any(|f| f.name == name) {
            return;
        }
        self.families.push(Family {
            name: name.to_owned(),
            kind,
            help: help.to_owned(),
            series: Vec::new(),
        });
    }

    /// Appends a sample to the series `sample_name{labels}` of `family`
    /// (declared before with [`Metrics::family`]; otherwise it is declared
    /// here as an untyped family).
    pub fn push(&mut self, family: &str, sample_name: &str, labels: Labels<'_>, ts: i64, v: f64) {
        if !self.families.iter().any(|f| f.name == family) {
            self.family(family, "unknown", family);
        }
        let Some(fam) = self.families.iter_mut().find(|f| f.name == family) else {
            return;
        };
        let owned: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Some(s) = fam
            .series
            .iter_mut()
            .find(|s| s.name == sample_name && s.labels == owned)
        {
            s.samples.push((ts, v));
        } else {
            fam.series.push(Series {
                name: sample_name.to_owned(),
                labels: owned,
                samples: vec![(ts, v)],
            });
        }
    }

    /// The OpenMetrics text, ending with `# EOF`.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for s in &f.series {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                let head = if labels.is_empty() {
                    s.name.clone()
                } else {
                    format!("{}{{{}}}", s.name, labels.join(","))
                };
                for (ts, v) in &s.samples {
                    let _ = writeln!(out, "{head} {} {ts}", value(*v));
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// A sample value: integers without a fraction, others with at most six
/// decimals (enough for seconds and ratios, short enough to read).
fn value(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let r = (v * 1e6).round() / 1e6;
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{r:.0}")
    } else {
        format!("{r}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_their_series_and_the_text_ends_with_eof() {
        let mut m = Metrics::default();
        m.family("up", "gauge", "scrape health");
        m.push("up", "up", &[("service", "a")], 60, 1.0);
        m.push("up", "up", &[("service", "b")], 60, 0.0);
        m.push("up", "up", &[("service", "a")], 120, 1.0);
        m.push("lat", "lat_sum", &[], 60, 0.125_000_4);
        let text = m.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "up{service=\"a\"} 1 60");
        assert_eq!(lines[3], "up{service=\"a\"} 1 120");
        assert_eq!(lines[4], "up{service=\"b\"} 0 60");
        assert!(text.contains("lat_sum 0.125 60"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
