//! Pieces every story uses: the company's people, time parsing, the daily
//! traffic curve, periodic background logs, and the small documents
//! (incident, changes, past incidents, expected).

use chrono::{DateTime, Duration, Timelike, Utc};

use crate::error::GenError;
use crate::json::{J, obj};
use crate::repo::Author;
use crate::rng::Rng;
use crate::sim::{Rec, Service, Span, count, ts_s, within_minute};

/// The engineers of Voyagio, the fictional travel-booking company of the
/// examples.
pub const PEOPLE: &[Author] = &[
    Author {
        name: "Ines Carvalho",
        email: "ines.carvalho@voyagio.example",
    },
    Author {
        name: "Dmitri Volkov",
        email: "dmitri.volkov@voyagio.example",
    },
    Author {
        name: "Aisha Rahman",
        email: "aisha.rahman@voyagio.example",
    },
    Author {
        name: "Jonas Lindqvist",
        email: "jonas.lindqvist@voyagio.example",
    },
    Author {
        name: "Priya Natarajan",
        email: "priya.natarajan@voyagio.example",
    },
    Author {
        name: "Mateo Alvarez",
        email: "mateo.alvarez@voyagio.example",
    },
];

/// A fixed moment, written as RFC 3339.
///
/// # Errors
/// [`GenError::Story`] when the text is not RFC 3339 (a typo in a story).
pub fn at(story: &str, text: &str) -> Result<DateTime<Utc>, GenError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| GenError::Story {
            story: story.to_owned(),
            message: format!("{text:?} is not an RFC 3339 time: {e}"),
        })
}

/// Traffic over the day relative to its peak (quietest at 04:00 UTC,
/// busiest at 16:00 UTC).
#[must_use]
pub fn daily(t: DateTime<Utc>) -> f64 {
    let h = f64::from(t.hour()) + f64::from(t.minute()) / 60.0;
    0.2 + 0.8 * (0.5 - 0.5 * ((h - 4.0) / 24.0 * std::f64::consts::TAU).cos())
}

/// Traffic at `t` relative to the traffic at `reference` (the services'
/// `rps` are given for that moment).
#[must_use]
pub fn load(t: DateTime<Utc>, reference: DateTime<Utc>) -> f64 {
    daily(t) / daily(reference)
}

/// A background message a service logs now and then (cache refreshes,
/// health checks, known harmless warnings).
#[derive(Debug, Clone, Copy)]
pub struct Periodic {
    /// Mean number per hour.
    pub per_hour: f64,
    /// `log.level`.
    pub level: &'static str,
    /// `log.logger`.
    pub logger: &'static str,
    /// Message; `{n}` is replaced by a random number, `{id}` by an id.
    pub message: &'static str,
}

/// Writes a service's periodic background messages over the span.
pub fn periodic(svc: &Service, span: &Span, rng: &mut Rng, items: &[Periodic]) -> Vec<Rec> {
    let mut out = Vec::new();
    for minute in span.minutes() {
        for p in items {
            for _ in 0..count(rng, p.per_hour / 60.0) {
                let t = within_minute(rng, minute);
                let msg = p
                    .message
                    .replace("{n}", &(1 + rng.below(900)).to_string())
                    .replace("{id}", &rng.hex(8));
                let pod = rng.pick(svc.pods_at(t)).clone();
                out.push(Rec::new(t, svc.name, &pod, p.level, &msg).with("log.logger", p.logger));
            }
        }
    }
    out
}

/// The incident as an alert submits it.
#[must_use]
pub fn incident(
    title: &str,
    description: &str,
    severity: &str,
    services: &[&str],
    window: (DateTime<Utc>, DateTime<Utc>),
    labels: &[(&str, &str)],
) -> J {
    obj([
        ("title", title.into()),
        ("description", description.into()),
        ("severity", severity.into()),
        (
            "services",
            J::Arr(services.iter().map(|s| J::from(*s)).collect()),
        ),
        ("environment", "production".into()),
        (
            "window",
            obj([
                ("start", ts_s(window.0).into()),
                ("end", ts_s(window.1).into()),
            ]),
        ),
        (
            "labels",
            J::Obj(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), J::from(*v)))
                    .collect(),
            ),
        ),
    ])
}

