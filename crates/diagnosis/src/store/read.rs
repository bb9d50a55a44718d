//! Reads: events after a seq, current state, state at a seq, listings; and
//! the snapshot write they depend on.
//!
//! Reads take no lock. They are still consistent: an append commits its
//! whole batch at once, and appends to one session commit in seq order (they
//! hold the row lock until commit), so every read sees a contiguous prefix
//! of the log.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tracing::instrument;
use uuid::Uuid;

use super::{
    EventPage, SessionCursor, SessionPage, SessionQuery, SessionSummary, seq_from_i64, seq_to_i64,
};
use crate::db::{EventRow, StoreError};
use crate::event::DiagnosisEvent;
use crate::ids::{SessionId, TenantId};
use crate::schema::{diagnosis_events, diagnosis_sessions};
use crate::state::DiagnosisState;

/// The largest page [`events_after`] and [`sessions`] return; larger
/// requests are cut to it so one call cannot load an unbounded result.
pub const MAX_PAGE: u32 = 1_000;

/// Events per query while folding: bounds memory on long sessions.
const REPLAY_PAGE: i64 = 5_000;

/// A session's summary; `tenant` must own it.
///
/// # Errors
/// [`StoreError::InvalidTenant`]; [`StoreError::SessionNotFound`] for an
/// unknown session or another tenant's; [`StoreError::Corrupt`] for an
/// unknown stored status.
#[instrument(skip_all, fields(session_id = %session_id))]
pub async fn session(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: &TenantId,
) -> Result<SessionSummary, StoreError> {
    tenant.validate()?;
    summary(session_row(conn, session_id, Some(tenant)).await?)
}

/// [`session`] whatever tenant owns it: for operators, never on behalf of
/// a tenant.
///
/// # Errors
/// As [`session`].
pub async fn session_any_tenant(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
) -> Result<SessionSummary, StoreError> {
    summary(session_row(conn, session_id, None).await?)
}

/// Up to `limit` events with seq greater than `after`, in seq order: what a
/// client that last saw `after` missed. `limit` is cut to 1..=[`MAX_PAGE`].
///
/// # Errors
/// [`StoreError::SessionNotFound`] for an unknown session or another
/// tenant's; [`StoreError::Corrupt`] for an event that does not parse.
#[instrument(skip_all, fields(session_id = %session_id, after))]
pub async fn events_after(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: &TenantId,
    after: u64,
    limit: u32,
) -> Result<EventPage, StoreError> {
    tenant.validate()?;
    events_page(conn, session_id, Some(tenant), after, limit).await
}

/// [`events_after`] whatever tenant owns the session: for operators, never
/// on behalf of a tenant.
///
/// # Errors
/// As [`events_after`].
pub async fn events_after_any_tenant(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    after: u64,
    limit: u32,
) -> Result<EventPage, StoreError> {
    events_page(conn, session_id, None, after, limit).await
}

async fn events_page(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: Option<&TenantId>,
    after: u64,
    limit: u32,
) -> Result<EventPage, StoreError> {
    session_row(conn, session_id, tenant).await?;
    let limit = limit.clamp(1, MAX_PAGE) as usize;
    let after = seq_to_i64(after).unwrap_or(i64::MAX);
    // One more than asked tells whether another page exists.
    let rows = events_between(conn, session_id, after, None, limit as i64 + 1).await?;
    let has_more = rows.len() > limit;
    let events = rows
        .into_iter()
        .take(limit)
        .map(DiagnosisEvent::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventPage { events, has_more })
}

/// The current state: the latest snapshot plus the events after it.
///
/// # Errors
/// [`StoreError::SessionNotFound`]; [`StoreError::Corrupt`] for a snapshot or
/// event that does not parse; [`StoreError::Apply`] when the log does not
/// fold (a bug: every event was checked or vouched for when appended).
#[instrument(skip_all, fields(session_id = %session_id))]
pub async fn load_state(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: &TenantId,
) -> Result<DiagnosisState, StoreError> {
    tenant.validate()?;
    current_state(conn, session_id, Some(tenant)).await
}

/// [`load_state`] whatever tenant owns the session: for the orchestrator's
/// own recovery and operators, never on behalf of a tenant.
///
/// # Errors
/// As [`load_state`].
pub async fn load_state_any_tenant(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
) -> Result<DiagnosisState, StoreError> {
    current_state(conn, session_id, None).await
}

