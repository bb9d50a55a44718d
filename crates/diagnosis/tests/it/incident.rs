//! Incident validation: every rule is a typed error that names the field.

use rootcause_diagnosis::{Incident, IncidentError, Severity};

fn base() -> serde_json::Value {
    serde_json::json!({
        "title": "checkout: HTTP 5xx rate above 5% for 5m",
        "description": "free text",
        "severity": "critical",
        "services": ["checkout"],
        "environment": "production",
        "window": {"start": "2026-03-02T14:00:00Z", "end": "2026-03-02T14:30:00Z"},
        "labels": {"alertname": "CheckoutHighErrorRate", "team": "payments"}
    })
}

fn parse(v: &serde_json::Value) -> Result<Incident, IncidentError> {
    Incident::from_json(&v.to_string())
}

#[test]
fn every_shared_scenario_incident_parses() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let dir = crate::shared_dir().join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios dir") {
        let path = entry.expect("entry").path().join("incident.json");
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let incident = Incident::from_json(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        assert!(!incident.services().is_empty());
        assert!(incident.window().duration() > chrono::Duration::zero());
        n += 1;
    }
    assert!(n >= 6, "expected the six shared scenarios, found {n}");
}

#[test]
fn valid_incident_keeps_every_field() {
    let i = parse(&base()).expect("valid");
    assert_eq!(i.title(), "checkout: HTTP 5xx rate above 5% for 5m");
    assert_eq!(i.severity(), Severity::Critical);
    assert_eq!(i.services(), ["checkout"]);
    assert_eq!(i.environment(), "production");
    assert_eq!(i.labels()["team"], "payments");
    assert_eq!(i.window().duration(), chrono::Duration::minutes(30));
    // Round trip: serialising and parsing again gives the same incident.
    let again: Incident =
        serde_json::from_str(&serde_json::to_string(&i).expect("ser")).expect("de");
    assert_eq!(again, i);
}

#[test]
fn empty_title_names_title() {
    let mut v = base();
    v["title"] = "   ".into();
    let e = parse(&v).expect_err("blank title");
    assert_eq!(e, IncidentError::EmptyTitle);
    assert_eq!(e.field(), "title");
    assert!(e.to_string().contains("title"));
}

#[test]
fn missing_title_names_title() {
    let mut v = base();
    v.as_object_mut().expect("obj").remove("title");
    assert_eq!(parse(&v).expect_err("no title").field(), "title");
}

#[test]
fn unknown_severity_names_severity_and_lists_the_choices() {
    let mut v = base();
    v["severity"] = "sev1".into();
    let e = parse(&v).expect_err("bad severity");
    assert_eq!(e.field(), "severity");
    let msg = e.to_string();
    assert!(
        msg.contains("sev1") && msg.contains("critical, high, medium, low"),
        "{msg}"
    );
}

#[test]
fn inverted_window_names_window() {
    let mut v = base();
    v["window"] =
        serde_json::json!({"start": "2026-03-02T14:30:00Z", "end": "2026-03-02T14:00:00Z"});
    let e = parse(&v).expect_err("inverted");
    assert!(matches!(e, IncidentError::WindowInverted { .. }));
    assert_eq!(e.field(), "window");
}

#[test]
fn empty_window_is_rejected() {
    let mut v = base();
    v["window"] =
        serde_json::json!({"start": "2026-03-02T14:00:00Z", "end": "2026-03-02T14:00:00Z"});
    assert!(matches!(
        parse(&v),
        Err(IncidentError::WindowInverted { .. })
    ));
}

#[test]
fn window_longer_than_seven_days_names_window() {
    let mut v = base();
    v["window"] =
        serde_json::json!({"start": "2026-03-01T00:00:00Z", "end": "2026-03-08T00:00:01Z"});
    let e = parse(&v).expect_err("too long");
    assert!(
        matches!(e, IncidentError::WindowTooLong { hours: 168 }),
        "{e:?}"
    );
    assert_eq!(e.field(), "window");
    // Exactly seven days is allowed.
    v["window"]["end"] = "2026-03-08T00:00:00Z".into();
    parse(&v).expect("seven days is the limit, not past it");
}

#[test]
fn malformed_json_reports_the_path() {
    let mut v = base();
    v["window"]["start"] = "yesterday".into();
    let e = parse(&v).expect_err("bad time");
    assert_eq!(e.field(), "window.start", "{e}");
    let e = Incident::from_json("{not json").expect_err("not json");
    assert!(matches!(e, IncidentError::Json { .. }));
}

#[test]
fn serde_deserialisation_validates_too() {
    let mut v = base();
    v["severity"] = "urgent".into();
    let err = serde_json::from_value::<Incident>(v).expect_err("must validate");
    assert!(err.to_string().contains("urgent"));
}

#[test]
fn empty_service_names_services() {
    let mut v = base();
    v["services"] = serde_json::json!(["checkout", ""]);
    let e = parse(&v).expect_err("empty service");
    assert_eq!(e, IncidentError::EmptyService { index: 1 });
    assert_eq!(e.field(), "services");
}

#[test]
fn incident_with_nul_is_refused_naming_the_field() {
    let mut v = base();
    v["description"] = "disk full\u{0}".into();
    let e = parse(&v).expect_err("NUL");
    assert_eq!(e.field(), "description", "{e}");
    assert!(e.to_string().contains("NUL"), "{e}");
    let mut v = base();
    v["labels"]["team"] = "pay\u{0}ments".into();
    assert_eq!(parse(&v).expect_err("NUL").field(), "labels.team");
}

#[test]
fn trailing_garbage_after_incident_json_is_refused() {
    let text = format!("{} {{\"title\": \"second\"}}", base());
    let e = Incident::from_json(&text).expect_err("trailing object");
    assert!(matches!(e, IncidentError::Json { .. }), "{e}");
    assert!(e.to_string().contains("after the incident"), "{e}");
    let text = format!("{}}}", base());
    Incident::from_json(&text).expect_err("trailing brace");
    // Trailing whitespace is not garbage.
    Incident::from_json(&format!("{}\n\n", base())).expect("trailing newline is fine");
}

#[test]
fn overlong_title_description_and_labels_are_refused() {
    let mut v = base();
    v["title"] = "x"
        .repeat(rootcause_diagnosis::incident::MAX_TITLE_CHARS + 1)
        .into();
    let e = parse(&v).expect_err("long title");
    assert_eq!(e.field(), "title", "{e}");
    assert!(matches!(e, IncidentError::TooLong { .. }), "{e}");
    let mut v = base();
    v["description"] = "y"
        .repeat(rootcause_diagnosis::incident::MAX_DESCRIPTION_CHARS + 1)
        .into();
    assert_eq!(parse(&v).expect_err("long").field(), "description");
    let mut v = base();
    let labels: serde_json::Map<String, serde_json::Value> = (0
        ..=rootcause_diagnosis::incident::MAX_ENTRIES)
        .map(|i| (format!("k{i}"), "v".into()))
        .collect();
    v["labels"] = labels.into();
    let e = parse(&v).expect_err("too many labels");
    assert!(matches!(e, IncidentError::TooMany { .. }), "{e}");
    let mut v = base();
    v["labels"]["team"] = "z"
        .repeat(rootcause_diagnosis::incident::MAX_LABEL_VALUE_CHARS + 1)
        .into();
    assert_eq!(parse(&v).expect_err("long label").field(), "labels.team");
}
