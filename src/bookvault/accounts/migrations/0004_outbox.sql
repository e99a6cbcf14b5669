-- Transactional outbox (bookvault.patterns.outbox): every payment or charge
-- writes an event in the same transaction as its ledger row; a relay publishes
-- committed events to Redis Streams in commit order. `inbox` records the event
-- ids a consumer has handled, in the transaction of the handler's effect.

CREATE TABLE outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id: rows are relayed in (txid, id) order, and
    -- only below the oldest running transaction (snapshot xmin).
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    topic text NOT NULL,
    event_type text NOT NULL,
    aggregate_id text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (txid, id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TABLE inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
