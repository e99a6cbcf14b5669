-- The ledger becomes a table declaratively partitioned by month of created_at,
-- carrying every existing row over.
--
-- * A DEFAULT partition catches any row whose month has no partition yet, so an
--   insert never fails; ensure_transaction_partitions() creates the current and
--   next months' partitions (and moves rows the default caught into them). The
--   accounts service calls it on startup and periodically: no manual step.
-- * Keys of a partitioned table must include the partition key: the primary key
--   is (id, created_at); ids still come from one sequence, so they stay unique.
-- * Queries bounded by created_at (history pages, balance as_of) touch only the
--   partitions of that range (partition pruning, visible in EXPLAIN).

ALTER TABLE transactions RENAME TO transactions_unpartitioned;
ALTER INDEX transactions_pkey RENAME TO transactions_unpartitioned_pkey;
ALTER INDEX transactions_member_time RENAME TO transactions_unpartitioned_member_time;
DROP TRIGGER transactions_append_only ON transactions_unpartitioned;

CREATE SEQUENCE transactions_id_seq_v2 AS bigint;

CREATE TABLE transactions (
    id bigint NOT NULL DEFAULT nextval('transactions_id_seq_v2'),
    member_id bigint NOT NULL REFERENCES members (id),
    kind text NOT NULL CHECK (kind IN ('payment', 'charge')),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    currency text NOT NULL CHECK (currency = 'USD'),
    balance_after_cents bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The Idempotency-Key (and request fingerprint) the row was written under, for
    -- tracing; idempotency itself lives in idempotency_keys.
    idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_fingerprint text,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

-- TRUNCATE ... RESTART IDENTITY (the seeder) restarts an owned sequence too.
ALTER SEQUENCE transactions_id_seq_v2 OWNED BY transactions.id;

CREATE INDEX transactions_member_time ON transactions (member_id, created_at DESC, id DESC);

CREATE TABLE transactions_default PARTITION OF transactions DEFAULT;

CREATE TRIGGER transactions_append_only
    BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_append_only();

-- Creates the monthly partitions from `first_month` to `months_ahead` months
-- after the current one; returns how many it created. A month whose rows the
-- default partition caught gets them moved into its new partition (the only
-- time ledger rows move, with their contents unchanged). Serialised by an
-- advisory lock, so concurrent callers (several service processes) are safe.
CREATE FUNCTION ensure_transaction_partitions(months_ahead integer, first_month date DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    -- Months are UTC months, whatever the session's time zone.
    m date := date_trunc('month', coalesce(first_month, (now() AT TIME ZONE 'UTC')::date))::date;
    last_month date := (date_trunc('month', now() AT TIME ZONE 'UTC')
                        + make_interval(months => months_ahead))::date;
    lo timestamptz;
    hi timestamptz;
    part text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ensure_transaction_partitions'));
    WHILE m <= last_month LOOP
        part := format('transactions_%s', to_char(m, 'YYYY_MM'));
        lo := m::timestamp AT TIME ZONE 'UTC';
        hi := (m + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        IF to_regclass(part) IS NULL THEN
            IF NOT EXISTS (SELECT 1 FROM transactions_default WHERE created_at >= lo AND created_at < hi) THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF transactions FOR VALUES FROM (%L) TO (%L)',
                               part, lo, hi);
            ELSE
                EXECUTE format('CREATE TABLE %I (LIKE transactions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               part);
                ALTER TABLE transactions_default DISABLE TRIGGER transactions_append_only;
                EXECUTE format('WITH moved AS (DELETE FROM transactions_default
                                                WHERE created_at >= %L AND created_at < %L RETURNING *)
                                INSERT INTO %I SELECT * FROM moved', lo, hi, part);
                ALTER TABLE transactions_default ENABLE TRIGGER transactions_append_only;
                EXECUTE format('ALTER TABLE transactions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               part, lo, hi);
            END IF;
            created := created + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END;
$$;

-- Partitions for every month holding existing rows, and three months ahead.
SELECT ensure_transaction_partitions(
    3, (SELECT (min(created_at) AT TIME ZONE 'UTC')::date FROM transactions_unpartitioned));

INSERT INTO transactions (id, member_id, kind, amount_cents, currency, balance_after_cents, created_at,
                          idempotency_key, request_fingerprint)
SELECT id, member_id, kind, amount_cents, currency, balance_after_cents, created_at,
       idempotency_key, request_fingerprint
  FROM transactions_unpartitioned;

SELECT setval('transactions_id_seq_v2',
              greatest((SELECT max(id) FROM transactions_unpartitioned), 1),
              (SELECT max(id) FROM transactions_unpartitioned) IS NOT NULL);

DROP TABLE transactions_unpartitioned;
ALTER SEQUENCE transactions_id_seq_v2 RENAME TO transactions_id_seq;
