-- Poison rows: a row whose publish keeps failing is retried with a growing
-- delay (next_attempt_at) and, after a bounded number of attempts, parked
-- (parked_at, park_reason) for an operator instead of being retried forever.
ALTER TABLE outbox
    ADD COLUMN next_attempt_at TIMESTAMPTZ,
    ADD COLUMN parked_at       TIMESTAMPTZ,
    ADD COLUMN park_reason     TEXT;

-- The drainer reads only rows that are neither sent nor parked.
DROP INDEX outbox_unsent_idx;
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL AND parked_at IS NULL;
-- Holding back a session's later rows behind a failed one looks up the
-- session's earlier pending rows.
CREATE INDEX outbox_pending_session_idx ON outbox (session_id, id)
    WHERE sent_at IS NULL AND parked_at IS NULL;
-- `rootcause outbox parked` and the parked-rows metric.
CREATE INDEX outbox_parked_idx ON outbox (id) WHERE parked_at IS NOT NULL;