/// One line of `changes.jsonl`; `commit` is absent for services whose
/// code is not in the bundle's repository.
#[must_use]
pub fn change(
    t: DateTime<Utc>,
    service: &str,
    kind: &str,
    version: Option<&str>,
    commit: Option<&str>,
    description: &str,
) -> J {
    let mut fields = vec![
        ("ts".to_owned(), J::from(ts_s(t))),
        ("service".to_owned(), J::from(service)),
        ("kind".to_owned(), J::from(kind)),
    ];
    if let Some(v) = version {
        fields.push(("version".to_owned(), J::from(v)));
    }
    if let Some(c) = commit {
        fields.push(("commit".to_owned(), J::from(c)));
    }
    fields.push(("description".to_owned(), J::from(description)));
    J::Obj(fields)
}

/// One line of `past_incidents.jsonl`.
#[must_use]
pub fn past(
    id: &str,
    title: &str,
    symptoms: &str,
    root_cause: &str,
    category: &str,
    resolution: &str,
) -> J {
    obj([
        ("id", id.into()),
        ("title", title.into()),
        ("symptoms", symptoms.into()),
        ("root_cause", root_cause.into()),
        ("category", category.into()),
        ("resolution", resolution.into()),
    ])
}

/// The ground truth.
#[must_use]
pub fn expected(
    service: &str,
    category: &str,
    commit: Option<&str>,
    summary: &str,
    must_mention: &[&str],
    alternatives: &[(&str, &str)],
) -> J {
    let mut root = vec![
        ("service".to_owned(), J::from(service)),
        ("category".to_owned(), J::from(category)),
    ];
    if let Some(c) = commit {
        root.push(("commit".to_owned(), J::from(c)));
    }
    root.push(("summary".to_owned(), J::from(summary)));
    let mut doc = vec![
        ("root_cause".to_owned(), J::Obj(root)),
        (
            "must_mention".to_owned(),
            J::Arr(must_mention.iter().map(|s| J::from(*s)).collect()),
        ),
    ];
    if !alternatives.is_empty() {
        doc.push((
            "alternatives".to_owned(),
            J::Arr(
                alternatives
                    .iter()
                    .map(|(s, c)| obj([("service", (*s).into()), ("category", (*c).into())]))
                    .collect(),
            ),
        ));
    }
    J::Obj(doc)
}

/// A smooth ramp from 0 at `from` to 1 at `from + over`.
#[must_use]
pub fn ramp(t: DateTime<Utc>, from: DateTime<Utc>, over: Duration) -> f64 {
    if t <= from {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "milliseconds of minutes")]
    let x = (t - from).num_milliseconds() as f64 / over.num_milliseconds().max(1) as f64;
    x.min(1.0)
}

/// A Java stack trace appended to a message, frames indented with a tab.
#[must_use]
pub fn java_trace(head: &str, exception: &str, frames: &[&str]) -> String {
    let mut s = format!("{head}\n{exception}");
    for f in frames {
        s.push_str("\n\tat ");
        s.push_str(f);
    }
    s
}

/// The runbook every story shares: rolling a deploy back.
pub const RUNBOOK_ROLLBACK: &str = "# Rolling back a release

Use when errors or latency rise within minutes of a release of the service
that produces them.

1. Check that the errors come from the released service's new pods (pod names
   in the logs change with the ReplicaSet), not from a dependency it calls.
2. A release close in time is not proof: compare with the other changes in
   `deploy_history` and with what the error messages name.
3. `kubectl -n prod rollout undo deploy/<service>` and watch the 5xx ratio for
   ten minutes.
4. Open a ticket with the commit range of the release
   (`git log <previous-tag>..<tag> -- services/<service>`).
";
