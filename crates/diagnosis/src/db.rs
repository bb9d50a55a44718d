//! PostgreSQL row types and the error every store function returns.
//!
//! Domain types never derive diesel traits; rows live here and convert with
//! `From`/`TryFrom`. Functions take `&mut AsyncPgConnection` so the caller
//! owns the transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::event::{DiagnosisEvent, EventKind};
use crate::ids::{EventId, SessionId};
use crate::schema::{
    agent_executions, agent_tools, api_tokens, diagnosis_events, diagnosis_sessions,
    knowledge_documents, outbox, processed_messages,
};

/// The connection pool every service uses.
pub type PgPool = Pool<AsyncPgConnection>;

/// Builds a pool of at most `max_size` connections to `database_url`.
/// Connections are made lazily, so this never touches the network.
///
/// # Errors
/// [`StoreError::Pool`] when the pool cannot be built (an invalid size).
pub fn pool(database_url: &str, max_size: usize) -> Result<PgPool, StoreError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|e| StoreError::Pool(e.to_string()))
}

/// Why a store operation failed, classified at the boundary so callers can
/// branch with `is_not_found()` / `is_conflict()` instead of matching diesel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The session does not exist (or belongs to another tenant).
    #[error("diagnosis session {session_id} not found")]
    SessionNotFound {
        /// The session asked for.
        session_id: SessionId,
    },
    /// A row that was looked up does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up.
        what: &'static str,
    },
    /// Another writer already stored an event at this seq for this session.
    #[error("event seq {seq} of session {session_id} already exists")]
    SeqConflict {
        /// The session.
        session_id: SessionId,
        /// The seq that collided.
        seq: u64,
    },
    /// A unique constraint other than the event seq was violated.
    #[error("duplicate: {constraint}")]
    Duplicate {
        /// The constraint name.
        constraint: String,
    },
    /// A stored row could not be turned back into a domain value.
    #[error("stored {what} is corrupt: {message}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it could not be read.
        message: String,
    },
    /// Events did not fold into a state.
    #[error(transparent)]
    Apply(#[from] crate::error::ApplyError),
    /// A read was scoped by a tenant id that breaks the rule.
    #[error(transparent)]
    InvalidTenant(#[from] crate::ids::InvalidTenant),
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connection(String),
    /// No connection could be taken from the pool.
    #[error("connection pool: {0}")]
    Pool(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Anything else the database said.
    #[error(transparent)]
    Database(DieselError),
}

impl StoreError {
    /// Whether the error means "no such thing".
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::SessionNotFound { .. } | Self::NotFound { .. })
    }

    /// Whether the error means "someone else wrote it first".
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::SeqConflict { .. } | Self::Duplicate { .. })
    }
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => Self::NotFound { what: "row" },
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, ref info) => {
                Self::Duplicate {
                    constraint: info.constraint_name().unwrap_or("unknown").to_owned(),
                }
            }
            other => Self::Database(other),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for StoreError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Pool(e.to_string())
    }
}

/// A `diagnosis_sessions` row.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = diagnosis_sessions, primary_key(session_id))]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    /// Session id.
    pub session_id: Uuid,
    /// Owner.
    pub tenant: String,
    /// Status name (`Status::as_str`).
    pub status: String,
    /// Incident title, for listings.
    pub title: String,
    /// Seq of the last appended event.
    pub last_seq: i64,
    /// Latest snapshot of the state.
    pub snapshot: Option<serde_json::Value>,
    /// Seq the snapshot reflects.
    pub snapshot_seq: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A new `diagnosis_sessions` row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = diagnosis_sessions)]
pub struct NewSession<'a> {
    /// Session id.
    pub session_id: Uuid,
    /// Owner.
    pub tenant: &'a str,
    /// Initial status.
    pub status: &'a str,
    /// Incident title.
    pub title: &'a str,
}

/// A `diagnosis_events` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = diagnosis_events)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct EventRow {
    /// Event id.
    pub id: Uuid,
    /// Session.
    pub session_id: Uuid,
    /// Position.
    pub seq: i64,
    /// Causing event.
    pub parent_id: Option<Uuid>,
    /// Event kind tag.
    pub kind: String,
    /// Payload.
    pub data: serde_json::Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

impl TryFrom<&DiagnosisEvent> for EventRow {
    type Error = StoreError;
    fn try_from(e: &DiagnosisEvent) -> Result<Self, Self::Error> {
        let (kind, data) = e.kind.to_parts().map_err(|err| StoreError::Corrupt {
            what: "event payload",
            message: err.to_string(),
        })?;
        Ok(Self {
            id: e.id.0,
            session_id: e.session_id.0,
            seq: i64::try_from(e.seq).map_err(|_| StoreError::Corrupt {
                what: "event seq",
                message: format!("{} does not fit BIGINT", e.seq),
            })?,
            parent_id: e.parent_id.map(|p| p.0),
            kind: kind.to_owned(),
            data,
            occurred_at: e.occurred_at,
        })
    }
}

impl TryFrom<EventRow> for DiagnosisEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, Self::Error> {
        let kind = EventKind::from_parts(&r.kind, r.data).map_err(|err| StoreError::Corrupt {
            what: "event",
            message: format!("{} at seq {}: {err}", r.kind, r.seq),
        })?;
        Ok(Self {
            id: EventId(r.id),
            session_id: SessionId(r.session_id),
            seq: u64::try_from(r.seq).map_err(|_| StoreError::Corrupt {
                what: "event seq",
                message: format!("negative seq {}", r.seq),
            })?,
            parent_id: r.parent_id.map(EventId),
            occurred_at: r.occurred_at,
            kind,
        })
    }
}

