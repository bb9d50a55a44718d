//! Shared by the Loghub accuracy test and bench: loads the labelled samples
//! and scores a configuration on them through [`LineParser`], the code path
//! of `rootcause logs parse`.
#![allow(dead_code)]

use std::path::PathBuf;

use rootcause_analysis::logs::eval::{Accuracy, grouping_accuracy, parsing_accuracy};
use rootcause_analysis::logs::{LineParser, MinerConfig};

/// The eight systems of the benchmark.
pub const SYSTEMS: [&str; 8] = [
    "Apache",
    "BGL",
    "HDFS",
    "HealthApp",
    "Mac",
    "OpenStack",
    "Spark",
    "Zookeeper",
];

/// One system's labelled sample.
pub struct Sample {
    pub system: &'static str,
    pub content: Vec<String>,
    pub event_id: Vec<String>,
    pub template: Vec<String>,
}

/// One system's score.
pub struct SystemResult {
    pub system: &'static str,
    pub accuracy: Accuracy,
    pub templates: usize,
    pub true_templates: usize,
}

pub fn shared_dir() -> PathBuf {
    rootcause_test_data::shared_dir()
}

pub fn load(system: &'static str) -> Sample {
    let path = shared_dir()
        .join("data/loghub")
        .join(system)
        .join(format!("{system}_2k.log_structured_corrected.csv"));
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let headers = reader.headers().expect("csv header").clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{} has no {name} column", path.display()))
    };
    let (c, e, t) = (col("Content"), col("EventId"), col("EventTemplate"));
    let mut s = Sample {
        system,
        content: vec![],
        event_id: vec![],
        template: vec![],
    };
    for row in reader.records() {
        let row = row.expect("csv row");
        s.content.push(row[c].to_owned());
        s.event_id.push(row[e].to_owned());
        s.template.push(row[t].to_owned());
    }
    s
}

pub fn evaluate(sample: &Sample, config: &MinerConfig) -> SystemResult {
    let mut parser = LineParser::new(config.clone()).expect("valid config");
    for line in &sample.content {
        parser.push(line);
    }
    let result = parser.finish();
    let predicted_ids: Vec<String> = result
        .records()
        .map(|r| r.template_id.to_string())
        .collect();
    let predicted_templates: Vec<&str> = result.records().map(|r| r.template).collect();
    let truth: Vec<&str> = sample.template.iter().map(String::as_str).collect();
    let true_templates = sample
        .event_id
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    SystemResult {
        system: sample.system,
        accuracy: Accuracy {
            grouping: grouping_accuracy(&predicted_ids, &sample.event_id),
            parsing: parsing_accuracy(&predicted_templates, &truth),
            lines: sample.content.len(),
        },
        templates: result.templates().len(),
        true_templates,
    }
}

pub fn evaluate_all(config: &MinerConfig) -> Vec<SystemResult> {
    SYSTEMS.iter().map(|s| evaluate(&load(s), config)).collect()
}

pub fn table(results: &[SystemResult]) -> String {
    let mut out = String::from("| System | GA | PA | templates (true) |\n|---|---|---|---|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {:.3} | {:.3} | {} ({}) |\n",
            r.system, r.accuracy.grouping, r.accuracy.parsing, r.templates, r.true_templates
        ));
    }
    let n = results.len().max(1) as f64;
    let ga = results.iter().map(|r| r.accuracy.grouping).sum::<f64>() / n;
    let pa = results.iter().map(|r| r.accuracy.parsing).sum::<f64>() / n;
    out.push_str(&format!("| **mean** | **{ga:.3}** | **{pa:.3}** | |\n"));
    out
}
