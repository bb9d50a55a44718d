//! Writes: create a session, append events.
//!
//! Each function runs in `conn.transaction(..)`: its own transaction, or a
//! savepoint when the caller already opened one (the lock is then held until
//! the caller commits).

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncPgConnection, RunQueryDsl, TransactionManager,
};
use tracing::instrument;

use super::cache::StateCache;
use super::read::{HEAD, Head, fold_tail, snapshot};
use super::{
    AppendOutcome, Batch, Causation, Committed, Decision, NewDiagnosis, NewEvent, seq_from_i64,
    seq_to_i64,
};
use crate::db::{NewOutbox, NewSession, StoreError, insert_events};
use crate::error::ApplyError;
use crate::event::{DiagnosisEvent, EventKind};
use crate::ids::SessionId;
use crate::schema::diagnosis_sessions;
use crate::state::{DiagnosisState, Status};

/// [`append_with`] saves a snapshot by itself once this many events follow
/// the last one, so loading a session never replays more than about this
/// many events even when no workflow node asks for a snapshot.
pub const AUTO_SNAPSHOT_TAIL: u64 = 1_000;

/// Rows per `INSERT`: 7 bind parameters each stays far below PostgreSQL's
/// 65,535 limit while keeping round trips few.
const INSERT_CHUNK: usize = 1_000;

/// Creates a session: its row and the `created` event at seq 1, the outbox
/// rows for what starting it causes, and the causing message, in one
/// transaction.
///
/// # Errors
/// [`StoreError::Duplicate`] (constraint `diagnosis_sessions_pkey`) when the
/// session id exists and no `causation` marks this as a redelivery; database
/// errors otherwise.
#[instrument(skip_all, fields(session_id = %new.session_id))]
pub async fn create_session(
    conn: &mut AsyncPgConnection,
    new: NewDiagnosis,
    causation: Option<&Causation>,
    outbox_rows: Vec<NewOutbox>,
) -> Result<AppendOutcome<Committed>, StoreError> {
    let session_id = new.session_id;
    let event = NewEvent::at(
        EventKind::Created {
            tenant: new.tenant.clone(),
            incident: new.incident.clone(),
            deadline: new.deadline,
            options: new.options.clone(),
            arm: new.arm,
        },
        new.occurred_at,
    )
    .into_event(session_id, 1);
    let state = DiagnosisState::genesis(&event)?;
    conn.transaction(async |conn| {
        if let Some(c) = causation
            && !record_message(conn, c, session_id).await?
        {
            return Ok(AppendOutcome::Duplicate);
        }
        diesel::insert_into(diagnosis_sessions::table)
            .values(NewSession {
                session_id: session_id.0,
                tenant: new.tenant.as_str(),
                status: state.status.as_str(),
                title: new.incident.title(),
            })
            .execute(conn)
            .await?;
        insert_events(conn, std::slice::from_ref(&event)).await?;
        diesel::update(diagnosis_sessions::table.find(session_id.0))
            .set(diagnosis_sessions::last_seq.eq(1_i64))
            .execute(conn)
            .await?;
        insert_outbox(conn, &outbox_rows).await?;
        Ok(AppendOutcome::Appended(Committed {
            events: vec![event],
            state,
            snapshotted: false,
        }))
    })
    .await
}

/// Appends events whose content does not depend on a decision made from
/// the state (progress, tool calls and results of a task already
/// dispatched, bulk imports).
///
/// Under the session lock it loads the state (from `cache` or the snapshot,
/// then the events after it), applies each event, and refuses the whole
/// batch with [`StoreError::Apply`] when one does not fit: an event that
/// does not fold is never stored, so it can never break a later
/// `load_state`. Then it numbers the events `last_seq + 1 ..`, inserts them
/// with `batch.outbox`, sets the status from the folded state, and records
/// `causation`.
///
/// # Errors
/// [`StoreError::SessionNotFound`]; [`StoreError::Apply`] for an event that
/// does not fit the state (a `created` event never does: only
/// [`create_session`] writes one); database errors.
pub async fn append(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    causation: Option<&Causation>,
    batch: Batch,
) -> Result<AppendOutcome<Vec<DiagnosisEvent>>, StoreError> {
    append_cached(conn, None, session_id, causation, batch).await
}

