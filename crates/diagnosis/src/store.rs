//! The event store: the only code that writes a diagnosis to PostgreSQL.
//!
//! A session is a `diagnosis_sessions` row plus its append-only log in
//! `diagnosis_events`. The state is never stored as the truth: it is the fold
//! of the log ([`DiagnosisState::apply`]), cached as a snapshot on the session
//! row so recovery reads the snapshot and only the events after it.
//!
//! Every write is one transaction that
//! 1. takes the session row `FOR UPDATE` (writers of one session queue here,
//!    so seq allocation is `last_seq + 1 ..` without gaps or duplicates),
//! 2. records the causing message in `processed_messages` (a second delivery
//!    of the same message finds it there and changes nothing),
//! 3. inserts the events, the outbox rows for the messages they cause, and
//!    optionally a snapshot,
//! 4. moves `last_seq`, `status` and `updated_at`.
//!
//! The caller acknowledges its bus message only after the commit; see
//! `docs/architecture/state-and-events.md` for the guarantees this gives.
//!
//! The functions take `&mut AsyncPgConnection`, so a caller that already has
//! a transaction open gets a savepoint inside it and keeps the lock until its
//! own commit. [`EventStore`] wraps them over a pool for everyone else.
//!
//! Layout:
//! - [`append`](self::append): `create_session`, `append`, `append_with`,
//!   `append_with_cached`
//! - [`cache`](self::cache): the writer's cache of recent session states
//! - [`read`](self::read): events after a seq, current state, state at a seq,
//!   snapshots, session listing
//! - [`cursor`](self::cursor): the opaque listing cursor
//! - [`outbox`](self::outbox): the outbox and idempotency records (every
//!   statement on `outbox` and `processed_messages`)

pub mod append;
pub mod cache;
pub mod cursor;
pub mod outbox;
pub mod prune;
pub mod read;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::db::{NewOutbox, PgPool, StoreError};
use crate::event::{DiagnosisEvent, EventKind};
use crate::ids::{EventId, MessageId, SessionId, TenantId};
use crate::incident::Incident;
use crate::options::{AgentArm, DiagnosisOptions};
use crate::state::{DiagnosisState, Status};

pub use append::{AUTO_SNAPSHOT_TAIL, append, append_with, append_with_cached, create_session};
pub use cache::StateCache;
pub use cursor::{CursorError, SessionCursor};
pub use prune::{Pruned, prune};
pub use read::{
    MAX_PAGE, events_after, events_after_any_tenant, load_state, load_state_any_tenant,
    replay_state, replay_state_any_tenant, save_snapshot, session, session_any_tenant, sessions,
    state_at, state_at_any_tenant,
};

/// An event as a writer builds it: everything but the seq, which only the
/// store can assign (under the session lock).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Identity; known before the append so a later event of the same batch
    /// can name it as its parent (a tool result naming its call).
    pub id: EventId,
    /// The event that caused this one.
    pub parent_id: Option<EventId>,
    /// When it happened (the writer's clock, not the database's).
    pub occurred_at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
}

impl NewEvent {
    /// An event that happened at `occurred_at`, with a fresh id.
    #[must_use]
    pub fn at(kind: EventKind, occurred_at: DateTime<Utc>) -> Self {
        Self {
            id: EventId::new(),
            parent_id: None,
            occurred_at,
            kind,
        }
    }

    /// An event that happens now, with a fresh id.
    #[must_use]
    pub fn now(kind: EventKind) -> Self {
        Self::at(kind, Utc::now())
    }

    /// Links the event to the one that caused it.
    #[must_use]
    pub fn caused_by(mut self, parent: EventId) -> Self {
        self.parent_id = Some(parent);
        self
    }

    /// The stored event, once the store has given it a seq.
    fn into_event(self, session_id: SessionId, seq: u64) -> DiagnosisEvent {
        DiagnosisEvent {
            id: self.id,
            session_id,
            seq,
            parent_id: self.parent_id,
            occurred_at: self.occurred_at,
            kind: self.kind,
        }
    }
}

