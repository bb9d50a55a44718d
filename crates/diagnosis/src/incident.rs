//! The incident as reported: exactly the `incident.json` of an incident bundle.
//!
//! An [`Incident`] can only exist in a valid state: every constructor,
//! including deserialization, runs the same checks and reports the first
//! broken rule as an [`IncidentError`] that names the field.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::IncidentError;

/// The longest window a diagnosis will look at; longer windows make every
/// query slow and the baseline meaningless.
pub const MAX_WINDOW: Duration = Duration::days(7);

/// Longest title, in characters (a one-line summary).
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
/// Longest service name, environment, label key or label value.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest label value, in characters.
pub const MAX_LABEL_VALUE_CHARS: usize = 2_000;
/// Most services and most labels an incident may carry.
pub const MAX_ENTRIES: usize = 100;

/// Refuses a NUL and text over `max` characters in `field`.
fn check_text(field: impl Fn() -> String, text: &str, max: usize) -> Result<(), IncidentError> {
    if text.contains('\0') {
        return Err(IncidentError::ContainsNul { field: field() });
    }
    let len = text.chars().count();
    if len > max {
        return Err(IncidentError::TooLong {
            field: field(),
            len,
            max,
        });
    }
    Ok(())
}

/// How bad the incident is, as the reporter or the alert says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Customer-facing outage.
    Critical,
    /// Significant degradation.
    High,
    /// Partial or internal impact.
    Medium,
    /// Minor.
    Low,
}

impl Severity {
    /// All severities, for validation messages and generators.
    pub const ALL: [Severity; 4] = [Self::Critical, Self::High, Self::Medium, Self::Low];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = IncidentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|sev| sev.as_str() == s)
            .ok_or_else(|| IncidentError::UnknownSeverity {
                value: s.to_owned(),
            })
    }
}

/// The time range the incident covers; tools default their queries to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawWindow")]
pub struct TimeWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

#[derive(Deserialize)]
struct RawWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TryFrom<RawWindow> for TimeWindow {
    type Error = IncidentError;
    fn try_from(raw: RawWindow) -> Result<Self, Self::Error> {
        Self::try_new(raw.start, raw.end)
    }
}

impl TimeWindow {
    /// A window from `start` to `end`.
    ///
    /// # Errors
    /// [`IncidentError::WindowInverted`] when `end` is not after `start`,
    /// [`IncidentError::WindowTooLong`] when it spans more than [`MAX_WINDOW`].
    pub fn try_new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, IncidentError> {
        if end <= start {
            return Err(IncidentError::WindowInverted { start, end });
        }
        if end - start > MAX_WINDOW {
            return Err(IncidentError::WindowTooLong {
                hours: (end - start).num_hours(),
            });
        }
        Ok(Self { start, end })
    }

    /// Start of the window (inclusive).
    #[must_use]
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// End of the window (exclusive).
    #[must_use]
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// Length of the window.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Whether `t` falls in `[start, end)`.
    #[must_use]
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        t >= self.start && t < self.end
    }
}

/// An incident as a user or an alert reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawIncident")]
pub struct Incident {
    title: String,
    description: String,
    severity: Severity,
    services: Vec<String>,
    environment: String,
    window: TimeWindow,
    labels: BTreeMap<String, String>,
}

/// The unchecked shape of `incident.json`; [`Incident::try_new`] validates it.
///
/// Severity stays a string here so that an unknown value is reported as
/// [`IncidentError::UnknownSeverity`] rather than a generic parse error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawIncident {
    /// One-line summary; must not be blank.
    #[serde(default)]
    pub title: String,
    /// Free text from the alert or the reporter.
    #[serde(default)]
    pub description: String,
    /// One of `critical`, `high`, `medium`, `low`.
    #[serde(default)]
    pub severity: String,
    /// Services reported as affected (the symptom, not necessarily the cause).
    #[serde(default)]
    pub services: Vec<String>,
    /// e.g. `production`.
    #[serde(default)]
    pub environment: String,
    /// The incident window.
    pub window: RawWindowFields,
    /// Alert labels and other key/value context.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The unchecked window of a [`RawIncident`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawWindowFields {
    /// Window start, RFC 3339.
    pub start: DateTime<Utc>,
    /// Window end, RFC 3339.
    pub end: DateTime<Utc>,
}