/// [`append`], starting from `cache` when it holds the session's state.
pub(crate) async fn append_cached(
    conn: &mut AsyncPgConnection,
    cache: Option<&StateCache>,
    session_id: SessionId,
    causation: Option<&Causation>,
    batch: Batch,
) -> Result<AppendOutcome<Vec<DiagnosisEvent>>, StoreError> {
    if batch
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Created { .. }))
    {
        return Err(ApplyError::AlreadyCreated { session_id }.into());
    }
    let Batch { events, outbox } = batch;
    let outcome = decide_and_append(conn, cache, session_id, causation, move |_| {
        Ok::<_, StoreError>(Decision {
            events,
            outbox,
            snapshot: false,
        })
    })
    .await?;
    Ok(match outcome {
        AppendOutcome::Appended(committed) => AppendOutcome::Appended(committed.events),
        AppendOutcome::Duplicate => AppendOutcome::Duplicate,
    })
}

/// Load the state, decide, append: all under the session lock, so the
/// decision is made on the state as it is, and no other writer can slip an
/// event between the decision and its commit.
///
/// Inside one transaction: lock the row; if `causation` was applied before,
/// return [`AppendOutcome::Duplicate`] without calling `decide`; load the
/// state (snapshot + events after it); call `decide`; apply each decided
/// event to the state (an event that does not fit aborts everything with
/// [`StoreError::Apply`]); insert the events and outbox rows; set the status
/// from the folded state; save a snapshot when the decision asks for one or
/// the tail reaches [`AUTO_SNAPSHOT_TAIL`].
///
/// `decide` must be a pure function of the state: it may run again on a
/// retry of the whole message.
///
/// # Errors
/// `decide`'s own error (nothing is written); [`StoreError::SessionNotFound`];
/// [`StoreError::Apply`]; [`StoreError::Corrupt`] for a snapshot or event
/// that no longer parses; database errors.
pub async fn append_with<F, E>(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    causation: Option<&Causation>,
    decide: F,
) -> Result<AppendOutcome<Committed>, E>
where
    F: FnOnce(&DiagnosisState) -> Result<Decision, E> + Send,
    E: From<StoreError> + Send,
{
    decide_and_append(conn, None, session_id, causation, decide).await
}

/// [`append_with`], starting from the state `cache` holds for the session
/// (when it is not newer than the row) instead of the snapshot, and leaving
/// the new state there once the transaction has committed. Inside a caller's
/// transaction the cache is read but not filled, because that transaction
/// may still roll back.
///
/// # Errors
/// As [`append_with`].
pub async fn append_with_cached<F, E>(
    conn: &mut AsyncPgConnection,
    cache: &StateCache,
    session_id: SessionId,
    causation: Option<&Causation>,
    decide: F,
) -> Result<AppendOutcome<Committed>, E>
where
    F: FnOnce(&DiagnosisState) -> Result<Decision, E> + Send,
    E: From<StoreError> + Send,
{
    decide_and_append(conn, Some(cache), session_id, causation, decide).await
}

#[instrument(skip_all, fields(session_id = %session_id))]
async fn decide_and_append<F, E>(
    conn: &mut AsyncPgConnection,
    cache: Option<&StateCache>,
    session_id: SessionId,
    causation: Option<&Causation>,
    decide: F,
) -> Result<AppendOutcome<Committed>, E>
where
    F: FnOnce(&DiagnosisState) -> Result<Decision, E> + Send,
    E: From<StoreError> + Send,
{
    // Only a transaction of our own really commits when it returns Ok.
    let outermost = matches!(
        <AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::transaction_manager_status_mut(conn)
            .transaction_depth(),
        Ok(None)
    );
    let result = conn
        .transaction::<_, TxError<E>, _>(async |conn| {
            let head = lock_session(conn, session_id).await?;
            if let Some(c) = causation
                && !record_message(conn, c, session_id).await?
            {
                return Ok(AppendOutcome::Duplicate);
            }
            let last_seq = seq_from_i64(head.last_seq)?;
            // A cached state is a committed prefix of the log; anything
            // newer than the row cannot be, and is dropped.
            let start = match cache
                .and_then(|c| c.take(session_id))
                .filter(|s| s.seq <= last_seq)
            {
                Some(state) => Some(state),
                None => snapshot(conn, &head).await?,
            };
            // Under the lock `last_seq` is final: fold exactly up to it.
            let mut state = fold_tail(conn, start, session_id, Some(last_seq))
                .await?
                .ok_or(StoreError::SessionNotFound { session_id })?;
            let decision = decide(&state).map_err(TxError::Caller)?;
            let events = number(session_id, &head, decision.events)?;
            for e in &events {
                state.apply(e).map_err(StoreError::from)?;
            }
            write(conn, &head, &events, &decision.outbox, Some(state.status)).await?;
            let snapshot_seq = seq_from_i64(head.snapshot_seq)?;
            let wanted = (decision.snapshot && state.seq > snapshot_seq)
                || state.seq.saturating_sub(snapshot_seq) >= AUTO_SNAPSHOT_TAIL;
            let snapshotted = wanted && super::read::save_snapshot(conn, &state).await?;
            Ok(AppendOutcome::Appended(Committed {
                events,
                state,
                snapshotted,
            }))
        })
        .await;
    match result {
        Ok(outcome) => {
            if let (Some(cache), true, AppendOutcome::Appended(c)) = (cache, outermost, &outcome) {
                cache.put(c.state.clone());
            }
            Ok(outcome)
        }
        Err(TxError::Store(e)) => Err(E::from(e)),
        Err(TxError::Caller(e)) => Err(e),
    }
}

