-- Event-sourced diagnosis state: sessions with their latest snapshot, the
-- append-only event log, the transactional outbox, idempotency records and
-- one row per agent task attempt.

CREATE TABLE diagnosis_sessions (
    session_id   UUID PRIMARY KEY,
    tenant       TEXT NOT NULL,
    status       TEXT NOT NULL,
    title        TEXT NOT NULL DEFAULT '',
    -- seq of the last appended event; the appender locks the row FOR UPDATE
    -- and assigns last_seq+1.. so seq stays contiguous under concurrency.
    last_seq     BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    snapshot     JSONB,
    snapshot_seq BIGINT NOT NULL DEFAULT 0 CHECK (snapshot_seq >= 0 AND snapshot_seq <= last_seq),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Listing by tenant and status with cursor paging on (created_at, session_id).
CREATE INDEX diagnosis_sessions_tenant_status_idx
    ON diagnosis_sessions (tenant, status, created_at DESC, session_id DESC);
CREATE INDEX diagnosis_sessions_tenant_created_idx
    ON diagnosis_sessions (tenant, created_at DESC, session_id DESC);

CREATE TABLE diagnosis_events (
    id          UUID PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES diagnosis_sessions (session_id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    parent_id   UUID,
    kind        TEXT NOT NULL,
    data        JSONB NOT NULL DEFAULT 'null'::jsonb,
    occurred_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Replay by session in seq order uses this unique index.
    CONSTRAINT diagnosis_events_session_seq_key UNIQUE (session_id, seq)
);
CREATE INDEX diagnosis_events_parent_idx ON diagnosis_events (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX diagnosis_events_session_kind_idx ON diagnosis_events (session_id, kind);

CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    message_id   UUID NOT NULL UNIQUE,
    session_id   UUID,
    exchange     TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    payload      JSONB NOT NULL,
    headers      JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    sent_at      TIMESTAMPTZ
);
-- The publisher drains unsent rows in id order.
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE processed_messages (
    consumer     TEXT NOT NULL,
    message_id   UUID NOT NULL,
    session_id   UUID,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX processed_messages_processed_at_idx ON processed_messages (processed_at);

CREATE TABLE agent_executions (
    id            UUID PRIMARY KEY,
    session_id    UUID NOT NULL REFERENCES diagnosis_sessions (session_id) ON DELETE CASCADE,
    task_id       UUID NOT NULL,
    agent         TEXT NOT NULL,
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    provider      TEXT,
    model         TEXT,
    tokens_in     BIGINT NOT NULL DEFAULT 0 CHECK (tokens_in >= 0),
    tokens_out    BIGINT NOT NULL DEFAULT 0 CHECK (tokens_out >= 0),
    tokens_cached BIGINT NOT NULL DEFAULT 0 CHECK (tokens_cached >= 0),
    cost_micros   BIGINT NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    duration_ms   BIGINT NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    outcome       TEXT NOT NULL,
    error         TEXT,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    CONSTRAINT agent_executions_task_attempt_key UNIQUE (task_id, attempt)
);
CREATE INDEX agent_executions_session_idx ON agent_executions (session_id, agent);