async fn current_state(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: Option<&TenantId>,
) -> Result<DiagnosisState, StoreError> {
    let (head, text) = session_row_with_snapshot(conn, session_id, tenant).await?;
    let start = parse_snapshot(&head, text)?;
    fold_tail(conn, start, session_id, None)
        .await?
        .ok_or(StoreError::SessionNotFound { session_id })
}

/// The current state by replaying every event from seq 1, ignoring the
/// snapshot: the reference [`load_state`] must agree with, and the way to
/// rebuild after a change to the fold makes old snapshots wrong.
///
/// # Errors
/// As [`load_state`].
#[instrument(skip_all, fields(session_id = %session_id))]
pub async fn replay_state(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: &TenantId,
) -> Result<DiagnosisState, StoreError> {
    tenant.validate()?;
    replayed(conn, session_id, Some(tenant)).await
}

/// [`replay_state`] whatever tenant owns the session: for operators
/// rebuilding snapshots, never on behalf of a tenant.
///
/// # Errors
/// As [`load_state`].
pub async fn replay_state_any_tenant(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
) -> Result<DiagnosisState, StoreError> {
    replayed(conn, session_id, None).await
}

async fn replayed(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: Option<&TenantId>,
) -> Result<DiagnosisState, StoreError> {
    session_row(conn, session_id, tenant).await?;
    fold_tail(conn, None, session_id, None)
        .await?
        .ok_or(StoreError::SessionNotFound { session_id })
}

/// The state as it was right after event `seq` (time travel). Starts from
/// the snapshot when it is not later than `seq`, else replays from seq 1.
///
/// # Errors
/// [`StoreError::NotFound`] when `seq` is 0 or past the last event;
/// otherwise as [`load_state`].
#[instrument(skip_all, fields(session_id = %session_id, seq))]
pub async fn state_at(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: &TenantId,
    seq: u64,
) -> Result<DiagnosisState, StoreError> {
    tenant.validate()?;
    state_at_seq(conn, session_id, Some(tenant), seq).await
}

/// [`state_at`] whatever tenant owns the session: for operators, never on
/// behalf of a tenant.
///
/// # Errors
/// As [`state_at`].
pub async fn state_at_any_tenant(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    seq: u64,
) -> Result<DiagnosisState, StoreError> {
    state_at_seq(conn, session_id, None, seq).await
}

async fn state_at_seq(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: Option<&TenantId>,
    seq: u64,
) -> Result<DiagnosisState, StoreError> {
    let (head, text) = session_row_with_snapshot(conn, session_id, tenant).await?;
    if seq == 0 || seq > seq_from_i64(head.last_seq)? {
        return Err(StoreError::NotFound {
            what: "event at that seq (ask for 1..=last_seq)",
        });
    }
    let start = if seq_from_i64(head.snapshot_seq)? <= seq {
        parse_snapshot(&head, text)?
    } else {
        None
    };
    fold_tail(conn, start, session_id, Some(seq))
        .await?
        .ok_or(StoreError::SessionNotFound { session_id })
}

/// Saves `state` as its session's snapshot, only if it is newer than the
/// stored one and not past the last event: a slow writer can never move the
/// snapshot backwards. Returns whether it was saved.
///
/// The caller vouches that `state` is the fold of the stored events up to
/// `state.seq` (it came from [`load_state`], [`super::append_with`] or
/// applying appended events).
///
/// # Errors
/// [`StoreError::SessionNotFound`] when the session does not exist for
/// `state.tenant`; database errors.
#[instrument(skip_all, fields(session_id = %state.session_id, seq = state.seq))]
pub async fn save_snapshot(
    conn: &mut AsyncPgConnection,
    state: &DiagnosisState,
) -> Result<bool, StoreError> {
    let seq = seq_to_i64(state.seq)?;
    let json = serde_json::to_value(state).map_err(|e| StoreError::Corrupt {
        what: "state snapshot",
        message: e.to_string(),
    })?;
    let saved = diesel::update(
        diagnosis_sessions::table
            .filter(diagnosis_sessions::session_id.eq(state.session_id.0))
            .filter(diagnosis_sessions::tenant.eq(state.tenant.as_str()))
            .filter(diagnosis_sessions::snapshot_seq.lt(seq))
            .filter(diagnosis_sessions::last_seq.ge(seq)),
    )
    .set((
        diagnosis_sessions::snapshot.eq(Some(json)),
        diagnosis_sessions::snapshot_seq.eq(seq),
    ))
    .execute(conn)
    .await?;
    if saved == 0 {
        // Distinguish "older than the stored one" from "no such session".
        session_row(conn, state.session_id, Some(&state.tenant)).await?;
    }
    Ok(saved == 1)
}