/// The bus message whose handling is being committed. Recording it in the
/// same transaction as its effects is what makes redelivery a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Causation {
    /// Who applied it (the queue name): the same message may legitimately be
    /// applied once by each of several consumers.
    pub consumer: String,
    /// The envelope id.
    pub message_id: MessageId,
}

impl Causation {
    /// The message `message_id` as consumed by `consumer`.
    pub fn new(consumer: impl Into<String>, message_id: MessageId) -> Self {
        Self {
            consumer: consumer.into(),
            message_id,
        }
    }
}

/// What a new diagnosis starts from; becomes the `created` event at seq 1.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDiagnosis {
    /// The session id (chosen by the gateway so it can answer at once).
    pub session_id: SessionId,
    /// Owner.
    pub tenant: TenantId,
    /// What to diagnose.
    pub incident: Incident,
    /// When it must conclude.
    pub deadline: DateTime<Utc>,
    /// How it runs.
    pub options: DiagnosisOptions,
    /// The arm decided for it.
    pub arm: AgentArm,
    /// When it was accepted.
    pub occurred_at: DateTime<Utc>,
}

/// A batch for [`append`]: events that need no decision from the state
/// (the store still checks each one fits it).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Events in order; the store numbers them.
    pub events: Vec<NewEvent>,
    /// Messages these events cause, published by the outbox relay after commit.
    pub outbox: Vec<NewOutbox>,
}

impl Batch {
    /// A batch of events with no outbox rows and no status change.
    #[must_use]
    pub fn of(events: Vec<NewEvent>) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }
}

/// What a decision made under the lock in [`append_with`] wants written.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Events in order; each is checked by applying it to the state.
    pub events: Vec<NewEvent>,
    /// Messages these events cause.
    pub outbox: Vec<NewOutbox>,
    /// Save the resulting state as the snapshot (at workflow node completion).
    pub snapshot: bool,
}

/// The result of a write that carries a message id.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum AppendOutcome<T> {
    /// The write committed.
    Appended(T),
    /// The message was applied before: nothing was written. Ack it.
    Duplicate,
}

impl<T> AppendOutcome<T> {
    /// Whether the message had already been applied.
    #[must_use]
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate)
    }

    /// The committed value, or `None` for a duplicate.
    pub fn appended(self) -> Option<T> {
        match self {
            Self::Appended(v) => Some(v),
            Self::Duplicate => None,
        }
    }
}

/// What [`append_with`] and [`create_session`] committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The stored events, with their seq.
    pub events: Vec<DiagnosisEvent>,
    /// The state after them (the fold the store checked them against).
    pub state: DiagnosisState,
    /// Whether a snapshot of `state` was written in the same transaction.
    pub snapshotted: bool,
}

/// A session as listings show it (no state, no events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Identity.
    pub session_id: SessionId,
    /// Owner.
    pub tenant: TenantId,
    /// Lifecycle, as of the last append.
    pub status: Status,
    /// Incident title.
    pub title: String,
    /// Seq of the last event.
    pub last_seq: u64,
    /// Seq the snapshot reflects (0: none).
    pub snapshot_seq: u64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last append.
    pub updated_at: DateTime<Utc>,
}

impl SessionSummary {
    /// The cursor that continues a listing after this session.
    #[must_use]
    pub fn cursor(&self) -> SessionCursor {
        SessionCursor {
            created_at: self.created_at,
            session_id: self.session_id,
        }
    }
}

/// A page of events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// Events in seq order.
    pub events: Vec<DiagnosisEvent>,
    /// Whether events after the last one exist (ask again after its seq).
    pub has_more: bool,
}

/// What to list in [`sessions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this tenant's sessions (always required: listings never cross tenants).
    pub tenant: TenantId,
    /// Only sessions in this status.
    pub status: Option<Status>,
    /// Continue after this session (from the previous page's `next`).
    pub after: Option<SessionCursor>,
    /// Page size, 1..=[`MAX_PAGE`].
    pub limit: u32,
}

