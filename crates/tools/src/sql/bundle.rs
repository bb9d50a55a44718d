//! The offline `sql_diagnostics` backend: snapshots a bundle took during
//! the incident (`db/pg_stat_activity.jsonl`, `db/pg_locks.jsonl`, and when
//! present `db/pg_stat_statements.jsonl`, `db/pg_stat_user_tables.jsonl`,
//! `db/pg_settings.jsonl`).
//!
//! Durations are measured from each row's `snapshot_at` (the moment the
//! snapshot was taken), not from now, and rows keep the live backend's
//! column names so agents read both the same way. A missing file is "no
//! data", never an error.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Diagnostic, DiagnosticRows, SqlBackend};
use crate::bundle::{Bundle, read_jsonl};
use crate::context::ToolContext;
use crate::error::ToolError;

const SOURCE: &str = "bundle:db";
const TOOL: &str = "sql_diagnostics";

/// Diagnostics over a bundle's `db/` snapshots.
#[derive(Debug, Clone)]
pub struct BundleDb {
    bundle: Arc<Bundle>,
}

impl BundleDb {
    /// The backend of `bundle`.
    #[must_use]
    pub fn new(bundle: Arc<Bundle>) -> Self {
        Self { bundle }
    }

    /// Rows of `db/<name>.jsonl`; `None` when the file is absent.
    fn table(&self, name: &str) -> Result<Option<(Vec<Value>, usize)>, ToolError> {
        let path = self.bundle.path(&format!("db/{name}.jsonl"));
        if !path.is_file() {
            return Ok(None);
        }
        read_jsonl(&path).map(Some)
    }
}

fn time(v: &Value, field: &str) -> Option<DateTime<Utc>> {
    v[field]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds from `field` to the row's snapshot, rounded to 0.1.
fn age(v: &Value, field: &str) -> Option<f64> {
    let at = time(v, "snapshot_at")?;
    let from = time(v, field)?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "milliseconds of an incident fit f64"
    )]
    let secs = (at - from).num_milliseconds() as f64 / 1000.0;
    Some((secs * 10.0).round() / 10.0)
}

fn cut(v: &Value, n: usize) -> Value {
    v.as_str().map_or(Value::Null, |s| {
        json!(s.chars().take(n).collect::<String>())
    })
}

fn activity_row(v: &Value) -> Value {
    json!({
        "snapshot_at": v["snapshot_at"],
        "pid": v["pid"],
        "usename": v["usename"],
        "application_name": v["application_name"],
        "client_addr": v["client_addr"],
        "state": v["state"],
        "wait_event_type": v["wait_event_type"],
        "wait_event": v["wait_event"],
        "xact_seconds": age(v, "xact_start"),
        "query_seconds": age(v, "query_start"),
        "state_seconds": age(v, "state_change"),
        "blocked_by": v.get("blocked_by").cloned().unwrap_or_else(|| json!([])),
        "query": cut(&v["query"], 500),
    })
}

fn lock_text(l: &Value) -> String {
    let what = l["locktype"].as_str().unwrap_or("lock");
    let on = l["relation"]
        .as_str()
        .map(|r| format!(" on {r}"))
        .unwrap_or_default();
    format!("{what}{on} ({})", l["mode"].as_str().unwrap_or("?"))
}

fn jq(file: &str, filter: &str) -> String {
    format!("jq -c '{filter}' db/{file}.jsonl")
}

#[async_trait]
impl SqlBackend for BundleDb {
    fn source(&self) -> &str {
        SOURCE
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        diagnostic: &Diagnostic,
        limit: usize,
    ) -> Result<DiagnosticRows, ToolError> {
        ctx.check_tenant(TOOL, self.bundle.tenant())?;
        let this = self.clone();
        let diagnostic = diagnostic.clone();
        tokio::task::spawn_blocking(move || this.run_blocking(&diagnostic, limit))
            .await
            .map_err(|e| ToolError::backend(SOURCE, e.to_string(), false))?
    }
}

