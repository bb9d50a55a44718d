//! Integration tests of rootcause-tools: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod access;
mod bundle_sources;
mod elasticsearch;
mod git;
mod knowledge;
mod prometheus_live;
mod registry;
mod sql;

pub use rootcause_test_data::shared_has;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rootcause_diagnosis::{Incident, TenantId, TimeWindow};
use rootcause_tools::ToolContext;

/// The shared data directory (scenarios, loghub).
pub fn shared_dir() -> PathBuf {
    rootcause_test_data::shared_dir()
}

/// Every scenario bundle directory, sorted.
pub fn scenarios() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(shared_dir().join("scenarios"))
        .expect("scenarios dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("incident.json").is_file())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no scenarios under {}",
        shared_dir().display()
    );
    dirs
}

pub fn scenario(name: &str) -> PathBuf {
    shared_dir().join("scenarios").join(name)
}

pub fn incident(dir: &std::path::Path) -> Incident {
    Incident::from_json(&std::fs::read_to_string(dir.join("incident.json")).unwrap()).unwrap()
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn ctx(tenant: &str, start: &str, end: &str) -> ToolContext {
    ToolContext::new(
        TenantId::new(tenant),
        TimeWindow::try_new(t(start), t(end)).unwrap(),
    )
}
