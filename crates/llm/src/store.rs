//! `agent_executions`: one row per agent task attempt with its LLM usage and
//! cost, written when a task starts and updated when it ends; and the sums a
//! new task reads to seed the diagnosis budget.
//!
//! Functions take `&mut AsyncPgConnection` so the caller owns the transaction.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rootcause_diagnosis::db::{AgentExecutionRow, StoreError};
use rootcause_diagnosis::schema::agent_executions;
use rootcause_diagnosis::{SessionId, Usage};

/// Inserts the row, or updates every measured column of the row with the same
/// id (a task reports `running` first and its outcome later).
///
/// # Errors
/// Database errors; [`StoreError::Duplicate`] when another row already holds
/// the same `(task_id, attempt)`.
pub async fn record_execution(
    conn: &mut AsyncPgConnection,
    row: &AgentExecutionRow,
) -> Result<(), StoreError> {
    use agent_executions::dsl as a;
    diesel::insert_into(agent_executions::table)
        .values(row)
        .on_conflict(a::id)
        .do_update()
        .set((
            a::provider.eq(excluded(a::provider)),
            a::model.eq(excluded(a::model)),
            a::tokens_in.eq(excluded(a::tokens_in)),
            a::tokens_out.eq(excluded(a::tokens_out)),
            a::tokens_cached.eq(excluded(a::tokens_cached)),
            a::cost_micros.eq(excluded(a::cost_micros)),
            a::duration_ms.eq(excluded(a::duration_ms)),
            a::outcome.eq(excluded(a::outcome)),
            a::error.eq(excluded(a::error)),
            a::finished_at.eq(excluded(a::finished_at)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// What a diagnosis has spent, in total and per agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionUsage {
    /// Every attempt of every agent.
    pub total: Usage,
    /// Per agent name.
    pub per_agent: BTreeMap<String, Usage>,
}

/// Sums the usage of every execution of `session_id` (a diagnosis has tens
/// of rows, so they are summed here rather than as NUMERIC in SQL).
///
/// # Errors
/// Database errors.
pub async fn session_usage(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
) -> Result<SessionUsage, StoreError> {
    use agent_executions::dsl as a;
    let rows: Vec<AgentExecutionRow> = a::agent_executions
        .filter(a::session_id.eq(session_id.0))
        .select(AgentExecutionRow::as_select())
        .load(conn)
        .await?;
    let mut out = SessionUsage::default();
    let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
    for row in rows {
        let usage = Usage {
            input_tokens: to_u64(row.tokens_in),
            output_tokens: to_u64(row.tokens_out),
            cached_tokens: to_u64(row.tokens_cached),
            cost_micros: to_u64(row.cost_micros),
        };
        out.total.add(&usage);
        out.per_agent.entry(row.agent).or_default().add(&usage);
    }
    Ok(out)
}