impl BundleDb {
    fn run_blocking(
        &self,
        diagnostic: &Diagnostic,
        limit: usize,
    ) -> Result<DiagnosticRows, ToolError> {
        let mut out = DiagnosticRows::default();
        let absent =
            |file: &str| format!("the bundle has no db/{file}.jsonl: no data for this diagnostic");
        match diagnostic {
            Diagnostic::LongRunningQueries { min_seconds } => {
                out.query = jq(
                    "pg_stat_activity",
                    &format!(
                        "select(.state != \"idle\") # with max(snapshot_at - query_start (active), snapshot_at - xact_start) >= {min_seconds}s"
                    ),
                );
                let Some((rows, bad)) = self.table("pg_stat_activity")? else {
                    out.warnings.push(absent("pg_stat_activity"));
                    return Ok(out);
                };
                note_bad(&mut out, bad);
                let mut hits: Vec<(f64, Value)> = rows
                    .iter()
                    .filter(|r| r["state"].as_str() != Some("idle"))
                    .filter_map(|r| {
                        let q = if r["state"].as_str() == Some("active") {
                            age(r, "query_start")
                        } else {
                            None
                        };
                        let d = q
                            .into_iter()
                            .chain(age(r, "xact_start"))
                            .fold(f64::NAN, f64::max);
                        (d >= *min_seconds).then(|| (d, activity_row(r)))
                    })
                    .collect();
                hits.sort_by(|a, b| b.0.total_cmp(&a.0));
                out.rows = hits.into_iter().take(limit).map(|(_, r)| r).collect();
            }
            Diagnostic::LockWaits => {
                out.query = jq(
                    "pg_stat_activity",
                    "select((.blocked_by // []) | length > 0)",
                );
                let Some((rows, bad)) = self.table("pg_stat_activity")? else {
                    out.warnings.push(absent("pg_stat_activity"));
                    return Ok(out);
                };
                note_bad(&mut out, bad);
                let locks = self.table("pg_locks")?.map(|(l, _)| l).unwrap_or_default();
                let by_pid: BTreeMap<(String, i64), &Value> = rows
                    .iter()
                    .filter_map(|r| {
                        Some((
                            (r["snapshot_at"].as_str()?.to_owned(), r["pid"].as_i64()?),
                            r,
                        ))
                    })
                    .collect();
                let mut waits: Vec<(String, Value)> = rows
                    .iter()
                    .filter(|r| r["blocked_by"].as_array().is_some_and(|b| !b.is_empty()))
                    .map(|w| {
                        let snap = w["snapshot_at"].as_str().unwrap_or_default().to_owned();
                        let blockers: Vec<Value> = w["blocked_by"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or(&[])
                            .iter()
                            .filter_map(Value::as_i64)
                            .map(|pid| match by_pid.get(&(snap.clone(), pid)) {
                                Some(b) => json!({
                                    "pid": pid,
                                    "usename": b["usename"],
                                    "application_name": b["application_name"],
                                    "state": b["state"],
                                    "xact_seconds": age(b, "xact_start"),
                                    "state_seconds": age(b, "state_change"),
                                    "query": cut(&b["query"], 300),
                                }),
                                None => json!({"pid": pid}),
                            })
                            .collect();
                        let waiting_for: Vec<String> = locks
                            .iter()
                            .filter(|l| l["snapshot_at"].as_str() == Some(snap.as_str()) && l["pid"] == w["pid"] && l["granted"].as_bool() == Some(false))
                            .map(lock_text)
                            .collect();
                        let row = json!({
                            "snapshot_at": snap,
                            "waiting_pid": w["pid"],
                            "usename": w["usename"],
                            "application_name": w["application_name"],
                            "wait_event_type": w["wait_event_type"],
                            "wait_event": w["wait_event"],
                            "waiting_seconds": age(w, "query_start"),
                            "waiting_query": cut(&w["query"], 300),
                            "blocking_pids": w["blocked_by"],
                            "waiting_for": if waiting_for.is_empty() { Value::Null } else { json!(waiting_for.join(", ")) },
                            "blockers": blockers,
                        });
                        (w["query_start"].as_str().unwrap_or_default().to_owned(), row)
                    })
                    .collect();
                waits.sort_by(|a, b| a.0.cmp(&b.0));
                out.rows = waits.into_iter().take(limit).map(|(_, r)| r).collect();
            }
            Diagnostic::Connections => {
                out.query = jq(
                    "pg_stat_activity",
                    "group_by(.snapshot_at) | last | group_by([.application_name, .state]) | map({application_name: .[0].application_name, state: .[0].state, connections: length})",
                );
                let Some((rows, bad)) = self.table("pg_stat_activity")? else {
                    out.warnings.push(absent("pg_stat_activity"));
                    return Ok(out);
                };
                note_bad(&mut out, bad);
                let latest = rows
                    .iter()
                    .filter_map(|r| r["snapshot_at"].as_str())
                    .max()
                    .map(str::to_owned);
                let snap: Vec<&Value> = rows
                    .iter()
                    .filter(|r| r["snapshot_at"].as_str() == latest.as_deref())
                    .collect();
                let mut groups: BTreeMap<(String, String), u64> = BTreeMap::new();
                let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
                for r in &snap {
                    let app = r["application_name"].as_str().unwrap_or("").to_owned();
                    let state = r["state"].as_str().unwrap_or("unknown").to_owned();
                    *groups.entry((app, state.clone())).or_insert(0) += 1;
                    *by_state.entry(state).or_insert(0) += 1;
                }
                let mut rows_out: Vec<(u64, Value)> = groups
                    .into_iter()
                    .map(|((app, state), n)| {
                        (
                            n,
                            json!({"application_name": app, "state": state, "connections": n}),
                        )
                    })
                    .collect();
                rows_out.sort_by_key(|r| std::cmp::Reverse(r.0));
                out.rows = rows_out.into_iter().take(limit).map(|(_, r)| r).collect();
                let max = self
                    .table("pg_settings")?
                    .and_then(|(s, _)| {
                        s.into_iter()
                            .find(|r| r["name"].as_str() == Some("max_connections"))
                    })
                    .and_then(|r| {
                        r["setting"]
                            .as_str()
                            .and_then(|s| s.parse::<u64>().ok())
                            .or_else(|| r["setting"].as_u64())
                    });
                out.summary = Some(json!({
                    "snapshot_at": latest,
                    "total": snap.len(),
                    "by_state": by_state,
                    "max_connections": max,
                }));
                if max.is_none() {
                    out.warnings.push(
                        "the snapshot lists sessions it captured, which may not be all of them; max_connections is unknown (no db/pg_settings.jsonl)".to_owned(),
                    );
                }
            }
            Diagnostic::TopStatements => {
                out.query = jq(
                    "pg_stat_statements",
                    "sort_by(-(.total_exec_time // .total_ms // 0))",
                );
                let Some((mut rows, bad)) = self.table("pg_stat_statements")? else {
                    out.warnings.push(absent("pg_stat_statements"));
                    return Ok(out);
                };
                note_bad(&mut out, bad);
                let total = |r: &Value| {
                    r["total_exec_time"]
                        .as_f64()
                        .or_else(|| r["total_ms"].as_f64())
                        .unwrap_or(0.0)
                };
                rows.sort_by(|a, b| total(b).total_cmp(&total(a)));
                rows.truncate(limit);
                out.rows = rows;
            }
            Diagnostic::TableBloat { table } => {
                out.query = jq(
                    "pg_stat_user_tables",
                    &match table {
                        Some(t) => format!("select(.relname == {}) ", json!(t)),
                        None => "sort_by(-.n_dead_tup)".to_owned(),
                    },
                );
                let Some((mut rows, bad)) = self.table("pg_stat_user_tables")? else {
                    out.warnings.push(absent("pg_stat_user_tables"));
                    return Ok(out);
                };
                note_bad(&mut out, bad);
                if let Some(t) = table {
                    rows.retain(|r| r["relname"].as_str() == Some(t.as_str()));
                }
                rows.sort_by_key(|r| std::cmp::Reverse(r["n_dead_tup"].as_i64().unwrap_or(0)));
                rows.truncate(limit);
                out.rows = rows;
            }
            Diagnostic::Custom { .. } => {
                return Err(ToolError::QueryRefused {
                    reason: "free-form SQL needs a live database; the bundle holds snapshots only, use a named diagnostic".to_owned(),
                });
            }
        }
        if out.rows.is_empty() && out.warnings.is_empty() {
            out.warnings.push(format!(
                "{} found nothing in the snapshots",
                diagnostic.name()
            ));
        }
        Ok(out)
    }
}

fn note_bad(out: &mut DiagnosticRows, bad: usize) {
    if bad > 0 {
        out.warnings.push(format!(
            "{bad} snapshot lines did not parse and were skipped"
        ));
    }
}
