//! Configuration rules and the mode rule.

use chrono::Duration;
use rootcause_diagnosis::{AgentKind, Confidence, Mode};
use rootcause_workflow::{WorkflowConfig, WorkflowError, choose_mode, deadline_for};

use crate::support::{incident, t0};

#[test]
fn defaults_are_valid_and_match_the_architecture() {
    let c = WorkflowConfig::default();
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.confidence_threshold.get(), 85);
    assert_eq!(c.min_agreeing_kinds, 2);
    assert_eq!(c.deadline(), Duration::minutes(30));
}

#[test]
fn every_broken_rule_is_reported_with_its_key() {
    let c = WorkflowConfig {
        confidence_threshold: Confidence::ZERO,
        max_rounds: 0,
        deadline_seconds: 8 * 24 * 3600,
        partial_penalty_percent: 101,
        investigators: vec![AgentKind::Coordinator],
        ..WorkflowConfig::default()
    };
    let keys: Vec<&str> = c
        .validate()
        .unwrap_err()
        .iter()
        .map(|e| match e {
            WorkflowError::InvalidConfig { key, .. } => *key,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            "confidence_threshold",
            "max_rounds",
            "deadline_seconds",
            "partial_penalty_percent",
            "investigators"
        ]
    );
}

#[test]
fn a_settings_section_names_only_what_it_changes() {
    let c: WorkflowConfig =
        serde_json::from_str(r#"{"max_rounds": 5, "investigators": ["log", "metric"]}"#).unwrap();
    assert_eq!(c.max_rounds, 5);
    assert_eq!(c.investigators, [AgentKind::Log, AgentKind::Metric]);
    assert_eq!(c.deadline_seconds, 1800);
    assert!(serde_json::from_str::<WorkflowConfig>(r#"{"max_round": 5}"#).is_err());
}

#[test]
fn the_rule_picks_complex_for_many_services_or_critical_severity() {
    let c = WorkflowConfig::default();
    let one = incident(&["checkout"], "high");
    let many = incident(&["checkout", "cart", "db"], "low");
    let critical = incident(&["checkout"], "critical");
    assert_eq!(choose_mode(&one, None, &c).mode, Mode::Simple);
    assert_eq!(choose_mode(&many, None, &c).mode, Mode::Complex);
    assert!(choose_mode(&many, None, &c).reason.contains("3 services"));
    assert_eq!(choose_mode(&critical, None, &c).mode, Mode::Complex);
    let explicit = choose_mode(&critical, Some(Mode::Simple), &c);
    assert_eq!(explicit.mode, Mode::Simple);
    assert_eq!(explicit.reason, "requested explicitly");
}

#[test]
fn the_deadline_defaults_to_thirty_minutes_unless_requested() {
    let c = WorkflowConfig::default();
    assert_eq!(deadline_for(t0(), None, &c), t0() + Duration::minutes(30));
    let asked = t0() + Duration::minutes(5);
    assert_eq!(deadline_for(t0(), Some(asked), &c), asked);
}