/// A page of a tenant's sessions, newest first (`created_at`, then id, both
/// descending), optionally of one status, continuing after `query.after`.
///
/// # Errors
/// [`StoreError::InvalidTenant`]; [`StoreError::Corrupt`] for an unknown
/// stored status; database errors.
#[instrument(skip_all, fields(tenant = %query.tenant))]
pub async fn sessions(
    conn: &mut AsyncPgConnection,
    query: &SessionQuery,
) -> Result<SessionPage, StoreError> {
    query.tenant.validate()?;
    use diagnosis_sessions::dsl as s;
    let limit = query.limit.clamp(1, MAX_PAGE) as usize;
    let mut q = s::diagnosis_sessions
        .filter(s::tenant.eq(query.tenant.as_str()))
        .into_boxed();
    if let Some(status) = query.status {
        q = q.filter(s::status.eq(status.as_str()));
    }
    if let Some(SessionCursor {
        created_at,
        session_id,
    }) = query.after
    {
        // Row comparison (created_at, session_id) < cursor, spelled out.
        q = q.filter(
            s::created_at.lt(created_at).or(s::created_at
                .eq(created_at)
                .and(s::session_id.lt(session_id.0))),
        );
    }
    let rows: Vec<Head> = q
        .order((s::created_at.desc(), s::session_id.desc()))
        .limit(limit as i64 + 1)
        .select(HEAD)
        .load(conn)
        .await?;
    let more = rows.len() > limit;
    let sessions = rows
        .into_iter()
        .take(limit)
        .map(summary)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        sessions.last().map(SessionSummary::cursor)
    } else {
        None
    };
    Ok(SessionPage { sessions, next })
}

/// A session row without its snapshot: listings and checks never pay for
/// reading a state they do not use.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct Head {
    pub(crate) session_id: Uuid,
    pub(crate) tenant: String,
    pub(crate) status: String,
    pub(crate) title: String,
    pub(crate) last_seq: i64,
    pub(crate) snapshot_seq: i64,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

/// The columns of [`Head`], in its field order.
pub(crate) const HEAD: (
    diagnosis_sessions::session_id,
    diagnosis_sessions::tenant,
    diagnosis_sessions::status,
    diagnosis_sessions::title,
    diagnosis_sessions::last_seq,
    diagnosis_sessions::snapshot_seq,
    diagnosis_sessions::created_at,
    diagnosis_sessions::updated_at,
) = (
    diagnosis_sessions::session_id,
    diagnosis_sessions::tenant,
    diagnosis_sessions::status,
    diagnosis_sessions::title,
    diagnosis_sessions::last_seq,
    diagnosis_sessions::snapshot_seq,
    diagnosis_sessions::created_at,
    diagnosis_sessions::updated_at,
);

/// The session row, scoped to `tenant` when given.
async fn session_row(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: Option<&TenantId>,
) -> Result<Head, StoreError> {
    let mut q = diagnosis_sessions::table
        .filter(diagnosis_sessions::session_id.eq(session_id.0))
        .into_boxed();
    if let Some(t) = tenant {
        q = q.filter(diagnosis_sessions::tenant.eq(t.as_str()));
    }
    q.select(HEAD)
        .first(conn)
        .await
        .optional()?
        .ok_or(StoreError::SessionNotFound { session_id })
}

/// The session row and its snapshot (as text) in one statement, scoped to
/// `tenant` when given. Reading them in two statements let a snapshot saved
/// in between pair a new snapshot with an old `snapshot_seq`, which the
/// consistency check then reported as corrupt.
async fn session_row_with_snapshot(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    tenant: Option<&TenantId>,
) -> Result<(Head, Option<String>), StoreError> {
    let mut q = diagnosis_sessions::table
        .filter(diagnosis_sessions::session_id.eq(session_id.0))
        .into_boxed();
    if let Some(t) = tenant {
        q = q.filter(diagnosis_sessions::tenant.eq(t.as_str()));
    }
    q.select((HEAD, sql::<Nullable<Text>>("snapshot::text")))
        .first(conn)
        .await
        .optional()?
        .ok_or(StoreError::SessionNotFound { session_id })
}