/// An error inside [`append_with`]'s transaction: the store's or the
/// decision's. Either rolls the transaction back.
enum TxError<E> {
    Store(StoreError),
    Caller(E),
}

impl<E> From<DieselError> for TxError<E> {
    fn from(e: DieselError) -> Self {
        Self::Store(e.into())
    }
}

impl<E> From<StoreError> for TxError<E> {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Takes the session row `FOR UPDATE`: writers of one session wait here for
/// each other, which is what makes `last_seq + 1` safe to use.
async fn lock_session(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
) -> Result<Head, StoreError> {
    diagnosis_sessions::table
        .find(session_id.0)
        .for_update()
        .select(HEAD)
        .first(conn)
        .await
        .optional()?
        .ok_or(StoreError::SessionNotFound { session_id })
}

/// Records that `causation` is being applied; `false` when it already was
/// (the row exists, committed by an earlier delivery, or by a concurrent one
/// this insert waited for).
async fn record_message(
    conn: &mut AsyncPgConnection,
    causation: &Causation,
    session_id: SessionId,
) -> Result<bool, StoreError> {
    super::outbox::record_processed(
        conn,
        &causation.consumer,
        causation.message_id,
        Some(session_id),
    )
    .await
}

/// Numbers a batch after the locked row's `last_seq`.
fn number(
    session_id: SessionId,
    row: &Head,
    events: Vec<NewEvent>,
) -> Result<Vec<DiagnosisEvent>, StoreError> {
    let last = seq_from_i64(row.last_seq)?;
    Ok(events
        .into_iter()
        .zip(last + 1..)
        .map(|(e, seq)| e.into_event(session_id, seq))
        .collect())
}

/// Inserts numbered events and outbox rows and moves the session row.
async fn write(
    conn: &mut AsyncPgConnection,
    row: &Head,
    events: &[DiagnosisEvent],
    outbox_rows: &[NewOutbox],
    status: Option<Status>,
) -> Result<(), StoreError> {
    for chunk in events.chunks(INSERT_CHUNK) {
        insert_events(conn, chunk).await?;
    }
    if let Some(last) = events.last() {
        let status: &str = match status {
            Some(s) => s.as_str(),
            None => &row.status,
        };
        diesel::update(diagnosis_sessions::table.find(row.session_id))
            .set((
                diagnosis_sessions::last_seq.eq(seq_to_i64(last.seq)?),
                diagnosis_sessions::status.eq(status),
                diagnosis_sessions::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    } else if let Some(status) = status.filter(|s| s.as_str() != row.status) {
        diesel::update(diagnosis_sessions::table.find(row.session_id))
            .set((
                diagnosis_sessions::status.eq(status.as_str()),
                diagnosis_sessions::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    insert_outbox(conn, outbox_rows).await
}

/// Inserts outbox rows in the caller's order (the relay publishes in `id` order).
async fn insert_outbox(
    conn: &mut AsyncPgConnection,
    outbox_rows: &[NewOutbox],
) -> Result<(), StoreError> {
    super::outbox::insert(conn, outbox_rows).await.map(drop)
}