/// Inserts events as they are (seq already assigned), mapping a collision on
/// `(session_id, seq)` to [`StoreError::SeqConflict`]. The event store's
/// append builds on this inside its locked transaction.
///
/// # Errors
/// [`StoreError::SeqConflict`] on a seq collision, or any database error.
pub async fn insert_events(
    conn: &mut AsyncPgConnection,
    events: &[DiagnosisEvent],
) -> Result<(), StoreError> {
    let rows = events
        .iter()
        .map(EventRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    match diesel::insert_into(diagnosis_events::table)
        .values(&rows)
        .execute(conn)
        .await
    {
        Ok(_) => Ok(()),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.constraint_name() == Some("diagnosis_events_session_seq_key") =>
        {
            let (session_id, seq) = events
                .first()
                .map(|e| (e.session_id, e.seq))
                .unwrap_or((SessionId(Uuid::nil()), 0));
            Err(StoreError::SeqConflict { session_id, seq })
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads up to `limit` events of a session with seq greater than `after`, in
/// seq order, whatever tenant owns it: for operators' tools and tests. Reads
/// on behalf of a tenant use [`crate::store::events_after`].
///
/// # Errors
/// Database errors, or [`StoreError::Corrupt`] for a row that does not parse.
pub async fn events_after_any_tenant(
    conn: &mut AsyncPgConnection,
    session_id: SessionId,
    after: u64,
    limit: i64,
) -> Result<Vec<DiagnosisEvent>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let rows: Vec<EventRow> = diagnosis_events::table
        .filter(diagnosis_events::session_id.eq(session_id.0))
        .filter(diagnosis_events::seq.gt(after))
        .order(diagnosis_events::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
        .await?;
    rows.into_iter().map(DiagnosisEvent::try_from).collect()
}

/// An `agent_executions` row: one agent task attempt.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = agent_executions)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct AgentExecutionRow {
    /// Row id.
    pub id: Uuid,
    /// Session.
    pub session_id: Uuid,
    /// Task.
    pub task_id: Uuid,
    /// Agent name.
    pub agent: String,
    /// Attempt, from 1.
    pub attempt: i32,
    /// LLM provider, when one was used.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Input tokens.
    pub tokens_in: i64,
    /// Output tokens.
    pub tokens_out: i64,
    /// Cached input tokens.
    pub tokens_cached: i64,
    /// Cost in millionths of a USD.
    pub cost_micros: i64,
    /// Wall time.
    pub duration_ms: i64,
    /// `completed`, `failed`, `timed_out`, ...
    pub outcome: String,
    /// Error text.
    pub error: Option<String>,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// An `outbox` row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct OutboxRow {
    /// Publish order.
    pub id: i64,
    /// The envelope id.
    pub message_id: Uuid,
    /// Session, when the message is about one.
    pub session_id: Option<Uuid>,
    /// Target exchange.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// The envelope JSON.
    pub payload: serde_json::Value,
    /// AMQP headers.
    pub headers: serde_json::Value,
    /// Written.
    pub created_at: DateTime<Utc>,
    /// Publish attempts.
    pub attempts: i32,
    /// Last publish error.
    pub last_error: Option<String>,
    /// Confirmed by the broker.
    pub sent_at: Option<DateTime<Utc>>,
    /// Not published before this time (a failed row waits, growing delay).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Given up on after too many failed attempts; an operator retries it.
    pub parked_at: Option<DateTime<Utc>>,
    /// Why it was parked (the last publish error).
    pub park_reason: Option<String>,
}

/// A new `outbox` row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewOutbox {
    /// The envelope id.
    pub message_id: Uuid,
    /// Session.
    pub session_id: Option<Uuid>,
    /// Target exchange.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// The envelope JSON.
    pub payload: serde_json::Value,
    /// AMQP headers.
    pub headers: serde_json::Value,
}

/// A `processed_messages` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = processed_messages)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct ProcessedMessageRow {
    /// Consumer name (queue).
    pub consumer: String,
    /// The envelope id.
    pub message_id: Uuid,
    /// Session.
    pub session_id: Option<Uuid>,
    /// When applied.
    pub processed_at: DateTime<Utc>,
}

/// An `agent_tools` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = agent_tools)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct AgentToolRow {
    /// Agent name.
    pub agent: String,
    /// Tool name.
    pub tool: String,
    /// Whether the agent may use it.
    pub enabled: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A `knowledge_documents` row (without the generated `search` column).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = knowledge_documents)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct KnowledgeDocumentRow {
    /// Row id.
    pub id: Uuid,
    /// Owner.
    pub tenant: String,
    /// `runbook`, `past_incident` or `diagnosis`.
    pub kind: String,
    /// Origin (file path, incident id, session id).
    pub source: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// Extra fields (category, root cause, ...).
    pub metadata: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// An `api_tokens` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct ApiTokenRow {
    /// Row id.
    pub id: Uuid,
    /// Tenant the token acts for.
    pub tenant: String,
    /// Human name.
    pub name: String,
    /// SHA-256 of the token; the token itself is never stored.
    pub token_hash: Vec<u8>,
    /// Scopes.
    pub scopes: Vec<Option<String>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
}
