DROP INDEX outbox_parked_idx;
DROP INDEX outbox_pending_session_idx;
DROP INDEX outbox_unsent_idx;
ALTER TABLE outbox
    DROP COLUMN park_reason,
    DROP COLUMN parked_at,
    DROP COLUMN next_attempt_at;
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
