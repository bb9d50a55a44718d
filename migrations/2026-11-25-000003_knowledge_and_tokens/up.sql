-- Runbooks, past incidents and concluded diagnoses, searchable with
-- PostgreSQL full-text search (websearch_to_tsquery, ranked).
CREATE TABLE knowledge_documents (
    id         UUID PRIMARY KEY,
    tenant     TEXT NOT NULL,
    -- runbook | past_incident | diagnosis
    kind       TEXT NOT NULL,
    -- where it came from (file path, incident id, session id); re-ingesting
    -- the same source updates the row instead of duplicating it.
    source     TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    metadata   JSONB NOT NULL DEFAULT '{}'::jsonb,
    search     TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(body, '')), 'B')
    ) STORED,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT knowledge_documents_source_key UNIQUE (tenant, kind, source)
);
CREATE INDEX knowledge_documents_search_idx ON knowledge_documents USING GIN (search);

-- API tokens: only a SHA-256 hash is stored; each token is scoped to one tenant.
CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY,
    tenant       TEXT NOT NULL,
    name         TEXT NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    scopes       TEXT[] NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX api_tokens_tenant_idx ON api_tokens (tenant);