/// A page of sessions, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPage {
    /// Sessions, newest first.
    pub sessions: Vec<SessionSummary>,
    /// Cursor for the next page; `None` on the last page.
    pub next: Option<SessionCursor>,
}

/// How many session states an [`EventStore`] keeps for its writes by
/// default: enough for the sessions one orchestrator replica drives at once.
pub const DEFAULT_STATE_CACHE: usize = 256;

/// The store over a connection pool, for callers that do not hold a
/// transaction of their own. Each method takes one connection for one
/// transaction (or one read) and returns it. Clones share the pool and the
/// state cache.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    cache: Arc<StateCache>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("pool", &self.pool.status())
            .field("cached_states", &self.cache.len())
            .finish()
    }
}

impl EventStore {
    /// Wraps a pool, with a state cache of [`DEFAULT_STATE_CACHE`] sessions.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self::with_state_cache(pool, DEFAULT_STATE_CACHE)
    }

    /// Wraps a pool, keeping up to `capacity` session states for
    /// [`EventStore::append_with`] (0: always load from the database).
    #[must_use]
    pub fn with_state_cache(pool: PgPool, capacity: usize) -> Self {
        Self {
            pool,
            cache: Arc::new(StateCache::new(capacity)),
        }
    }

    /// The pool, for callers that compose their own transaction with the
    /// free functions of this module.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn conn(
        &self,
    ) -> Result<
        diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>,
        StoreError,
    > {
        Ok(self.pool.get().await?)
    }

    /// See [`create_session`].
    ///
    /// # Errors
    /// As [`create_session`], plus [`StoreError::Pool`].
    pub async fn create_session(
        &self,
        new: NewDiagnosis,
        causation: Option<&Causation>,
        outbox: Vec<NewOutbox>,
    ) -> Result<AppendOutcome<Committed>, StoreError> {
        let outcome = create_session(&mut *self.conn().await?, new, causation, outbox).await?;
        if let AppendOutcome::Appended(c) = &outcome {
            self.cache.put(c.state.clone());
        }
        Ok(outcome)
    }

    /// See [`append`]; starts from this store's cached state of the session
    /// when it has one.
    ///
    /// # Errors
    /// As [`append`], plus [`StoreError::Pool`].
    pub async fn append(
        &self,
        session_id: SessionId,
        causation: Option<&Causation>,
        batch: Batch,
    ) -> Result<AppendOutcome<Vec<DiagnosisEvent>>, StoreError> {
        let mut conn = self.conn().await?;
        append::append_cached(&mut conn, Some(&self.cache), session_id, causation, batch).await
    }

    /// See [`append_with`]; starts from this store's cached state of the
    /// session when it has one ([`append_with_cached`]).
    ///
    /// # Errors
    /// As [`append_with`], plus [`StoreError::Pool`].
    pub async fn append_with<F, E>(
        &self,
        session_id: SessionId,
        causation: Option<&Causation>,
        decide: F,
    ) -> Result<AppendOutcome<Committed>, E>
    where
        F: FnOnce(&DiagnosisState) -> Result<Decision, E> + Send,
        E: From<StoreError> + Send,
    {
        let mut conn = self.conn().await?;
        append_with_cached(&mut conn, &self.cache, session_id, causation, decide).await
    }

    /// See [`events_after`].
    ///
    /// # Errors
    /// As [`events_after`], plus [`StoreError::Pool`].
    pub async fn events_after(
        &self,
        session_id: SessionId,
        tenant: &TenantId,
        after: u64,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        events_after(&mut *self.conn().await?, session_id, tenant, after, limit).await
    }

    /// See [`events_after_any_tenant`] (operators only).
    ///
    /// # Errors
    /// As [`events_after`], plus [`StoreError::Pool`].
    pub async fn events_after_any_tenant(
        &self,
        session_id: SessionId,
        after: u64,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        events_after_any_tenant(&mut *self.conn().await?, session_id, after, limit).await
    }

    /// See [`save_snapshot`].
    ///
    /// # Errors
    /// As [`save_snapshot`], plus [`StoreError::Pool`].
    pub async fn save_snapshot(&self, state: &DiagnosisState) -> Result<bool, StoreError> {
        save_snapshot(&mut *self.conn().await?, state).await
    }

    /// See [`load_state`].
    ///
    /// # Errors
    /// As [`load_state`], plus [`StoreError::Pool`].
    pub async fn load_state(
        &self,
        session_id: SessionId,
        tenant: &TenantId,
    ) -> Result<DiagnosisState, StoreError> {
        load_state(&mut *self.conn().await?, session_id, tenant).await
    }

    /// See [`load_state_any_tenant`] (the orchestrator's recovery, operators).
    ///
    /// # Errors
    /// As [`load_state`], plus [`StoreError::Pool`].
    pub async fn load_state_any_tenant(
        &self,
        session_id: SessionId,
    ) -> Result<DiagnosisState, StoreError> {
        load_state_any_tenant(&mut *self.conn().await?, session_id).await
    }

    /// See [`replay_state`].
    ///
    /// # Errors
    /// As [`replay_state`], plus [`StoreError::Pool`].
    pub async fn replay_state(
        &self,
        session_id: SessionId,
        tenant: &TenantId,
    ) -> Result<DiagnosisState, StoreError> {
        replay_state(&mut *self.conn().await?, session_id, tenant).await
    }

    /// See [`replay_state_any_tenant`] (operators only).
    ///
    /// # Errors
    /// As [`replay_state`], plus [`StoreError::Pool`].
    pub async fn replay_state_any_tenant(
        &self,
        session_id: SessionId,
    ) -> Result<DiagnosisState, StoreError> {
        replay_state_any_tenant(&mut *self.conn().await?, session_id).await
    }

    /// See [`state_at`].
    ///
    /// # Errors
    /// As [`state_at`], plus [`StoreError::Pool`].
    pub async fn state_at(
        &self,
        session_id: SessionId,
        tenant: &TenantId,
        seq: u64,
    ) -> Result<DiagnosisState, StoreError> {
        state_at(&mut *self.conn().await?, session_id, tenant, seq).await
    }

    /// See [`state_at_any_tenant`] (operators only).
    ///
    /// # Errors
    /// As [`state_at`], plus [`StoreError::Pool`].
    pub async fn state_at_any_tenant(
        &self,
        session_id: SessionId,
        seq: u64,
    ) -> Result<DiagnosisState, StoreError> {
        state_at_any_tenant(&mut *self.conn().await?, session_id, seq).await
    }

    /// See [`session`].
    ///
    /// # Errors
    /// As [`session`], plus [`StoreError::Pool`].
    pub async fn session(
        &self,
        session_id: SessionId,
        tenant: &TenantId,
    ) -> Result<SessionSummary, StoreError> {
        session(&mut *self.conn().await?, session_id, tenant).await
    }

    /// See [`session_any_tenant`] (operators only).
    ///
    /// # Errors
    /// As [`session`], plus [`StoreError::Pool`].
    pub async fn session_any_tenant(
        &self,
        session_id: SessionId,
    ) -> Result<SessionSummary, StoreError> {
        session_any_tenant(&mut *self.conn().await?, session_id).await
    }

    /// See [`sessions`].
    ///
    /// # Errors
    /// As [`sessions`], plus [`StoreError::Pool`].
    pub async fn sessions(&self, query: &SessionQuery) -> Result<SessionPage, StoreError> {
        sessions(&mut *self.conn().await?, query).await
    }
}

/// A seq as PostgreSQL `BIGINT`.
pub(crate) fn seq_to_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt {
        what: "event seq",
        message: format!("{seq} does not fit BIGINT"),
    })
}

/// A PostgreSQL `BIGINT` seq (never negative: the schema checks it).
pub(crate) fn seq_from_i64(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt {
        what: "session seq",
        message: format!("negative seq {seq}"),
    })
}
