-- Idempotency keys move out of the ledger into their own table, scoped to
-- (principal, method, path, key) as the API promises: an admin reusing a
-- member's key is an independent request, which a unique constraint on
-- (member_id, kind, key) in the ledger cannot express. The table keeps the
-- completed response (status, headers, body) to replay byte for byte, for 24 h
-- (expires_at); rows are claimed in the same transaction as the ledger insert.
-- See bookvault.patterns.idempotency.

CREATE TABLE idempotency_keys (
    principal text NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    fingerprint text NOT NULL,
    status smallint NOT NULL,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (principal, method, path, idempotency_key)
);

-- The sweeper deletes expired keys in bounded batches, oldest first.
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- The ledger's own key columns stay as history (existing rows keep theirs) but
-- no longer decide anything: new rows carry the key for tracing only.
ALTER TABLE transactions DROP CONSTRAINT transactions_idempotency_unique;
ALTER TABLE transactions ALTER COLUMN idempotency_key DROP NOT NULL;
ALTER TABLE transactions ALTER COLUMN request_fingerprint DROP NOT NULL;