/// The stored snapshot of a session whose row is `head`, checked against
/// it. Call it only where the row cannot change between the two reads (the
/// writer holds the row lock); readers use [`session_row_with_snapshot`].
///
/// Read as text and parsed straight into the state: going through
/// `serde_json::Value` (diesel's JSONB type) would parse it twice.
pub(crate) async fn snapshot(
    conn: &mut AsyncPgConnection,
    head: &Head,
) -> Result<Option<DiagnosisState>, StoreError> {
    if head.snapshot_seq == 0 {
        return Ok(None);
    }
    let text: Option<String> = diagnosis_sessions::table
        .find(head.session_id)
        .select(sql::<Nullable<Text>>("snapshot::text"))
        .first(conn)
        .await?;
    parse_snapshot(head, text)
}

/// Parses a snapshot read together with `head` and checks it belongs to it.
fn parse_snapshot(head: &Head, text: Option<String>) -> Result<Option<DiagnosisState>, StoreError> {
    if head.snapshot_seq == 0 {
        return Ok(None);
    }
    let Some(text) = text else {
        return Ok(None);
    };
    let state: DiagnosisState = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what: "state snapshot",
        message: format!(
            "session {} at seq {}: {e}; rebuild it with replay_state and save_snapshot",
            head.session_id, head.snapshot_seq
        ),
    })?;
    if state.session_id.0 != head.session_id || seq_to_i64(state.seq)? != head.snapshot_seq {
        return Err(StoreError::Corrupt {
            what: "state snapshot",
            message: format!(
                "row of session {} (snapshot_seq {}) holds the state of session {} at seq {}",
                head.session_id, head.snapshot_seq, state.session_id, state.seq
            ),
        });
    }
    Ok(Some(state))
}

/// Applies the events after `start` (after seq 0 when `None`) up to `upto`
/// (the end when `None`) in pages. `None` only when there was no start and
/// no event. A start already at `upto` costs no query.
pub(crate) async fn fold_tail(
    conn: &mut AsyncPgConnection,
    start: Option<DiagnosisState>,
    session_id: SessionId,
    upto: Option<u64>,
) -> Result<Option<DiagnosisState>, StoreError> {
    let mut state = start;
    let mut after = seq_to_i64(state.as_ref().map_or(0, |s| s.seq))?;
    let upto = upto.map(seq_to_i64).transpose()?;
    loop {
        if upto.is_some_and(|u| after >= u) {
            // Already there: skip the round trip.
            return Ok(state);
        }
        let rows = events_between(conn, session_id, after, upto, REPLAY_PAGE).await?;
        let n = rows.len();
        for row in rows {
            after = row.seq;
            let event = DiagnosisEvent::try_from(row)?;
            match &mut state {
                None => state = Some(DiagnosisState::genesis(&event)?),
                Some(s) => s.apply(&event)?,
            }
        }
        if n < REPLAY_PAGE as usize {
            return Ok(state);
        }
    }
}

/// Event rows with `after < seq <= upto`, in seq order (the unique
/// `(session_id, seq)` index serves this).
async fn events_between(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    after: i64,
    upto: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let mut q = diagnosis_events::table
        .filter(diagnosis_events::session_id.eq(session_id.0))
        .filter(diagnosis_events::seq.gt(after))
        .into_boxed();
    if let Some(upto) = upto {
        q = q.filter(diagnosis_events::seq.le(upto));
    }
    Ok(q.order(diagnosis_events::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
        .await?)
}

/// A row as a listing entry.
fn summary(row: Head) -> Result<SessionSummary, StoreError> {
    let status = row
        .status
        .parse::<crate::state::Status>()
        .map_err(|_| StoreError::Corrupt {
            what: "session status",
            message: format!("{:?} on session {}", row.status, row.session_id),
        })?;
    Ok(SessionSummary {
        session_id: SessionId(row.session_id),
        tenant: TenantId(row.tenant),
        status,
        title: row.title,
        last_seq: seq_from_i64(row.last_seq)?,
        snapshot_seq: seq_from_i64(row.snapshot_seq)?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