impl TryFrom<RawIncident> for Incident {
    type Error = IncidentError;
    fn try_from(raw: RawIncident) -> Result<Self, Self::Error> {
        Self::try_new(raw)
    }
}

impl Incident {
    /// Validates a raw incident.
    ///
    /// # Errors
    /// The first broken rule, as an [`IncidentError`] whose
    /// [`field`](IncidentError::field) names the offending field.
    pub fn try_new(raw: RawIncident) -> Result<Self, IncidentError> {
        let title = raw.title.trim().to_owned();
        if title.is_empty() {
            return Err(IncidentError::EmptyTitle);
        }
        let severity: Severity = raw.severity.trim().parse()?;
        let window = TimeWindow::try_new(raw.window.start, raw.window.end)?;
        if let Some(i) = raw.services.iter().position(|s| s.trim().is_empty()) {
            return Err(IncidentError::EmptyService { index: i });
        }
        check_text(|| "title".to_owned(), &title, MAX_TITLE_CHARS)?;
        check_text(
            || "description".to_owned(),
            &raw.description,
            MAX_DESCRIPTION_CHARS,
        )?;
        check_text(
            || "environment".to_owned(),
            &raw.environment,
            MAX_NAME_CHARS,
        )?;
        for (field, count) in [
            ("services", raw.services.len()),
            ("labels", raw.labels.len()),
        ] {
            if count > MAX_ENTRIES {
                return Err(IncidentError::TooMany {
                    field: field.to_owned(),
                    count,
                    max: MAX_ENTRIES,
                });
            }
        }
        for (i, s) in raw.services.iter().enumerate() {
            check_text(|| format!("services[{i}]"), s, MAX_NAME_CHARS)?;
        }
        for (k, v) in &raw.labels {
            check_text(|| "labels".to_owned(), k, MAX_NAME_CHARS)?;
            check_text(|| format!("labels.{k}"), v, MAX_LABEL_VALUE_CHARS)?;
        }
        Ok(Self {
            title,
            description: raw.description,
            severity,
            services: raw.services,
            environment: raw.environment,
            window,
            labels: raw.labels,
        })
    }

    /// Parses and validates `incident.json` text.
    ///
    /// # Errors
    /// [`IncidentError::Json`] with the JSON path for malformed input, or the
    /// validation error of [`Incident::try_new`].
    pub fn from_json(text: &str) -> Result<Self, IncidentError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawIncident =
            serde_path_to_error_lite(de).map_err(|(path, e)| IncidentError::Json {
                path,
                message: e.to_string(),
            })?;
        // One document only: text after it (a second object, a stray `}`)
        // means the file is not what the reporter thinks it is.
        de.end().map_err(|e| IncidentError::Json {
            path: ".".to_owned(),
            message: format!("unexpected text after the incident object: {e}"),
        })?;
        Self::try_new(raw)
    }

    /// One-line summary.
    #[must_use]
    pub fn title(&self) -> &str {
        &self.title
    }
    /// Free text from the reporter.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Severity.
    #[must_use]
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// Services reported as affected.
    #[must_use]
    pub fn services(&self) -> &[String] {
        &self.services
    }
    /// Environment name.
    #[must_use]
    pub fn environment(&self) -> &str {
        &self.environment
    }
    /// The incident window.
    #[must_use]
    pub fn window(&self) -> TimeWindow {
        self.window
    }
    /// Labels.
    #[must_use]
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

/// Deserializes `RawIncident`, returning the JSON path of the failure.
fn serde_path_to_error_lite(
    de: &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>,
) -> Result<RawIncident, (String, serde_json::Error)> {
    serde_path_to_error::deserialize(de).map_err(|e| (e.path().to_string(), e.into_inner()))
}
